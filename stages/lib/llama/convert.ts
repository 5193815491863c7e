// llama.cpp's own converters, run from the llama-cpp node's source in its environment: a Hugging Face folder
// to a GGUF (convert_hf_to_gguf.py), and a PEFT LoRA folder to a LoRA GGUF (convert_lora_to_gguf.py).
// The gguf, base-gguf and lora-gguf nodes all convert through here, so one converter makes every file.
import { join } from "node:path";
import type { PipelineConfig } from "../../../config/schema.ts";
import type { RunCtx } from "../../../engine/types.ts";
import { assertSuccess, UserError } from "../../../engine/types.ts";
import { PY_ENV } from "../toolchain/tools.ts";
import { threadEnv } from "../toolchain/threads.mjs";
import { readToolchain, venvPython } from "../toolchain/venv.ts";

/**
 * The converters take only AutoConfig and AutoTokenizer from transformers, which need no torch (they import torch
 * themselves). Without USE_TORCH=0 transformers also loads torch's compiler and distributed modules at import:
 * ~1.6 s more CPU per converter run, for the same bytes out.
 */
export const CONVERTER_ENV: Readonly<Record<string, string | undefined>> = { ...PY_ENV, USE_TORCH: "0" };

async function runConverter(ctx: RunCtx<PipelineConfig>, script: string, args: readonly string[], prefix: string): Promise<void> {
  const info = await readToolchain(ctx.upstream("llama-cpp"));
  const result = await ctx.exec(venvPython(info.venv), [join(info.source!, script), ...args], {
    env: { ...CONVERTER_ENV, ...threadEnv() },
    onLine: (line) => line.startsWith(prefix) && ctx.progress(line.slice(prefix.length, prefix.length + 84)),
  });
  if (result.exitCode !== 0) {
    const { converterSaid } = await import("./vocab-check.ts");
    const said = converterSaid(result.tail);
    if (said) throw new UserError(`llama.cpp's ${script} refused: ${said}\n  Log: ${result.logPath}`);
    assertSuccess(result, script);
  }
}

/** A Hugging Face model folder as a GGUF of `outtype`. */
export async function convertModel(ctx: RunCtx<PipelineConfig>, folder: string, outfile: string, outtype: string): Promise<void> {
  ctx.progress(`converting to ${outtype} with llama.cpp's converter`);
  await runConverter(ctx, "convert_hf_to_gguf.py", [folder, "--outfile", outfile, "--outtype", outtype], "INFO:hf-to-gguf:");
}

/** A PEFT adapter folder as a LoRA GGUF; `base` is the folder whose config.json names the architecture. */
export async function convertLora(ctx: RunCtx<PipelineConfig>, peft: string, base: string, outfile: string, outtype: string): Promise<void> {
  ctx.progress(`converting the adapter to a ${outtype} LoRA GGUF with llama.cpp's converter`);
  await runConverter(ctx, "convert_lora_to_gguf.py", [peft, "--base", base, "--outfile", outfile, "--outtype", outtype], "INFO:lora-to-gguf:");
}
