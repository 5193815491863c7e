// Where the tool's own files and its per-user caches live.
import { accessSync, constants } from "node:fs";
import { homedir } from "node:os";
import { delimiter, isAbsolute, join, relative, resolve } from "node:path";

/** The repository's root: stage scripts and requirement files are found relative to it. */
const TOOL_ROOT = resolve(import.meta.dirname, "../../..");

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

/**
 * A path as a published output records it: relative to the per-user cache root when inside it, so the output
 * is the same on machines whose home or cache folders differ (a path outside the root stays absolute).
 */
export function underCacheRoot(path: string): string {
  const rel = relative(userCacheDir(), path);
  return rel.startsWith("..") || isAbsolute(rel) ? path : rel;
}

/** A path recorded by underCacheRoot, on this machine (or for the cache root `root`). */
export function fromCacheRoot(recorded: string, root = userCacheDir()): string {
  return resolve(root, recorded);
}
