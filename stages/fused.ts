// Node fused: the adapters fused into the base model (de-quantized when the base is quantized), its
// config.json cleaned of quantization keys at every depth, then proven to load and generate.
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { PipelineConfig } from "../config/schema.ts";
import type { NodeSpec } from "../engine/types.ts";
import { guardModelDir, modelDir } from "./lib/model/model-ref.ts";
// The config cleaner and the template are imported where they are used: a no-op build loads this module for its inputs alone.
import { MLX_CONDITIONS, mlxConditions, pyScript, runPython, toolVersions } from "./lib/toolchain/tools.ts";

const SMOKE = pyScript("smoke_generate.py");
/**
 * A fixed question, rendered with the model's chat template, whose greedy answer the gguf node compares with
 * llama.cpp's. In-template text gives peaked logits, so the comparison is not decided by float noise.
 */
const SMOKE_QUESTION = "Convert 7 km to m.";
const SMOKE_TOKENS = 8;
export const SMOKE_FILE = "smoke.json";

export interface SmokeResult {
  readonly prompt: string;
  readonly text: string;
  readonly tokens: readonly number[];
}

/** The smoke question as the model sees it at inference, without the BOS text the tokenizer adds itself. */
async function smokePrompt(base: string): Promise<string> {
  const { loadChatTemplate, withoutAddedBos } = await import("./lib/data/chat-template.ts");
  const template = await loadChatTemplate(base);
  if (!template) return SMOKE_QUESTION;
  const text = template.render([{ role: "user", content: SMOKE_QUESTION }], { addGenerationPrompt: true });
  return withoutAddedBos(template, text);
}

/** The quantization keys of a model folder's config.json (none for a float model). */
async function quantizationKeysOf(dir: string): Promise<string[]> {
  return (await import("./lib/model/clean-config.ts")).folderQuantizationKeys(dir);
}

export const fusedNode: NodeSpec<PipelineConfig> = {
  id: "fused",
  deps: ["adapters", "model", "mlx-env"],
  description: "adapters fused into the base model (mlx_lm fuse)",
  conditions: MLX_CONDITIONS,
  inputs: async (ctx) => ({
    files: [SMOKE],
    params: { smoke_question: SMOKE_QUESTION, smoke_tokens: SMOKE_TOKENS },
    tools: await toolVersions(ctx.upstream("mlx-env"), ["mlx", "mlx_lm"]),
    command: ["python -m mlx_lm fuse", "--dequantize when the base is quantized", "clean config.json", "smoke_generate.py"],
  }),
  async guard(ctx) {
    const dir = await guardModelDir(ctx);
    if (!dir || !existsSync(join(dir, "config.json"))) return [];
    const keys = await quantizationKeysOf(dir);
    return keys.length > 0
      ? [{ level: "ok", code: "fuse.dequantize", message: `the base model is quantized (${keys.join(", ")}): fuse de-quantizes it and the config is cleaned at every depth` }]
      : [];
  },
  async run(ctx) {
    const base = await modelDir(ctx.upstream("model"), ctx.root);
    const dequantize = (await quantizationKeysOf(base)).length > 0;
    const args = ["-m", "mlx_lm", "fuse", "--model", base, "--adapter-path", ctx.upstream("adapters"), "--save-path", ctx.staging];
    ctx.progress(dequantize ? "fusing and de-quantizing" : "fusing");
    await runPython(ctx, "mlx-env", dequantize ? [...args, "--dequantize"] : args, "mlx_lm fuse");
    const { cleanConfigFile } = await import("./lib/model/clean-config.ts");
    const removed = await cleanConfigFile(join(ctx.staging, "config.json"));
    if (removed.length > 0) ctx.note(`removed ${removed.join(", ")} from config.json`);
    ctx.progress("loading the fused model and generating");
    const prompt = await smokePrompt(base);
    const smoke = (await runPython(ctx, "mlx-env", [SMOKE, "--model", ctx.staging, "--prompt", prompt, "--max-tokens", String(SMOKE_TOKENS), "--ignore-eos"], "loading the fused model")) as SmokeResult;
    await writeFile(join(ctx.staging, SMOKE_FILE), JSON.stringify({ ...smoke, prompt }, null, 2) + "\n");
    ctx.note(`the fused model loads and generates: ${JSON.stringify(smoke.text)}`);
    ctx.record(await mlxConditions(ctx));
  },
};
