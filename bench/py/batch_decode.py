"""What a user writes by hand instead of the eval node's mlx-lm answers: mlx-lm's batch_generate, greedy.

Usage: python batch_decode.py MODEL_DIR REQUEST.json ANSWER.json (the eval node's request and answer forms)
"""

import json
import sys

from mlx_lm import batch_generate, load
from mlx_lm.sample_utils import make_sampler

model_dir, request_path, answer_path = sys.argv[1:4]
request = json.load(open(request_path, encoding="utf-8"))
model, tokenizer = load(model_dir)
prompts = [tokenizer.encode(p) for p in request["prompts"]]
out = batch_generate(model, tokenizer, prompts, max_tokens=request["max_tokens"], sampler=make_sampler(temp=0.0))
json.dump({"answers": [{"text": t} for t in out.texts]}, open(answer_path, "w", encoding="utf-8"), ensure_ascii=False)
