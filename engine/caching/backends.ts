// The remote backends, by URL scheme: what a remote URL of each looks like, which `cache:` keys only it
// takes, and its module, imported on first use (a build that never misses locally loads none of them).
// A new backend is a module implementing RemoteCache and one row here.
import type { RemoteCache, RemoteSettings } from "./cache.ts";
import type { LocalStore } from "./local.ts";

export interface Backend {
  /** How a URL of this scheme is written, for messages. */
  readonly form: string;
  /** A well-formed URL of this scheme: the config schema checks it before anything is opened. */
  readonly pattern: RegExp;
  /** The `cache:` keys besides `remote` and `push` this backend reads. */
  readonly keys: readonly ("endpoint" | "region")[];
  open(settings: RemoteSettings, local: LocalStore): Promise<RemoteCache>;
}

export const BACKENDS: Readonly<Record<string, Backend>> = {
  "s3:": {
    form: "s3://bucket/prefix",
    pattern: /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/,
    keys: ["endpoint", "region"],
    open: async (settings, local) => (await import("./s3.ts")).S3Cache.open(settings, local),
  },
  "file:": {
    form: "file:///absolute/path",
    // No host: file://server/x is not a path on this machine.
    pattern: /^file:\/\/\/[^\0]+$/,
    keys: [],
    open: async (settings, local) => (await import("./folder.ts")).FolderCache.open(settings, local),
  },
};

/** The scheme of a remote URL ("s3:"), or undefined when it has none. */
export function schemeOf(url: string): string | undefined {
  return /^([a-z][a-z0-9+.-]*:)\/\//.exec(url)?.[1];
}

/** The backend for a remote URL, or undefined when no backend serves its scheme. */
export function backendOf(url: string): Backend | undefined {
  const scheme = schemeOf(url);
  return scheme === undefined ? undefined : BACKENDS[scheme];
}

/** "s3://bucket/prefix or file:///absolute/path": every form a remote may take. */
export const REMOTE_FORMS = Object.values(BACKENDS)
  .map((b) => b.form)
  .join(" or ");
