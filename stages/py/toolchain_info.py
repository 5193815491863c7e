"""Print the Python version, the platform and the installed versions of the named packages as one JSON line.

Reads package metadata only (no imports), so it takes milliseconds even for torch or mlx.
Usage: python toolchain_info.py mlx mlx-lm transformers
"""
import json
import platform
import sys
from importlib.metadata import PackageNotFoundError, version


def installed(name):
    try:
        return version(name)
    except PackageNotFoundError:
        return "missing"


info = {"python": platform.python_version(), "platform": f"{sys.platform}-{platform.machine()}"}
info.update({name.replace("-", "_"): installed(name) for name in sys.argv[1:]})
print(json.dumps(info))
