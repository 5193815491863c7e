"""mlx-lm LoRA adapters as a PEFT adapter folder, the layout llama.cpp's convert_lora_to_gguf.py reads.

Usage: python mlx_to_peft.py ADAPTERS_DIR MODEL_DIR OUT_DIR

mlx-lm computes y += scale * (x @ lora_a) @ lora_b with lora_a (in, r) and lora_b (r, out), under the module's
own path (model.layers.3.self_attn.q_proj.lora_a). PEFT computes y += (alpha / r) * B @ (A @ x) with A (r, in)
and B (out, r), named base_model.model.<module path>.lora_A.weight. So A = lora_a^T, B = lora_b^T and
lora_alpha = scale * r. Every module must be a linear whose <path>.weight is a tensor of MODEL_DIR (the folder
the converter reads the base config from) with shape (out, in): that is the name llama.cpp's tensor map turns
into its own (blk.N.attn_q), so a module that is not there would be applied nowhere.
Prints one JSON line: the modules, targets, rank and alpha; or {"error": ...} and exit 1.
"""

import json
import struct
import sys
from pathlib import Path


def fail(message: str) -> None:
    print(json.dumps({"error": message}))
    sys.exit(1)


def tensor_shapes(model_dir: Path) -> dict[str, list[int]]:
    """Every tensor name and shape in the folder's safetensors files, from their headers alone."""
    shapes: dict[str, list[int]] = {}
    for path in sorted(model_dir.glob("*.safetensors")):
        with path.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
        for name, info in header.items():
            if name != "__metadata__":
                shapes[name] = info["shape"]
    return shapes


def main() -> None:
    adapters, model_dir, out = (Path(a) for a in sys.argv[1:4])
    config = json.loads((adapters / "adapter_config.json").read_text())
    kind = config.get("fine_tune_type", "lora")
    if kind != "lora":
        fail(f"{adapters}/adapter_config.json: fine_tune_type is {kind}; llama.cpp's LoRA format carries plain LoRA only. Use the fused GGUF (node gguf).")
    params = config["lora_parameters"]
    rank, scale = int(params["rank"]), float(params["scale"])

    from safetensors.torch import load_file, save_file

    weights = load_file(str(adapters / "adapters.safetensors"))
    base = tensor_shapes(model_dir)
    pairs: dict[str, dict[str, object]] = {}
    for name, tensor in weights.items():
        module, _, part = name.rpartition(".")
        if part not in ("lora_a", "lora_b"):
            fail(f"{adapters}/adapters.safetensors: {name} is not a lora_a or lora_b tensor (DoRA magnitudes and full fine-tunes cannot be a LoRA GGUF). Use the fused GGUF (node gguf).")
        if tensor.dim() != 2:
            fail(f"{adapters}/adapters.safetensors: {name} has shape {list(tensor.shape)}: a LoRA on stacked experts (switch layers), which llama.cpp's LoRA format cannot carry. Use the fused GGUF (node gguf).")
        pairs.setdefault(module, {})[part] = tensor

    out.mkdir(parents=True, exist_ok=True)
    peft = {}
    targets = set()
    for module, parts in sorted(pairs.items()):
        if set(parts) != {"lora_a", "lora_b"}:
            fail(f"{adapters}/adapters.safetensors: {module} has {', '.join(sorted(parts))} only; a LoRA needs both lora_a and lora_b.")
        a, b = parts["lora_a"].T.contiguous(), parts["lora_b"].T.contiguous()
        target = f"{module}.weight"
        if target not in base:
            fail(f"{adapters}/adapters.safetensors: {module} has no {target} in {model_dir}: the converter would not know which llama.cpp tensor it adapts.")
        if list(base[target]) != [b.shape[0], a.shape[1]] or a.shape[0] != b.shape[1]:
            fail(f"{module}: lora_a^T {list(a.shape)} and lora_b^T {list(b.shape)} do not make a delta of {target}'s shape {base[target]}.")
        if "embed" in module or module.endswith("lm_head"):
            fail(f"{module}: a LoRA on embeddings or the lm_head, which llama.cpp's converter refuses (Embeddings is present in the adapter). Use the fused GGUF (node gguf).")
        peft[f"base_model.model.{module}.lora_A.weight"] = a
        peft[f"base_model.model.{module}.lora_B.weight"] = b
        # PEFT's target_modules are module names within a block, e.g. self_attn.q_proj.
        targets.add(module.split(".layers.", 1)[-1].split(".", 1)[-1])
    if not peft:
        fail(f"{adapters}/adapters.safetensors holds no LoRA tensors.")
    save_file(peft, str(out / "adapter_model.safetensors"))
    alpha = scale * rank
    peft_config = {"peft_type": "LORA", "r": rank, "lora_alpha": alpha, "target_modules": sorted(targets), "bias": "none", "fan_in_fan_out": False}
    (out / "adapter_config.json").write_text(json.dumps(peft_config, indent=2) + "\n")
    print(json.dumps({"modules": len(pairs), "targets": sorted(targets), "rank": rank, "alpha": alpha}))


if __name__ == "__main__":
    main()
