"""Greedy answers of an mlx-lm model to chat prompts, for the eval node.

Usage: python eval_answers.py MODEL_DIR REQUEST.json ANSWER.json
REQUEST: {"prompts": [text rendered with the chat template, generation prompt included], "max_tokens": N}
ANSWER: {"answers": [{"text", "tokens", "stop": "eos"|"length"}]}

Each prompt is encoded the tokenizer's default way (BOS added exactly when the tokenizer adds it, as
llama.cpp does) and continued by argmax until an end token (not included) or max_tokens.
"""

import json
import sys

import mlx.core as mx
from mlx_lm import load
from mlx_lm.generate import generate_step
from mlx_lm.sample_utils import make_sampler

model_dir, request_path, answer_path = sys.argv[1:4]
request = json.load(open(request_path, encoding="utf-8"))
model, tokenizer = load(model_dir)
sampler = make_sampler(temp=0.0)
answers = []
for i, prompt in enumerate(request["prompts"]):
    tokens, stop = [], "length"
    for token, _ in generate_step(mx.array(tokenizer.encode(prompt)), model, max_tokens=request["max_tokens"], sampler=sampler):
        token = int(token)
        if token in tokenizer.eos_token_ids:
            stop = "eos"
            break
        tokens.append(token)
    answers.append({"text": tokenizer.decode(tokens), "tokens": tokens, "stop": stop})
    print(f"answered {i + 1}/{len(request['prompts'])}", file=sys.stderr, flush=True)
json.dump({"answers": answers}, open(answer_path, "w", encoding="utf-8"), ensure_ascii=False)
