"""Token ids and special tokens from the Hugging Face tokenizer, for the parity check with llama.cpp.

Usage: python hf_tokens.py MODEL_DIR REQUEST.json ANSWER.json
REQUEST: {"texts": [...], "with_specials": TEXT}
ANSWER: {"tokenized": [[ids] per text, special tokens in the text parsed, none added],
         "with_specials": ids of TEXT with the tokenizer's own special tokens added (BOS ...),
         "bos": id | null, "eos": id | null,
         "eos_ids": every id the model stops at: the tokenizer's eos, config.json's and generation_config.json's}
On failure prints {"error"} and exits 3.
"""
import json
import os
import sys

from transformers import AutoTokenizer

model_dir, request_path, answer_path = sys.argv[1:4]
request = json.load(open(request_path, encoding="utf-8"))
try:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenized = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in request["texts"]]
    with_specials = tokenizer(request["with_specials"])["input_ids"]
except Exception as e:  # noqa: BLE001 - reported to the caller as one message
    print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
    sys.exit(3)


def ids(value):
    if value is None:
        return []
    return [value] if isinstance(value, int) else [v for v in value if isinstance(v, int)]


eos_ids = ids(tokenizer.eos_token_id)
for name in ("config.json", "generation_config.json"):
    path = os.path.join(model_dir, name)
    if os.path.exists(path):
        eos_ids += ids(json.load(open(path, encoding="utf-8")).get("eos_token_id"))
json.dump({
    "tokenized": tokenized,
    "with_specials": with_specials,
    "bos": tokenizer.bos_token_id,
    "eos": tokenizer.eos_token_id,
    "eos_ids": sorted(set(eos_ids)),
}, open(answer_path, "w", encoding="utf-8"))
