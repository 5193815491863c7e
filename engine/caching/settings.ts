// The `cache:` config, resolved into what the engine needs. No zod here: a warm run does not load it.
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import type { CacheSettings } from "./cache.ts";

export interface CacheConfig {
  readonly dir?: string;
  readonly max_size?: string;
  readonly remote?: string;
  readonly endpoint?: string;
  readonly region?: string;
  readonly push: boolean;
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
