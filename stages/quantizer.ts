// Node quantizer: llama.cpp's llama-quantize for K-quants (Q4_K_M, ...), found on PATH or built once with
// cmake from the same llama.cpp source that converts the model. Only in the graph when gguf.quantize is set.
import { existsSync } from "node:fs";
import { writeFile, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { PipelineConfig } from "../config/schema.ts";
import type { BaseCtx, NodeSpec, Verdict } from "../engine/types.ts";
import { converterRegistry, converterSource } from "./lib/llama/converter.ts";
import { fromCacheRoot, onPath, underCacheRoot } from "./lib/toolchain/paths.ts";
import { toolVersions } from "./lib/toolchain/tools.ts";

const QUANTIZER_FILE = "quantizer.json";
const BINARY = "llama-quantize";

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
  if (onPath(BINARY)) return [{ level: "ok", code: "quantizer.path", message: `${BINARY} found on PATH` }];
  const missing = ["cmake", "c++"].filter((c) => !onPath(c));
  return missing.length > 0
    ? [
        {
          level: "error",
          code: "quantizer.cannot-build",
          message: `gguf.quantize: ${type} needs ${BINARY}, which is not on PATH, and ${missing.join(" and ")} to build it ${missing.length > 1 ? "are" : "is"} missing.`,
          fix: `Install cmake and a C++ compiler (macOS: xcode-select --install; Debian: apt-get install cmake g++), put ${BINARY} on PATH, or use gguf.outtype: q8_0 without gguf.quantize.`,
        },
      ]
    : [{ level: "ok", code: "quantizer.build", message: `${BINARY} will be built once from llama.cpp's source with cmake (a few minutes)` }];
}

export const quantizerNode: NodeSpec<PipelineConfig> = {
  id: "quantizer",
  deps: ["llama-cpp"],
  description: "llama.cpp's llama-quantize",
  inputs: async (ctx) => {
    const found = onPath(BINARY);
    return {
      files: found ? [found] : [],
      params: { from: found ? "PATH" : "source" },
      tools: await toolVersions(ctx.upstream("llama-cpp"), ["llama_cpp"]),
      command: found ? [found] : ["cmake -B build -DLLAMA_CURL=OFF ...", `cmake --build build --target ${BINARY}`],
    };
  },
  guard: quantizeVerdicts,
  async run(ctx) {
    const binary = onPath(BINARY) ?? (await (await import("./lib/llama/cmake-build.ts")).buildLlamaTarget(ctx, BINARY));
    // One built here is recorded relative to the per-user cache root: the same bytes on every machine.
    await writeFile(join(ctx.staging, QUANTIZER_FILE), JSON.stringify({ binary: underCacheRoot(binary) }, null, 2) + "\n");
  },
  intact: async (dir) => {
    const binary = await quantizerBinary(dir);
    return existsSync(binary) ? undefined : `${binary} is gone`;
  },
};

/** The llama-quantize the quantizer node published, on this machine. */
export async function quantizerBinary(output: string): Promise<string> {
  const { binary } = JSON.parse(await readFile(join(output, QUANTIZER_FILE), "utf8")) as { binary: string };
  return fromCacheRoot(binary);
}
