// Node lora-gguf: the trained adapters as a LoRA GGUF, megabytes instead of the whole model, served on the base
// GGUF (llama-server -m base.gguf --lora lora.gguf). mlx-lm writes no PEFT layout, so mlx_to_peft.py writes it
// (A = lora_aᵀ, B = lora_bᵀ, lora_alpha = scale · r), then llama.cpp's own convert_lora_to_gguf.py converts it.
import { stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { PipelineConfig } from "../config/schema.ts";
import type { NodeSpec } from "../engine/types.ts";
import { UserError } from "../engine/types.ts";
import { converterCode } from "./lib/llama/converter.ts";
import { guardModelDir } from "./lib/model/model-ref.ts";
import { pyScript, runPython, toolVersions } from "./lib/toolchain/tools.ts";

export const LORA_FILE = "lora.gguf";
const REPORT_FILE = "lora-gguf.json";
const TO_PEFT = pyScript("mlx_to_peft.py");
/** The adapter's tensors are small: f16 halves them and llama.cpp applies them in f32 anyway. */
const OUTTYPE = "f16";

interface Peft {
  readonly modules: number;
  readonly targets: string[];
  readonly rank: number;
  readonly alpha: number;
}

export const loraGgufNode: NodeSpec<PipelineConfig> = {
  id: "lora-gguf",
  // hf: the converter's --base (its config.json) and the tensor names each adapted module must match.
  deps: ["adapters", "hf", "llama-cpp"],
  description: "the adapters as a LoRA GGUF (llama.cpp --lora)",
  inputs: async (ctx) => ({
    files: [TO_PEFT, ...converterCode(ctx)],
    params: { outtype: OUTTYPE },
    tools: await toolVersions(ctx.upstream("llama-cpp"), ["llama_cpp", "torch"]),
    command: ["mlx_to_peft.py", `convert_lora_to_gguf.py --outtype ${OUTTYPE}`],
  }),
  async guard(ctx) {
    const dir = await guardModelDir(ctx);
    const [{ loraGgufVerdicts }, { readModelFacts }] = await Promise.all([import("../guard/lora-gguf.ts"), import("../guard/verdicts.ts")]);
    const shape = dir ? await readModelFacts(dir).then((f) => f.shape, () => undefined) : undefined;
    return loraGgufVerdicts(ctx.config.lora, shape);
  },
  async run(ctx) {
    const peftDir = join(ctx.scratch, "peft");
    const hf = ctx.upstream("hf");
    ctx.progress("writing the adapters in PEFT layout");
    const peft = (await runPython(ctx, "llama-cpp", [TO_PEFT, ctx.upstream("adapters"), hf, peftDir], "mlx_to_peft.py")) as Peft;
    const out = join(ctx.staging, LORA_FILE);
    const { convertLora } = await import("./lib/llama/convert.ts");
    await convertLora(ctx, peftDir, hf, out, OUTTYPE);

    const { gguf } = await import("@huggingface/gguf");
    const { metadata, tensorInfos } = await gguf(out, { allowLocalFile: true });
    const meta = metadata as Record<string, unknown>;
    // Each adapted module is one lora_a and one lora_b tensor on the llama.cpp tensor it modifies.
    if (meta["general.type"] !== "adapter" || meta["adapter.type"] !== "lora" || tensorInfos.length !== 2 * peft.modules) {
      throw new UserError(
        `${out}: general.type ${String(meta["general.type"])}, adapter.type ${String(meta["adapter.type"])}, ${tensorInfos.length} tensors for ${peft.modules} adapted modules ` +
          "(expected an adapter of type lora with a lora_a and a lora_b per module): the converter dropped or renamed some. See cache/logs/lora-gguf.log.",
      );
    }
    const bytes = (await stat(out)).size;
    const report = { file: LORA_FILE, bytes, type: OUTTYPE, rank: peft.rank, alpha: peft.alpha, targets: peft.targets, modules: peft.modules, tensors: tensorInfos.map((t) => t.name) };
    await writeFile(join(ctx.staging, REPORT_FILE), JSON.stringify(report, null, 2) + "\n");
    ctx.record({ bytes, modules: peft.modules });
    ctx.note(`${(bytes / 1e6).toFixed(2)} MB LoRA GGUF: ${peft.modules} modules (${peft.targets.join(", ")}), rank ${peft.rank}, alpha ${peft.alpha}`);
  },
};

