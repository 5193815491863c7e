"""Token ids and special tokens from the Hugging Face tokenizer, for the parity check with llama.cpp.

Usage: python hf_tokens.py MODEL_DIR REQUEST.json ANSWER.json
REQUEST: {"texts": [...], "with_specials": TEXT}
ANSWER: {"tokenized": [[ids] per text, special tokens in the text parsed, none added],
         "with_specials": ids of TEXT with the tokenizer's own special tokens added (BOS ...),
         "bos": id | null, "eos": id | null,
         "eos_ids": every id the model stops at: the tokenizer's eos, config.json's and generation_config.json's,
         "file": null when the folder has no tokenizer.json, else what the `tokenizers` library makes of that
                 file alone (the file llama.cpp's converter reads), beside what transformers built from the folder:
                 {"tokenized": [[ids] per text], "declared_class": tokenizer_config.json's tokenizer_class,
                  "built_class": the class transformers built, "transformers": its version,
                  "replaced": {part: {"file": JSON, "built": JSON}} for the parts that differ
                              (normalizer, pre_tokenizer)}}
On failure prints {"error"} and exits 3.
"""
import json
import os
import sys

import transformers
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


def part_json(tok, part):
    value = getattr(tok, part)
    return None if value is None else json.loads(value.__getstate__())


def file_side():
    """tokenizer.json read by `tokenizers` alone: a tokenizer class can make transformers replace parts of it."""
    path = os.path.join(model_dir, "tokenizer.json")
    if not os.path.exists(path):
        return None
    from tokenizers import Tokenizer

    own = Tokenizer.from_file(path)
    # Special tokens parsed, none added: as transformers is asked above.
    file_ids = [encoding.ids for encoding in own.encode_batch(request["texts"], add_special_tokens=False)]
    declared = None
    config_path = os.path.join(model_dir, "tokenizer_config.json")
    if os.path.exists(config_path):
        declared = json.load(open(config_path, encoding="utf-8")).get("tokenizer_class")
    replaced = {}
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        for part in ("normalizer", "pre_tokenizer"):
            # Each part serialized alone (its pickle state is its JSON in the tokenizer's file), not the whole
            # tokenizer: a 262k-token vocabulary to JSON and back took seconds.
            built, written = part_json(backend, part), part_json(own, part)
            if built != written:
                replaced[part] = {"file": written, "built": built}
    return {
        "tokenized": file_ids,
        "declared_class": declared if isinstance(declared, str) else None,
        "built_class": type(tokenizer).__name__,
        "transformers": transformers.__version__,
        "replaced": replaced,
    }


eos_ids = ids(tokenizer.eos_token_id)
for name in ("config.json", "generation_config.json"):
    path = os.path.join(model_dir, name)
    if os.path.exists(path):
        eos_ids += ids(json.load(open(path, encoding="utf-8")).get("eos_token_id"))
try:
    file = file_side()
except Exception as e:  # noqa: BLE001 - transformers read the folder; a file `tokenizers` cannot read is reported, not fatal
    file = {"error": f"{type(e).__name__}: {e}"}
json.dump({
    "tokenized": tokenized,
    "with_specials": with_specials,
    "bos": tokenizer.bos_token_id,
    "eos": tokenizer.eos_token_id,
    "eos_ids": sorted(set(eos_ids)),
    "file": file,
}, open(answer_path, "w", encoding="utf-8"))
