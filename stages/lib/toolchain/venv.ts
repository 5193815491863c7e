// Virtual environments built from pinned requirement files, shared by every project of this user.
import { existsSync, readFileSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { arch, platform } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { sha256 } from "../../../engine/digest.ts";
import type { RunLock } from "../../../engine/runlock.ts";
import type { RunCtx } from "../../../engine/types.ts";
import { assertSuccess, UserError } from "../../../engine/types.ts";
import { jsonFile, readJsonFile, type JsonOf } from "./json-file.ts";
import { fromCacheRoot, toolFile, underCacheRoot, userCacheDir } from "./paths.ts";
import { findPython, pythonIdentity, pythonVersion } from "./python.ts";

const COMPLETE = ".complete";

/**
 * What a toolchain node publishes: what decides results (versions, platform, the requirements' digest) and
 * where its environment is, relative to the per-user cache root, so the file (and so every downstream
 * fingerprint) is the same on every machine with the same tool versions, whatever its home or cache folder.
 * Paths are resolved against this machine's cache root when read; one outside it (a user's own llama.cpp
 * checkout) stays absolute.
 */
const toolchainFile = jsonFile("toolchain", import.meta.filename, (z) =>
  z.object({
    venv: z.string(),
    versions: z.record(z.string(), z.string()),
    /** sha256 of the pinned requirements the environment was installed from. */
    requirements: z.string().default(""),
    /** The llama.cpp source the converter runs from. */
    source: z.string().optional(),
    /** Libraries every process of this toolchain preloads (a faster BLAS), as LD_PRELOAD. */
    preload: z.array(z.string()).default([]),
  }),
);

/** A published toolchain with its paths resolved on this machine. */
export interface ToolchainInfo {
  readonly venv: string;
  readonly python: string;
  readonly versions: Readonly<Record<string, string>>;
  readonly source?: string;
  /** Environment every process of this toolchain runs with. */
  readonly env: Readonly<Record<string, string>>;
}

const TOOLCHAIN_FILE = "toolchain.json";

/** The environment that preloads these libraries into every process. */
export function preloadEnv(preload: readonly string[]): Record<string, string> {
  return preload.length > 0 ? { LD_PRELOAD: preload.join(":") } : {};
}

/** toolchain.json's content with its paths resolved against this machine's cache root (or `root`). */
export function resolveToolchain(stored: JsonOf<typeof toolchainFile>, root = userCacheDir()): ToolchainInfo {
  const venv = fromCacheRoot(stored.venv, root);
  const preload = stored.preload.map((p) => fromCacheRoot(p, root));
  return {
    venv,
    python: venvPython(venv),
    versions: stored.versions,
    ...(stored.source === undefined ? {} : { source: fromCacheRoot(stored.source, root) }),
    env: preloadEnv(preload),
  };
}

export async function readToolchain(dir: string): Promise<ToolchainInfo> {
  const path = join(dir, TOOLCHAIN_FILE);
  try {
    return resolveToolchain(await readJsonFile(path, toolchainFile));
  } catch (e) {
    throw new UserError(`${path} is unreadable (${(e as Error).message}); rebuild it with --force ${dir.split("/").pop()}.`);
  }
}

/** The reason a published toolchain can no longer be used, for NodeSpec.intact. */
export async function toolchainGone(dir: string): Promise<string | undefined> {
  const info = await readToolchain(dir).catch(() => undefined);
  if (!info) return `${join(dir, TOOLCHAIN_FILE)} is unreadable`;
  return existsSync(join(info.venv, COMPLETE)) ? undefined : `its environment ${info.venv} is gone`;
}

export function venvPython(venv: string): string {
  return join(venv, "bin", "python");
}

/** The interpreter's part of a toolchain node's inputs. */
export async function interpreterInputs(configured?: string): Promise<{ files: string[]; tools: Record<string, string> }> {
  const { path } = findPython(configured);
  return path ? pythonIdentity(path) : { files: [], tools: { python: "missing" } };
}

/** The interpreter to create an environment with; its absence was reported by the guard. */
export function requirePython(configured?: string): string {
  const { path } = findPython(configured);
  if (!path) throw new UserError("Python not found: run `check` for what to do.");
  return path;
}

/** The helper that reports an environment's versions; every toolchain node declares it as an input. */
export const TOOLCHAIN_INFO = toolFile("stages", "py", "toolchain_info.py");

/** Publishes toolchain.json: the environment, the versions of `packages` in it, and what else the node adds. */
export async function publishToolchain<C>(
  ctx: RunCtx<C>,
  venv: string,
  requirementsPath: string,
  packages: readonly string[],
  more: { versions?: Record<string, string>; source?: string; preload?: readonly string[] } = {},
): Promise<void> {
  const preload = more.preload ?? [];
  const probe = await ctx.exec(venvPython(venv), [TOOLCHAIN_INFO, ...packages], { env: preloadEnv(preload) });
  assertSuccess(probe, "reading the environment's versions");
  const versions = { ...(JSON.parse(probe.tail.at(-1) ?? "{}") as Record<string, string>), ...more.versions };
  const info: JsonOf<typeof toolchainFile> = {
    venv: underCacheRoot(venv),
    versions,
    requirements: sha256(await readFile(requirementsPath)),
    ...(more.source === undefined ? {} : { source: underCacheRoot(more.source) }),
    preload: preload.map(underCacheRoot),
  };
  await writeFile(join(ctx.staging, TOOLCHAIN_FILE), JSON.stringify(info, null, 2) + "\n");
}

/** Where the environment for these pinned requirements and this Python lives (whether or not it exists yet). */
async function venvPath(name: string, requirements: string, python: string): Promise<string> {
  const key = sha256(`${requirements}\n${await pythonVersion(python)}\n${platform()}-${arch()}`).slice(0, 16);
  return userCacheDir("venvs", `${name}-${key}`);
}

/** The environment, if a build (of any project) has already completed it. */
export async function existingVenv(name: string, requirementsPath: string, python: string): Promise<string | undefined> {
  const venv = await venvPath(name, readFileSync(requirementsPath, "utf8"), python);
  return existsSync(join(venv, COMPLETE)) ? venv : undefined;
}

/** Another project may be creating the same environment: wait for it rather than fail. */
async function waitForLock<C>(ctx: RunCtx<C>, path: string, what: string): Promise<RunLock> {
  // Loaded here: a no-op reads this module for its inputs alone.
  const { RunLock } = await import("../../../engine/runlock.ts");
  for (;;) {
    try {
      return RunLock.acquire(path, what);
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      ctx.progress(`waiting for another build that is creating this environment (${path})`);
      await sleep(2000, undefined, { signal: ctx.signal });
    }
  }
}

/** Creates (once per user, per pinned requirements and Python version) a virtual environment. */
export async function ensureVenv<C>(ctx: RunCtx<C>, name: string, requirementsPath: string, python: string): Promise<string> {
  const requirements = await readFile(requirementsPath, "utf8");
  const version = await pythonVersion(python);
  const venv = await venvPath(name, requirements, python);
  if (existsSync(join(venv, COMPLETE))) {
    ctx.note(`reusing the environment ${venv}`);
    return venv;
  }
  await mkdir(userCacheDir("venvs"), { recursive: true });
  const lock = await waitForLock(ctx, `${venv}.lock`, `creating ${venv}`);
  try {
    if (existsSync(join(venv, COMPLETE))) return venv; // another build made it while this one waited
    await rm(venv, { recursive: true, force: true }); // a half-made environment from a killed build
    ctx.progress(`creating ${venv} with Python ${version}`);
    assertSuccess(await ctx.exec(python, ["-m", "venv", venv]), `${python} -m venv`);
    const pip = venvPython(venv);
    const pipArgs = ["-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off", "-r", requirementsPath];
    const result = await ctx.exec(pip, pipArgs, { onLine: (line) => /^(Collecting|Installing|Successfully)/.test(line) && ctx.progress(line) });
    assertSuccess(result, `pip install -r ${requirementsPath}`, 25);
    await writeFile(join(venv, COMPLETE), requirements);
    return venv;
  } finally {
    lock.release();
  }
}
