"""Prove a folder loads in Hugging Face transformers as it is: config, tokenizer and (small models) weights.

Usage: python hf_verify.py HF_DIR MAX_WEIGHT_BYTES
Prints {"architectures", "model_type", "vocab", "params" (or null when the weights were not loaded)}.
On failure prints {"error"} and exits 3.
"""
import json
import os
import sys

from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

folder, max_bytes = sys.argv[1], int(sys.argv[2])
try:
    config = AutoConfig.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    weight_bytes = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder) if f.endswith(".safetensors"))
    params = None
    if weight_bytes <= max_bytes:
        # strict loading: a tensor name transformers does not expect is reported, not silently dropped
        model, info = AutoModelForCausalLM.from_pretrained(folder, output_loading_info=True)
        problems = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
        if problems:
            raise ValueError(f"weights do not match the architecture: {problems}")
        params = sum(p.numel() for p in model.parameters())
except Exception as e:  # noqa: BLE001 - every failure is reported to the caller as one message
    print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
    sys.exit(3)
print(json.dumps({
    "architectures": config.architectures,
    "model_type": config.model_type,
    "vocab": len(tokenizer),
    "params": params,
}))
