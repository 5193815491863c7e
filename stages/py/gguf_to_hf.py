"""A GGUF file as a float Hugging Face model folder that mlx-lm trains.

transformers dequantizes the weights (from_pretrained(..., gguf_file=...), reversing llama.cpp's tensor
layout), but the tokenizer it rebuilds is lossy (a LlamaTokenizer class, bos = eos, the Digits
pre-tokenizer dropped, a SentencePiece decoder step), so the tokenizer files are written here from the
GGUF's own metadata: its tokens, merges, token types, special ids, pre-tokenizer name and chat template.

Usage: gguf_to_hf.py FILE.gguf OUT_DIR
Prints one JSON line: {"architecture", "quantized": [types], "pre", "vocab"} or {"error": "..."}.
"""

import json
import os
import sys

# The pre-tokenizers of llama.cpp's gpt2-type vocabularies (tokenizer.ggml.pre) as Hugging Face tokenizers
# writes them; llama.cpp's own regexes for each are in src/llama-vocab.cpp (llama_vocab::impl::load).
BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
PRE_TOKENIZERS = {
    "gpt2": BYTE_LEVEL,
    # SmolLM, SmolLM2: single digits, then GPT-2's byte-level split.
    "smollm": {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, BYTE_LEVEL]},
}
# llama.cpp's token types (gguf.TokenType).
NORMAL, CONTROL, USER_DEFINED = 1, 3, 4


def fail(message):
    print(json.dumps({"error": message}))
    sys.exit(3)


def field(reader, key, default=None):
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def tokenizer_files(reader, out):
    model = field(reader, "tokenizer.ggml.model")
    pre = field(reader, "tokenizer.ggml.pre", "default")
    if model != "gpt2":
        fail(f"its tokenizer is tokenizer.ggml.model = {model!r}; only byte-level BPE vocabularies ('gpt2') are rebuilt as a Hugging Face tokenizer so far")
    if pre not in PRE_TOKENIZERS:
        fail(f"its BPE pre-tokenizer tokenizer.ggml.pre = {pre!r} is not one this tool rebuilds ({', '.join(sorted(PRE_TOKENIZERS))})")
    tokens = field(reader, "tokenizer.ggml.tokens")
    types = field(reader, "tokenizer.ggml.token_type")
    merges = field(reader, "tokenizer.ggml.merges")
    bos = field(reader, "tokenizer.ggml.bos_token_id")
    eos = field(reader, "tokenizer.ggml.eos_token_id")
    pad = field(reader, "tokenizer.ggml.padding_token_id")
    unk = field(reader, "tokenizer.ggml.unknown_token_id")
    add_bos = bool(field(reader, "tokenizer.ggml.add_bos_token", False))
    template = field(reader, "tokenizer.chat_template")

    added = [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": types[i] != CONTROL, "special": types[i] == CONTROL}
        for i, t in enumerate(tokens)
        if types[i] in (CONTROL, USER_DEFINED)
    ]
    bos_text = tokens[bos] if bos is not None else None
    post = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True}
    if add_bos and bos_text is not None:
        post = {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos_text, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos_text, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": bos_text, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos_text: {"id": bos_text, "ids": [bos], "tokens": [bos_text]}},
        }
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": PRE_TOKENIZERS[pre],
        "post_processor": post,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": [m.split(" ", 1) for m in merges],
        },
    }
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer, f, ensure_ascii=False)

    name = lambda i: tokens[i] if i is not None and 0 <= i < len(tokens) else None  # noqa: E731
    config = {
        # The fast tokenizer from tokenizer.json: a byte-level BPE must not be read as SentencePiece (the
        # converter would write a vocabulary llama.cpp aborts on).
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": name(bos),
        "eos_token": name(eos),
        "pad_token": name(pad),
        "unk_token": name(unk),
        "add_bos_token": add_bos,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": int(field(reader, f"{field(reader, 'general.architecture')}.context_length", 2048)),
        "added_tokens_decoder": {str(a["id"]): {k: v for k, v in a.items() if k != "id"} for a in added},
    }
    if template:
        config["chat_template"] = template
    with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({k: v for k, v in config.items() if v is not None}, f, ensure_ascii=False, indent=2)
    return pre, len(tokens), {"bos_token_id": bos, "eos_token_id": eos, "pad_token_id": pad}


def main():
    path, out = sys.argv[1], sys.argv[2]
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path)
    except Exception as e:  # the reader's errors on a bad file are bare ValueErrors and numpy shape errors
        fail(f"{path} is not a readable GGUF file (truncated or corrupt?): {type(e).__name__}: {e}")
    arch = field(reader, "general.architecture")
    quantized = sorted({t.tensor_type.name for t in reader.tensors} - {"F32", "F16", "BF16"})
    os.makedirs(out, exist_ok=True)
    pre, vocab, ids = tokenizer_files(reader, out)

    import torch
    from transformers import AutoModelForCausalLM

    folder, name = os.path.split(os.path.abspath(path))
    # float32: the only type whose matmuls reach BLAS in MLX's CPU backend; fused and exported as the user asks.
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except ValueError as e:  # transformers' words for an architecture it does not read from GGUF
        fail(f"transformers cannot load it as a float model: {e}")
    for key, value in ids.items():
        if value is not None:
            setattr(model.config, key, value)
    model.config.torch_dtype = "float32"
    model.save_pretrained(out, safe_serialization=True)
    # After save_pretrained, which writes a generation_config.json of its own: the GGUF's ids are the truth.
    generation = {k: v for k, v in ids.items() if v is not None}
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump(generation, f, indent=2)
    print(json.dumps({"architecture": arch, "quantized": quantized, "pre": pre, "vocab": vocab, "model_type": model.config.model_type}))


if __name__ == "__main__":
    main()
