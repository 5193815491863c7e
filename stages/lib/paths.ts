// Where the tool's own files and its per-user caches live.
import { accessSync, constants } from "node:fs";
import { homedir } from "node:os";
import { delimiter, join, resolve } from "node:path";

/** The repository's root: stage scripts and requirement files are found relative to it. */
const TOOL_ROOT = resolve(import.meta.dirname, "../..");

export function toolFile(...parts: string[]): string {
  return join(TOOL_ROOT, ...parts);
}

/** Whether a file exists and may be run. */
export function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first executable named `name` on PATH, like `which`. */
export function onPath(name: string): string | undefined {
  return (process.env.PATH ?? "").split(delimiter).map((dir) => join(dir, name)).find(executable);
}

/**
 * Toolchains (virtual environments, llama.cpp sources and builds) are identical across clones and
 * expensive to make, so they live in a per-user cache keyed by their pinned requirements.
 */
export function userCacheDir(...parts: string[]): string {
  const base = process.env.MLX_PIPELINE_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "mlx-lora-pipeline");
  return join(base, ...parts);
}
