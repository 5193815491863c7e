// Reading tool versions and running small Python helpers in a toolchain's environment.
import { cpus } from "node:os";
import type { ExecOptions, Json, RunCtx } from "../../../engine/types.ts";
import { assertSuccess, UserError } from "../../../engine/types.ts";
import { toolFile, userCacheDir } from "./paths.ts";
import { readToolchain, venvPython } from "./venv.ts";

/** A helper script under stages/py, declared as an input by every node that runs it. */
export function pyScript(name: string): string {
  return toolFile("stages", "py", name);
}

/**
 * Environment for every Python tool: offline hub, unbuffered, no colour (compute-heavy ones add threadEnv's
 * pool sizes and waits). FORCE_COLOR (set by many CI systems) makes rich treat the pipe as an
 * 80-column terminal and wrap long lines, so it is removed. stages/py/site keeps transformers' import structure
 * in the per-user cache (its sitecustomize.py says why): ~0.5 s of CPU less in every process that imports it.
 */
export const PY_ENV: Readonly<Record<string, string | undefined>> = {
  HF_HUB_OFFLINE: "1",
  PYTHONUNBUFFERED: "1",
  NO_COLOR: "1",
  TERM: "dumb",
  TTY_COMPATIBLE: "0",
  FORCE_COLOR: undefined,
  TOKENIZERS_PARALLELISM: "false",
  PYTHONPATH: toolFile("stages", "py", "site"),
  MLX_PIPELINE_IMPORT_CACHE: userCacheDir("python-imports"),
};

/** Runs a Python module or script (training, fusing: compute-heavy) in the environment a toolchain node published; returns its last JSON line. */
export async function runPython<C>(
  ctx: RunCtx<C>,
  toolchainNode: string,
  args: readonly string[],
  what: string,
  options: ExecOptions = {},
): Promise<unknown> {
  const info = await readToolchain(ctx.upstream(toolchainNode));
  const { threadEnv } = await import("./threads.mjs"); // loaded by a run: a no-op plans with this module
  const result = await ctx.exec(venvPython(info.venv), args, { ...options, env: { ...PY_ENV, ...threadEnv(), ...info.env, ...options.env } });
  const last = [...result.tail].reverse().find((l) => l.startsWith("{"));
  let parsed: unknown;
  try {
    parsed = last === undefined ? undefined : JSON.parse(last);
  } catch {
    parsed = undefined;
  }
  // Our scripts report failures they understand as {"error": "..."}: say that rather than a traceback.
  const error = (parsed as { error?: unknown } | undefined)?.error;
  if (result.exitCode !== 0 && typeof error === "string") throw new UserError(`${what} failed: ${error} (log: ${result.logPath})`);
  assertSuccess(result, what);
  return parsed;
}

export async function toolVersions(dir: string, names: readonly string[]): Promise<Record<string, string>> {
  const info = await readToolchain(dir);
  return Object.fromEntries(names.map((n) => [n, info.versions[n] ?? "unknown"]));
}

/**
 * The node conditions (`NodeSpec.conditions`) of everything mlx computes: OpenBLAS's thread count, where mlx uses
 * it (Linux), and the CPU, whose kernels OpenBLAS picks; either changes the bytes (threads.mjs says why).
 */
export const MLX_CONDITIONS = ["openblas_threads", "cpu"] as const;

/** This machine's values of MLX_CONDITIONS, for `ctx.record`. */
export async function mlxConditions<C>(ctx: RunCtx<C>): Promise<Record<string, Json>> {
  const { blasThreads } = await import("./threads.mjs");
  const openblas = (await readToolchain(ctx.upstream("mlx-env"))).env.LD_PRELOAD !== undefined;
  return { ...(openblas ? { openblas_threads: blasThreads() } : {}), cpu: cpus()[0]?.model.trim() ?? "unknown" };
}
