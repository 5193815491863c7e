"""Greedy generation with mlx-lm, printed as JSON so its token ids can be compared with
llama.cpp's greedy output from the converted GGUF.

Usage: python smoke_generate.py --model DIR --prompt TEXT [--max-tokens 8] [--ignore-eos]

The prompt is raw text (no chat template), encoded the tokenizer's default way, so BOS is
added exactly when the tokenizer adds it (Llama 3, Gemma: yes; Qwen: no), as llama.cpp does.
Prints {"prompt_tokens": [...], "tokens": [...], "text": "...", "stop": "eos"|"length"}.
"""

import argparse
import json

import mlx.core as mx
from mlx_lm import load
from mlx_lm.generate import generate_step
from mlx_lm.sample_utils import make_sampler


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt", required=True)
    ap.add_argument("--max-tokens", type=int, default=8)
    # Keep going past an end-of-generation token, for comparing a fixed number of tokens.
    ap.add_argument("--ignore-eos", action="store_true")
    args = ap.parse_args()

    model, tokenizer = load(args.model)
    prompt_tokens = tokenizer.encode(args.prompt)
    tokens, stop = [], "length"
    # temp 0 = argmax; no repetition penalty or other logits processors, like llama.cpp's
    # greedy sampler.
    for token, _ in generate_step(
        mx.array(prompt_tokens), model, max_tokens=args.max_tokens, sampler=make_sampler(temp=0.0)
    ):
        token = int(token)
        if token in tokenizer.eos_token_ids and not args.ignore_eos:
            stop = "eos"
            break
        tokens.append(token)
    print(json.dumps({
        "prompt_tokens": prompt_tokens,
        "tokens": tokens,
        "text": tokenizer.decode(tokens),
        "stop": stop,
    }, ensure_ascii=False))


if __name__ == "__main__":
    main()
