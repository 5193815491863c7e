"""Remove every `quantization` / `quantization_config` key, at any depth, from a config.json.

Usage: python clean_config.py CONFIG_JSON   (rewrites the file in place; prints the removed
key paths as one JSON list on stdout)

`mlx_lm fuse --dequantize` only pops the top-level keys; a nested copy (e.g. under
text_config) still makes llama.cpp's converter fail with `Can not map tensor '...biases'`.
"""

import json
import sys

KEYS = ("quantization", "quantization_config")


def strip(node, path=""):
    """Remove KEYS from node in place; return the dotted paths removed."""
    removed = []
    if isinstance(node, dict):
        for key in KEYS:
            if key in node:
                del node[key]
                removed.append(f"{path}{key}")
        for key, value in node.items():
            removed += strip(value, f"{path}{key}.")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            removed += strip(value, f"{path}{i}.")
    return removed


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    path = sys.argv[1]
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    removed = strip(config)
    if removed:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(config, f, indent=4, ensure_ascii=False)
            f.write("\n")
    print(json.dumps(removed))


if __name__ == "__main__":
    main()
