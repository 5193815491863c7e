"""Can the installed mlx-lm train this architecture? Asked of mlx-lm itself, not of a rule list.

Usage: python arch_probe.py CONFIG_JSON [--lora-step]
Resolves config.json's model type through mlx-lm's own remapping to its model module. With
--lora-step, builds that architecture from the config with a few layers and a 512-token vocabulary
(shapes per layer unchanged), puts LoRA on it the way `mlx_lm lora` does and runs one training step
on random tokens: proof that LoRA applies and trains in this mlx-lm version, in a few seconds.
Prints {"supported", "module", "lora": {"ok", "trainable", "loss"} | null, "error"?}.
"""
import json
import math
import sys

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_flatten
from mlx_lm.tuner.utils import linear_to_lora_layers
from mlx_lm.utils import _get_classes

PROBE_LAYERS = 2
PROBE_VOCAB = 512


def probe_layers(cfg, at_least):
    """Fewest leading layers that keep every kind of layer (sliding/full attention, Mamba) in play."""
    keep = max(at_least, cfg.get("sliding_window_pattern") or 0)
    kinds = cfg.get("layer_types")
    if isinstance(kinds, list) and kinds:
        keep = max(keep, max(kinds.index(kind) for kind in set(kinds)) + 1)
    return keep


def shrink(config, at_least):
    """A few layers and a small vocabulary; per-layer lists cut to match."""
    for cfg in (config, config.get("text_config") or {}):
        n = cfg.get("num_hidden_layers")
        keep = probe_layers(cfg, at_least)
        if isinstance(n, int) and n > keep:
            cfg["num_hidden_layers"] = keep
            for key, value in list(cfg.items()):
                if isinstance(value, list) and len(value) == n:
                    cfg[key] = value[:keep]
        if "vocab_size" in cfg:
            cfg["vocab_size"] = PROBE_VOCAB
    for key in ("quantization", "quantization_config"):
        config.pop(key, None)
    return config


def lora_step(config, at_least):
    model_class, args_class = _get_classes(config)
    model = model_class(args_class.from_dict(shrink(json.loads(json.dumps(config)), at_least)))
    model.freeze()
    linear_to_lora_layers(model, len(model.layers), {"rank": 4, "scale": 10.0, "dropout": 0.0})
    trainable = sum(v.size for _, v in tree_flatten(model.trainable_parameters()))
    tokens = mx.random.randint(0, PROBE_VOCAB, (1, 17))

    def loss_fn(m):
        logits = m(tokens[:, :-1])
        return nn.losses.cross_entropy(logits, tokens[:, 1:]).mean()

    loss, grads = nn.value_and_grad(model, loss_fn)(model)
    optim.Adam(learning_rate=1e-4).update(model, grads)
    mx.eval(model.parameters(), loss)
    value = loss.item()
    return {"ok": trainable > 0 and math.isfinite(value), "trainable": trainable, "loss": value}


def main(path, with_step):
    config = json.load(open(path))
    try:
        model_class, _ = _get_classes(config)
    except ValueError as e:
        print(json.dumps({"supported": False, "module": None, "lora": None, "error": str(e)}))
        return
    result = {"supported": True, "module": model_class.__module__, "lora": None}
    if with_step:
        # Some families index a layer pattern their config leaves to defaults (Gemma 3: every 6th layer
        # is global): when a cut model does not build, cut less.
        for at_least in (PROBE_LAYERS, 6, 12):
            try:
                result["lora"] = lora_step(config, at_least)
                result.pop("error", None)
                break
            except Exception as e:  # noqa: BLE001 - any failure to build or train is the answer
                result["lora"] = {"ok": False, "trainable": 0, "loss": None}
                result["error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(result))


main(sys.argv[1], "--lora-step" in sys.argv[2:])
