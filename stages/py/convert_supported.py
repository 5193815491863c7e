#!/usr/bin/env python3
"""What a llama.cpp checkout can convert and quantize, read from its source without importing it.

Usage: python3 convert_supported.py LLAMA_CPP_DIR
Prints one JSON object on stdout:
  {"architectures": [...],        # HF config.json `architectures[0]` values convert_hf_to_gguf.py accepts (text models)
   "mmprojArchitectures": [...],  # the same for --mmproj (vision/audio projectors)
   "outtypes": [...],             # convert_hf_to_gguf.py --outtype choices
   "quantTypes": [...]}           # llama-quantize type names (matched case-insensitively by the tool)

Why static: convert_hf_to_gguf.py imports torch at module top (several seconds even for --help);
this script only uses the standard library (ast + re) and runs in tens of milliseconds, so it can
be used by cheap guards with any python3 >= 3.8, not just the converter's venv.

Sources, newest layout first:
- conversion/__init__.py  TEXT_MODEL_MAP / MMPROJ_MODEL_MAP dict literals (the lookup tables
  get_model_class() uses in trees that split models into the conversion/ package);
- @ModelBase.register("A", "B") (older: @Model.register) decorators in convert_hf_to_gguf.py and
  conversion/*.py, for trees without the maps; a class counts as mmproj when it or an ancestor
  sets `model_arch = gguf.MODEL_ARCH.MMPROJ` or derives from MmprojModel.
- tools/quantize/quantize.cpp (older: examples/quantize/quantize.cpp) QUANT_OPTIONS.
Exit 2 with a message on stderr when the directory does not look like a llama.cpp tree.
"""
from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path


def _str_args(call: ast.Call) -> list[str]:
    return [a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]


def _dict_keys(tree: ast.Module, name: str) -> list[str] | None:
    for node in tree.body:
        target = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        if isinstance(target, ast.Name) and target.id == name and isinstance(value, ast.Dict):
            return [k.value for k in value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
    return None


def _is_register_decorator(dec: ast.expr) -> bool:
    # @ModelBase.register(...); older trees: @Model.register(...)
    return (isinstance(dec, ast.Call) and isinstance(dec.func, ast.Attribute) and dec.func.attr == "register"
            and isinstance(dec.func.value, ast.Name) and dec.func.value.id in ("ModelBase", "Model"))


def _sets_mmproj_arch(cls: ast.ClassDef) -> bool:
    for stmt in cls.body:
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if any(isinstance(t, ast.Name) and t.id == "model_arch" for t in targets):
                v = stmt.value
                if isinstance(v, ast.Attribute) and v.attr == "MMPROJ":
                    return True
    return False


def _scan_decorators(files: list[Path]) -> tuple[set[str], set[str]]:
    bases: dict[str, list[str]] = {}
    own_mmproj: dict[str, bool] = {}
    registered: list[tuple[str, list[str]]] = []
    for f in files:
        tree = ast.parse(f.read_text(encoding="utf-8"), filename=str(f))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            bases[node.name] = [b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else ""
                                for b in node.bases]
            own_mmproj[node.name] = _sets_mmproj_arch(node)
            for dec in node.decorator_list:
                if _is_register_decorator(dec):
                    registered.append((node.name, _str_args(dec)))

    def is_mmproj(name: str, seen: frozenset[str] = frozenset()) -> bool:
        if name == "MmprojModel" or own_mmproj.get(name):
            return True
        return any(b not in seen and is_mmproj(b, seen | {name}) for b in bases.get(name, []))

    text: set[str] = set()
    mmproj: set[str] = set()
    for cls, names in registered:
        (mmproj if is_mmproj(cls) else text).update(names)
    return text, mmproj


def _outtypes(convert_py: Path) -> list[str]:
    tree = ast.parse(convert_py.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument"
                and "--outtype" in _str_args(node)):
            for kw in node.keywords:
                if kw.arg == "choices" and isinstance(kw.value, (ast.List, ast.Tuple)):
                    return [e.value for e in kw.value.elts if isinstance(e, ast.Constant)]
    return []


def _quant_types(root: Path) -> list[str]:
    for rel in ("tools/quantize/quantize.cpp", "examples/quantize/quantize.cpp"):
        src = root / rel
        if src.is_file():
            text = src.read_text(encoding="utf-8")
            m = re.search(r"QUANT_OPTIONS\s*=\s*\{(.*?)\n\};", text, re.S)
            body = m.group(1) if m else text
            body = re.sub(r"//[^\n]*", "", body)
            return re.findall(r'\{\s*"([A-Za-z0-9_]+)"\s*,\s*LLAMA_FTYPE_', body)
    return []


def supported(root: Path) -> dict[str, list[str]]:
    convert_py = root / "convert_hf_to_gguf.py"
    if not convert_py.is_file():
        raise FileNotFoundError(f"{convert_py} not found: is {root} a llama.cpp checkout?")
    pkg = root / "conversion"
    text_map = mmproj_map = None
    init = pkg / "__init__.py"
    if init.is_file():
        tree = ast.parse(init.read_text(encoding="utf-8"))
        text_map = _dict_keys(tree, "TEXT_MODEL_MAP")
        mmproj_map = _dict_keys(tree, "MMPROJ_MODEL_MAP")
    if text_map is not None and mmproj_map is not None:
        # The maps are what get_model_class() consults (a decorator-registered name missing from
        # the map is unreachable), and reading one file is ~10x faster than parsing ~90 modules.
        text, mmproj = set(text_map), set(mmproj_map)
    else:
        files = [convert_py] + (sorted(pkg.glob("*.py")) if pkg.is_dir() else [])
        text, mmproj = _scan_decorators(files)
        if text_map is not None:
            text = set(text_map)
        if mmproj_map is not None:
            mmproj = set(mmproj_map)
    return {
        "architectures": sorted(text),
        "mmprojArchitectures": sorted(mmproj),
        "outtypes": _outtypes(convert_py),
        "quantTypes": _quant_types(root),
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: convert_supported.py LLAMA_CPP_DIR", file=sys.stderr)
        return 2
    try:
        result = supported(Path(argv[1]))
    except (FileNotFoundError, SyntaxError) as e:
        print(f"convert_supported: {e}", file=sys.stderr)
        return 2
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
