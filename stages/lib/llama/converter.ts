// llama.cpp's converter: the bundled source (node-llama-cpp's git bundle, unpacked once per user) or the
// user's own checkout, and what it converts, read from its source before anything is built.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import type { PipelineConfig } from "../../../config/schema.ts";
import type { BaseCtx } from "../../../engine/types.ts";
import { toolFile, userCacheDir } from "../toolchain/paths.ts";
import { findPython } from "../toolchain/python.ts";
import { pyScript } from "../toolchain/tools.ts";

export const BUNDLE = toolFile("node_modules", "node-llama-cpp", "llama", "gitRelease.bundle");
const BUNDLE_INFO = toolFile("node_modules", "node-llama-cpp", "llama", "llama.cpp.info.json");

export function bundledRelease(): string {
  return (JSON.parse(readFileSync(BUNDLE_INFO, "utf8")) as { tag: string }).tag;
}

/** The bundled llama.cpp source, unpacked once per user (a 2-second git clone of a local bundle). */
function bundledSource(): string {
  const dir = userCacheDir("llama.cpp", bundledRelease());
  if (existsSync(join(dir, "convert_hf_to_gguf.py"))) return dir;
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(userCacheDir("llama.cpp"), { recursive: true });
  execFileSync("git", ["clone", "--quiet", BUNDLE, tmp], { stdio: "ignore" });
  try {
    renameSync(tmp, dir);
  } catch {
    // Another build unpacked it meanwhile (rename onto a non-empty folder fails): use theirs.
    rmSync(tmp, { recursive: true, force: true });
  }
  return dir;
}

/** The user's own llama.cpp checkout, when pipeline.yaml or LLAMA_CPP_DIR names one. */
export function userCheckout(ctx: BaseCtx<PipelineConfig>): string | undefined {
  const dir = ctx.config.llama_cpp ?? process.env.LLAMA_CPP_DIR;
  return dir ? resolve(ctx.root, dir) : undefined;
}

/**
 * The converter's Python in the user's checkout, as input patterns: its commit alone would miss an edit not
 * yet committed, and the converter is what decides the GGUF. (The bundled release is fixed by its tag.)
 */
export function converterCode(ctx: BaseCtx<PipelineConfig>): string[] {
  const own = userCheckout(ctx);
  return own ? [join(own, "convert_hf_to_gguf.py"), join(own, "conversion", "**", "*.py"), join(own, "gguf-py", "gguf", "**", "*.py")] : [];
}

export function converterSource(ctx: BaseCtx<PipelineConfig>): string {
  return userCheckout(ctx) ?? bundledSource();
}

export interface ConverterRegistry {
  readonly architectures: string[];
  readonly outtypes: string[];
  readonly quantTypes: string[];
}

/** What a llama.cpp tree converts, read from its source by stages/py/convert_supported.py (no torch import). */
export function converterRegistry(source: string, python?: string): ConverterRegistry {
  const interpreter = findPython(python).path ?? "python3";
  const key = `${interpreter}\0${source}`;
  let found = registries.get(key);
  if (!found) {
    found = JSON.parse(execFileSync(interpreter, [pyScript("convert_supported.py"), source], { encoding: "utf8" })) as ConverterRegistry;
    registries.set(key, found); // asked by the gguf and quantizer guards alike: read the source once
  }
  return found;
}

const registries = new Map<string, ConverterRegistry>();
