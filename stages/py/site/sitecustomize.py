"""Imported by Python at the start of every process the pipeline runs in its environments (PY_ENV puts this
folder on PYTHONPATH). It only makes `import transformers` cheaper; nothing a tool computes depends on it.

transformers builds the lazy import structure of `transformers.models` by reading every source file of it
(~3,300 files) in each process that imports it: ~0.5 s of CPU in every mlx-lm command, converter run and
tokenizer check, measured here against runs of a few seconds. That structure is a function of the installed
files alone, so it is kept in the per-user cache (MLX_PIPELINE_IMPORT_CACHE), one JSON file per installed
transformers (its folder, and the mtime and size of the module that computes it), and read back instead of
scanning again. Anything unexpected (no such function, an unreadable or malformed file, a value of another
shape) falls back to transformers' own scan.
"""

# Only what the finder needs at start: this runs before every Python tool, some of which never import transformers
# (toolchain probes, the launcher; importlib.abc alone took 18 ms, pulling in typing). hashlib and json wait for
# transformers.
import importlib.machinery
import os
import sys

_MODULE = "transformers.utils.import_utils"


def _encode(structure):
    """{frozenset(backends): {module: set(names)}} as JSON: [[backends, {module: names}], ...] in its order."""
    return [[sorted(backends), {m: sorted(names) for m, names in modules.items()}] for backends, modules in structure.items()]


def _decode(data):
    """The structure back from its JSON; raises on anything of another shape."""
    out = {}
    for backends, modules in data:
        if not (isinstance(backends, list) and all(isinstance(b, str) for b in backends) and isinstance(modules, dict)):
            raise ValueError("not an import structure")
        decoded = {}
        for module, names in modules.items():
            if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
                raise ValueError("not an import structure")
            decoded[module] = set(names)
        out[frozenset(backends)] = decoded
    return out


def _cached(define, cache_dir, source):
    import hashlib
    import json

    st = os.stat(source)
    installed = f"{os.path.dirname(os.path.dirname(source))}\0{st.st_mtime_ns}\0{st.st_size}"
    path = os.path.join(cache_dir, f"transformers-{hashlib.sha256(installed.encode()).hexdigest()[:16]}.json")
    try:
        with open(path, encoding="utf-8") as f:
            memo = json.load(f)
        if not isinstance(memo, dict):
            memo = {}
    except (OSError, ValueError):
        memo = {}

    def define_import_structure(module_path, prefix=None):
        key = f"{os.fspath(module_path)}\0{prefix}"
        if key in memo:
            try:
                return _decode(memo[key])
            except (TypeError, ValueError):
                pass
        structure = define(module_path, prefix)
        try:
            memo[key] = _encode(structure)
            os.makedirs(cache_dir, exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(memo, f)
            os.replace(tmp, path)
        except (OSError, TypeError, ValueError):
            pass  # a cache: a read-only or full disk only means scanning again next time
        return structure

    return define_import_structure


class _Loader:
    """Runs the module, then wraps its define_import_structure before transformers' inits call it."""

    def __init__(self, inner, cache_dir):
        self._inner, self._cache_dir = inner, cache_dir

    def __getattr__(self, name):  # get_source, get_code, ...: the file loader's own
        return getattr(self._inner, name)

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module):
        self._inner.exec_module(module)
        define = getattr(module, "define_import_structure", None)
        if callable(define) and getattr(module, "__file__", None):
            try:
                module.define_import_structure = _cached(define, self._cache_dir, module.__file__)
            except OSError:
                pass


class _Finder:
    def __init__(self, cache_dir):
        self._cache_dir = cache_dir

    def find_spec(self, name, path, target=None):
        if name != _MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader, self._cache_dir)
        return spec


if os.environ.get("MLX_PIPELINE_IMPORT_CACHE"):
    sys.meta_path.insert(0, _Finder(os.environ["MLX_PIPELINE_IMPORT_CACHE"]))
