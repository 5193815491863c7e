"""Token counts of rendered examples, with the model's own tokenizer.

The memory guard needs the longest tokenized example (not max_seq_length alone), and examples longer
than max_seq_length are silently truncated by mlx-lm, so both are worth knowing before training.
Usage: python token_lengths.py MODEL_DIR RENDERED.jsonl MAX_SEQ_LENGTH   (each line: {"text": ...})
Prints {"max", "mean", "count", "over"} as JSON.
"""
import json
import sys

from transformers import AutoTokenizer

model_dir, rendered, max_seq = sys.argv[1], sys.argv[2], int(sys.argv[3])
tokenizer = AutoTokenizer.from_pretrained(model_dir)
with open(rendered, encoding="utf-8") as f:
    texts = [json.loads(line)["text"] for line in f if line.strip()]
# The rendered text already holds the template's special tokens (and BOS, where the template adds it).
lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
print(json.dumps({
    "max": max(lengths, default=0),
    "mean": round(sum(lengths) / max(len(lengths), 1), 1),
    "count": len(lengths),
    "over": sum(1 for n in lengths if n > max_seq),
}))
