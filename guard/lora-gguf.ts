// What llama.cpp's LoRA GGUF (convert_lora_to_gguf.py, llama_adapter_lora) can carry, checked before training:
// plain LoRA on the linears of the blocks. Everything else only exists in the fused model.
import type { Verdict } from "../engine/types.ts";
import type { LoraConfig } from "../config/schema.ts";
import type { ModelShape } from "./model-shape.ts";

const FIX = "Deploy the fused GGUF instead (npx tsx pipeline.ts gguf: models/gguf/model.gguf), or train a plain LoRA (lora.fine_tune_type: lora).";

/** Verdicts for the lora-gguf node; `shape` is undefined while the model cannot be read yet. */
export function loraGgufVerdicts(lora: Pick<LoraConfig, "fine_tune_type" | "keys">, shape: ModelShape | undefined): Verdict[] {
  const verdicts: Verdict[] = [];
  switch (lora.fine_tune_type) {
    case "lora":
      break;
    case "dora":
      verdicts.push({
        level: "error",
        code: "lora-gguf.dora",
        // The converter's words: a DoRA magnitude vector is "Not a lora_A or lora_B tensor".
        message: "lora.fine_tune_type is dora: a DoRA adapter's magnitude vectors are not lora_A or lora_B tensors, and llama.cpp's convert_lora_to_gguf.py refuses them (\"Unexpected name …: Not a lora_A or lora_B tensor\"); llama.cpp applies plain LoRA only.",
        fix: FIX,
      });
      break;
    default: {
      const never: never = lora.fine_tune_type;
      throw new Error(`unknown fine_tune_type ${String(never)}`);
    }
  }
  const embedding = (lora.keys ?? []).filter((k) => /(^|\.)(embed\w*|lm_head)$/.test(k));
  if (embedding.length > 0) {
    verdicts.push({
      level: "error",
      code: "lora-gguf.embeddings",
      message: `lora.keys adapts ${embedding.join(", ")}: llama.cpp's converter refuses a LoRA on embeddings ("Embeddings is present in the adapter") and on a tied lm_head ("lm_head is present in adapter, but is ignored in base model").`,
      fix: `Remove ${embedding.join(", ")} from lora.keys, or ${FIX.charAt(0).toLowerCase()}${FIX.slice(1)}`,
    });
  }
  if (shape?.moe) {
    verdicts.push({
      level: "error",
      code: "lora-gguf.moe",
      message: `${shape.textModelType} is a mixture of experts: mlx-lm puts LoRA on its stacked switch layers (one 3-D tensor for all ${shape.moe.numExperts} experts), which a PEFT adapter and llama.cpp's LoRA format cannot carry.`,
      fix: FIX,
    });
  }
  if (verdicts.length === 0) verdicts.push({ level: "ok", code: "lora-gguf.lora", message: "plain LoRA on the blocks' linears: llama.cpp's LoRA GGUF carries it" });
  return verdicts;
}
