// What guards can read before anything is built: the model folder when it exists, the converter's
// registry, mlx-lm's own answer about an architecture (cached: it trains one step).
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { PipelineConfig } from "../../../config/schema.ts";
import { sha256 } from "../../../engine/digest.ts";
import type { BaseCtx } from "../../../engine/types.ts";
import type { ProbeResult } from "../../../guard/verdicts.ts";
import { modelDir, parseModelRef } from "../model/model-ref.ts";
import { toolFile, userCacheDir } from "../toolchain/paths.ts";
import { findPython } from "../toolchain/python.ts";
import { pyScript, PY_ENV } from "../toolchain/tools.ts";
import { existingVenv, readToolchain, TOOLCHAIN_INFO, venvPython } from "../toolchain/venv.ts";
import { openblasEnv } from "../toolchain/openblas.ts";

/** The base model folder, if it can be read now. */
export async function guardModelDir(ctx: BaseCtx<PipelineConfig>): Promise<string | undefined> {
  const ref = parseModelRef(ctx.config.model, ctx.root);
  if (ref.kind === "local") return ref.path;
  return ctx.isBuilt("model") ? modelDir(ctx.upstream("model"), ctx.root).catch(() => undefined) : undefined;
}

/**
 * mlx-lm's own verdict on an architecture: its model module (after its remapping), and one LoRA step on
 * a cut-down copy. Cached per config and mlx-lm version, since the step takes seconds.
 */
export async function probeArchitecture(
  ctx: BaseCtx<PipelineConfig>,
  configPath: string,
  withStep: boolean,
): Promise<{ probe: ProbeResult; mlxLm: string } | undefined> {
  const info = await mlxToolchain(ctx);
  if (!info) return undefined;
  const mlxLm = info.versions.mlx_lm ?? "unknown";
  const config = readFileSync(configPath, "utf8");
  const cache = userCacheDir("arch-probes", `${sha256(`${config}\n${mlxLm}\n${withStep}`).slice(0, 24)}.json`);
  if (existsSync(cache)) return { probe: JSON.parse(readFileSync(cache, "utf8")) as ProbeResult, mlxLm };
  const out = execFileSync(info.python, [pyScript("arch_probe.py"), configPath, ...(withStep ? ["--lora-step"] : [])], {
    encoding: "utf8",
    env: { ...process.env, ...PY_ENV, ...info.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const probe = JSON.parse(out.trim().split("\n").at(-1) ?? "{}") as ProbeResult;
  mkdirSync(userCacheDir("arch-probes"), { recursive: true });
  // Written whole, then renamed: concurrent builds may probe the same config.
  writeFileSync(`${cache}.${process.pid}`, JSON.stringify(probe));
  renameSync(`${cache}.${process.pid}`, cache);
  return { probe, mlxLm };
}

/**
 * The mlx environment: this project's, or the identical one another project already built (same pinned
 * requirements, same Python), so even a first build can ask mlx-lm before anything runs.
 */
async function mlxToolchain(ctx: BaseCtx<PipelineConfig>): Promise<{ python: string; env: Record<string, string>; versions: Record<string, string> } | undefined> {
  if (ctx.isBuilt("mlx-env")) return readToolchain(ctx.upstream("mlx-env"));
  const venv = await mlxVenv(ctx);
  if (!venv) return undefined;
  const version = (pkg: string) => {
    const dist = execFileSync(venvPython(venv), [TOOLCHAIN_INFO, pkg], { encoding: "utf8" });
    return (JSON.parse(dist) as Record<string, string>)[pkg.replace("-", "_")] ?? "unknown";
  };
  return { python: venvPython(venv), env: await openblasEnv(venv), versions: { mlx_lm: version("mlx-lm") } };
}

/** The mlx environment's interpreter and process environment, found as mlxToolchain finds it, without asking versions. */
export async function mlxPython(ctx: BaseCtx<PipelineConfig>): Promise<{ python: string; env: Record<string, string> } | undefined> {
  if (ctx.isBuilt("mlx-env")) return readToolchain(ctx.upstream("mlx-env"));
  const venv = await mlxVenv(ctx);
  return venv ? { python: venvPython(venv), env: await openblasEnv(venv) } : undefined;
}

async function mlxVenv(ctx: BaseCtx<PipelineConfig>): Promise<string | undefined> {
  const python = findPython(ctx.config.python).path;
  return python ? existingVenv("mlx", MLX_REQUIREMENTS, python) : undefined;
}

const MLX_REQUIREMENTS = toolFile("stages", "requirements", "mlx.txt");
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
