// A llama.cpp program as a node's output (llama-quantize, llama-server): found on PATH, or built once with
// cmake from the llama-cpp node's source (cmake-build.ts). The output is a small JSON naming the binary,
// relative to the per-user cache root when built there, so the same bytes are published on every machine.
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { PipelineConfig } from "../../../config/schema.ts";
import type { BaseCtx, DeclaredInputs, RunCtx, Verdict } from "../../../engine/types.ts";
import { fromCacheRoot, onPath, underCacheRoot } from "../toolchain/paths.ts";
import { toolVersions } from "../toolchain/tools.ts";
import type { LlamaTarget } from "./cmake-build.ts";

export interface LlamaProgram {
  /** The program's name, on PATH or as a cmake target. */
  readonly binary: LlamaTarget;
  /** The JSON file the node publishes. */
  readonly file: string;
  /** The cmake configure line shown by `status`. */
  readonly configure: string;
}

export async function programInputs(ctx: BaseCtx<PipelineConfig>, p: LlamaProgram): Promise<DeclaredInputs> {
  const found = onPath(p.binary);
  return {
    files: found ? [found] : [],
    params: { from: found ? "PATH" : "source" },
    tools: await toolVersions(ctx.upstream("llama-cpp"), ["llama_cpp"]),
    command: found ? [found] : [p.configure, `cmake --build build --target ${p.binary}`],
  };
}

/** ok when the program is on PATH or can be built; else an error under `code` with `instead` as the way out. */
export function programVerdict(p: LlamaProgram, code: string, neededBy: string, instead: string): Verdict {
  if (onPath(p.binary)) return { level: "ok", code: `${code}.path`, message: `${p.binary} found on PATH` };
  const missing = ["cmake", "c++"].filter((c) => !onPath(c));
  if (missing.length === 0) return { level: "ok", code: `${code}.build`, message: `${p.binary} will be built once from llama.cpp's source with cmake (several minutes)` };
  return {
    level: "error",
    code: `${code}.cannot-build`,
    message: `${neededBy} needs ${p.binary}, which is not on PATH, and ${missing.join(" and ")} to build it ${missing.length > 1 ? "are" : "is"} missing.`,
    fix: `Install cmake and a C++ compiler (macOS: xcode-select --install; Debian: apt-get install cmake g++), put ${p.binary} on PATH, or ${instead}.`,
  };
}

export async function runProgram(ctx: RunCtx<PipelineConfig>, p: LlamaProgram): Promise<void> {
  const binary = onPath(p.binary) ?? (await (await import("./cmake-build.ts")).buildLlamaTarget(ctx, p.binary));
  await writeFile(join(ctx.staging, p.file), JSON.stringify({ binary: underCacheRoot(binary) }, null, 2) + "\n");
}

/** The binary a published output names, on this machine. */
export async function programBinary(output: string, p: LlamaProgram): Promise<string> {
  const { binary } = JSON.parse(await readFile(join(output, p.file), "utf8")) as { binary: string };
  return fromCacheRoot(binary);
}

export async function programIntact(output: string, p: LlamaProgram): Promise<string | undefined> {
  const binary = await programBinary(output, p);
  return existsSync(binary) ? undefined : `${binary} is gone`;
}
