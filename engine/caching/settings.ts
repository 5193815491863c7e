// The `cache:` config, resolved into what the engine needs. Its type is inferred from the zod schema
// (schema.ts) as a type only: a warm run does not load zod.
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import type { z } from "zod";
import type { cacheSchema } from "./schema.ts";

/** The `cache:` key as validated. */
export type CacheConfig = z.output<typeof cacheSchema>;

/** A remote of the build cache: its URL (a scheme of backends.ts) and the settings its backend reads. */
export type RemoteSettings = Pick<CacheConfig, "endpoint" | "region" | "push"> & { readonly url: string };

/** The `cache:` settings, resolved: the engine's view of them. */
export interface CacheSettings {
  /** The local store's folder (per user: every clone and project on the machine shares it). */
  readonly dir: string;
  /** Bytes `gc` keeps at most (besides what the current lock references); undefined = a share of the disk. */
  readonly maxSize?: number;
  readonly remote?: RemoteSettings;
}

const UNITS: Record<string, number> = { "": 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };

/** Bytes in "50GB", "200 GiB", "512MB"; undefined when it is not a size. */
export function parseSize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m && UNITS[m[2]!.toLowerCase()];
  return m && unit ? Math.floor(Number(m[1]) * unit) : undefined;
}

/** `~` and `~/...` are the home folder, as in a shell: a folder named `~` in the project is never what was meant. */
function expandHome(path: string): string {
  return path === "~" ? homedir() : path.startsWith("~/") ? join(homedir(), path.slice(2)) : path;
}

/** `defaultDir`: the app's per-user store; `dir` in the config is relative to the project. */
export function cacheSettings(config: CacheConfig | undefined, root: string, defaultDir: string): CacheSettings {
  const maxSize = config?.max_size === undefined ? undefined : parseSize(config.max_size);
  return {
    dir: config?.dir ? resolve(root, expandHome(config.dir)) : defaultDir,
    ...(maxSize !== undefined ? { maxSize } : {}),
    ...(config?.remote
      ? { remote: { url: config.remote, push: config.push, ...(config.endpoint ? { endpoint: config.endpoint } : {}), ...(config.region ? { region: config.region } : {}) } }
      : {}),
  };
}
