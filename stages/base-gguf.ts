// Node base-gguf: the base model (node model's folder) as an f16 GGUF, by the same converter as the fused
// GGUF: the model a LoRA GGUF is applied to (llama-server -m base.gguf --lora lora.gguf).
import { stat } from "node:fs/promises";
import { join } from "node:path";
import type { PipelineConfig } from "../config/schema.ts";
import type { NodeSpec } from "../engine/types.ts";
import { converterCode } from "./lib/llama/converter.ts";
import { guardModelDir, modelDir } from "./lib/model/model-ref.ts";
import { toolVersions } from "./lib/toolchain/tools.ts";

export const BASE_GGUF_FILE = "base.gguf";
/** A LoRA is trained on float weights: the base it is applied to stays unquantized. */
const OUTTYPE = "f16";

export const baseGgufNode: NodeSpec<PipelineConfig> = {
  id: "base-gguf",
  deps: ["model", "llama-cpp"],
  description: "the base model as an f16 GGUF (for the LoRA GGUF)",
  inputs: async (ctx) => ({
    files: converterCode(ctx),
    params: { outtype: OUTTYPE },
    tools: await toolVersions(ctx.upstream("llama-cpp"), ["llama_cpp", "torch", "transformers"]),
    command: [`convert_hf_to_gguf.py --outtype ${OUTTYPE}`],
  }),
  async guard(ctx) {
    const dir = await guardModelDir(ctx);
    const keys = dir ? await (await import("./lib/model/clean-config.ts")).folderQuantizationKeys(dir).catch(() => []) : [];
    return keys.length === 0
      ? []
      : [
          {
            level: "error",
            code: "base-gguf.quantized",
            message: `the base model is MLX-quantized (${keys.join(", ")} in ${dir}/config.json): llama.cpp's converter cannot read MLX quantization ("Can not map tensor 'lm_head.biases'"), and the LoRA was trained on the dequantized weights the fused model holds.`,
            fix: "Deploy the fused GGUF (npx tsx pipeline.ts gguf), or train on the float release of the model (without -4bit/-8bit) to get a base GGUF and a LoRA GGUF.",
          },
        ];
  },
  async run(ctx) {
    const base = await modelDir(ctx.upstream("model"), ctx.root);
    const out = join(ctx.staging, BASE_GGUF_FILE);
    const { convertModel } = await import("./lib/llama/convert.ts");
    await convertModel(ctx, base, out, OUTTYPE);
    const bytes = (await stat(out)).size;
    ctx.record({ bytes });
    ctx.note(`${(bytes / 1e6).toFixed(1)} MB ${OUTTYPE} base GGUF`);
  },
};
