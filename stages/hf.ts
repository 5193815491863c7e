// Node hf: a folder Hugging Face transformers loads as it is: the fused weights and config, with the base
// model's tokenizer files, proven by loading it with transformers.
import { existsSync } from "node:fs";
import { copyFile, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { PipelineConfig } from "../config/schema.ts";
import type { Json, NodeSpec } from "../engine/types.ts";
import { UserError } from "../engine/types.ts";
import { guardModelDir, modelDir, TOKENIZER_FILES } from "./lib/model/model-ref.ts";
import { pyScript, runPython, toolVersions } from "./lib/toolchain/tools.ts";

const VERIFY = pyScript("hf_verify.py");
/** Above this the weights are not loaded for verification (config and tokenizer still are). */
const LOAD_WEIGHTS_UP_TO = 2e9;

export const hfNode: NodeSpec<PipelineConfig> = {
  id: "hf",
  deps: ["fused", "model", "llama-cpp"],
  description: "a Hugging Face transformers folder",
  inputs: async (ctx) => ({
    files: [VERIFY],
    params: { tokenizer_files: [...TOKENIZER_FILES], load_weights_up_to: LOAD_WEIGHTS_UP_TO },
    tools: await toolVersions(ctx.upstream("llama-cpp"), ["transformers", "torch"]),
    command: ["copy fused weights + config", "copy base tokenizer files", "hf_verify.py"],
  }),
  async guard(ctx) {
    const dir = await guardModelDir(ctx);
    if (!dir) return [];
    // Imported here, as the config cleaner in run: a no-op build loads this module for its inputs alone.
    const [{ readModelFacts }, { isMoE }] = await Promise.all([import("../guard/verdicts.ts"), import("../guard/architectures.ts")]);
    const { shape } = await readModelFacts(dir);
    if (!isMoE(shape)) return [];
    return [
      {
        level: "error",
        code: "export.moe-stacked",
        message: `${shape.textModelType} is a mixture of experts: mlx-lm's fused model keeps its experts stacked in switch_mlp tensors, which transformers and llama.cpp's converter do not read, and this tool does not unstack them yet.`,
        fix: "Build up to `fused` (npx tsx pipeline.ts fused) and use the fused model with mlx-lm, or train a dense model for a GGUF.",
      },
    ];
  },
  async run(ctx) {
    const fused = ctx.upstream("fused");
    const base = await modelDir(ctx.upstream("model"), ctx.root);
    const config = JSON.parse(await readFile(join(fused, "config.json"), "utf8")) as Json;
    const { quantizationKeys } = await import("./lib/model/clean-config.ts");
    const leftover = quantizationKeys(config);
    if (leftover.length > 0) throw new UserError(`${fused}/config.json still has ${leftover.join(", ")}; rebuild it with --force fused.`);
    for (const name of await readdir(fused)) {
      if (name === "config.json" || name.endsWith(".safetensors") || name === "model.safetensors.index.json") {
        await copyFile(join(fused, name), join(ctx.staging, name));
      }
    }
    const copied: string[] = [];
    for (const name of TOKENIZER_FILES) {
      const from = existsSync(join(base, name)) ? join(base, name) : join(fused, name);
      if (existsSync(from)) {
        await copyFile(from, join(ctx.staging, name));
        copied.push(name);
      }
    }
    ctx.progress("loading the folder with transformers");
    const verified = (await runPython(ctx, "llama-cpp", [VERIFY, ctx.staging, String(LOAD_WEIGHTS_UP_TO)], "loading the hf folder with transformers")) as {
      architectures: string[];
      params: number | null;
    };
    const loaded = verified.params === null ? "config and tokenizer (weights too large to load here)" : `${verified.params.toLocaleString("en")} parameters`;
    ctx.note(`transformers loads it: ${verified.architectures.join(", ")}, ${loaded}; tokenizer files: ${copied.join(", ")}`);
  },
};
