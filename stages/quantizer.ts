// Node quantizer: llama.cpp's llama-quantize for K-quants (Q4_K_M, ...), found on PATH or built once with
// cmake from the same llama.cpp source that converts the model. Only in the graph when gguf.quantize is set.
import type { PipelineConfig } from "../config/schema.ts";
import type { BaseCtx, NodeSpec, Verdict } from "../engine/types.ts";
import { converterRegistry, converterSource } from "./lib/llama/converter.ts";
import { programBinary, programInputs, programIntact, programVerdict, runProgram as programRun, type LlamaProgram } from "./lib/llama/program.ts";

const QUANTIZER: LlamaProgram = { binary: "llama-quantize", file: "quantizer.json", configure: "cmake -B build -DLLAMA_CURL=OFF ..." };

/** Quant types are those llama-quantize of this llama.cpp source accepts (read from its quantize.cpp). */
function quantizeVerdicts(ctx: BaseCtx<PipelineConfig>): Verdict[] {
  const type = ctx.config.gguf.quantize;
  if (!type) return [];
  const known = converterRegistry(converterSource(ctx), ctx.config.python).quantTypes;
  if (!known.includes(type.toUpperCase())) {
    return [
      {
        level: "error",
        code: "gguf.quant-type",
        message: `gguf.quantize: "${type}" is not a llama.cpp quant type.`,
        fix: `Use one of ${known.filter((k) => /_K|Q8_0|IQ4/.test(k)).join(", ")} (or remove gguf.quantize).`,
      },
    ];
  }
  return [programVerdict(QUANTIZER, "quantizer", `gguf.quantize: ${type}`, "use gguf.outtype: q8_0 without gguf.quantize")];
}

export const quantizerNode: NodeSpec<PipelineConfig> = {
  id: "quantizer",
  deps: ["llama-cpp"],
  description: "llama.cpp's llama-quantize",
  inputs: (ctx) => programInputs(ctx, QUANTIZER),
  guard: quantizeVerdicts,
  run: (ctx) => programRun(ctx, QUANTIZER),
  intact: (dir) => programIntact(dir, QUANTIZER),
};

/** The llama-quantize the quantizer node published, on this machine. */
export const quantizerBinary = (output: string): Promise<string> => programBinary(output, QUANTIZER);
