// Parses memoized by content. A warm no-op re-reads the config, the lock and small JSON outputs; parsing
// them again needs yaml and zod, whose ~100 modules cost more through tsx's loader than the rest of the
// no-op together. So each parse is stored, keyed by the text and by the code that decides the result, and
// the parsers are loaded only when that key changes.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { sha256 } from "./digest.ts";
import type { Json } from "./types.ts";

export interface CachedParser<T extends Json> {
  /** Names the cache slot: the parser's recent parses, whichever file they came from. */
  readonly id: string;
  /** Source files whose code decides the parse (the schema, the loader): their bytes are part of the key. */
  readonly code: readonly string[];
  /** Packages the parse uses: their installed versions are part of the key. */
  readonly packages: readonly string[];
  parse(text: string): Promise<T>;
}

const require = createRequire(import.meta.url);
const codeKeys = new Map<string, string>();

function codeKey(parser: CachedParser<Json>): string {
  const name = [parser.id, ...parser.packages, ...parser.code].join("\n");
  let key = codeKeys.get(name);
  if (key === undefined) {
    const versions = parser.packages.map((p) => `${p}@${(JSON.parse(readFileSync(require.resolve(`${p}/package.json`), "utf8")) as { version: string }).version}`);
    key = sha256([parser.id, ...versions, ...parser.code.map((f) => sha256(readFileSync(f)))].join("\n"));
    codeKeys.set(name, key);
  }
  return key;
}

/** A parser's stored parses, oldest first: a few, so files read in turn (two toolchains) do not evict each other. */
type Slot = Record<string, Json>;
const KEEP = 8;
const slots = new Map<string, Promise<Slot>>();

/** The slot, read once per process; later parses in this process update the same object. */
function slot(path: string): Promise<Slot> {
  let found = slots.get(path);
  if (!found) {
    found = readFile(path, "utf8")
      .then((text) => JSON.parse(text) as Slot)
      .then((s) => (s !== null && typeof s === "object" && !Array.isArray(s) ? s : {}))
      .catch(() => ({})); // missing or torn: parse again
    slots.set(path, found);
  }
  return found;
}

/**
 * `parser.parse(text)`, or the stored result of the same parse. The result is round-tripped through
 * JSON either way, so a fresh parse and a stored one are indistinguishable. Failures are not stored.
 */
export async function parseCached<T extends Json>(cacheDir: string, parser: CachedParser<T>, text: string): Promise<T> {
  const key = sha256(`${codeKey(parser)}\n${text}`);
  const path = join(cacheDir, "parsed", `${parser.id}.json`);
  const stored = await slot(path);
  if (Object.hasOwn(stored, key)) return stored[key] as T;
  const value = JSON.parse(JSON.stringify(await parser.parse(text))) as T;
  stored[key] = value;
  for (const old of Object.keys(stored).slice(0, -KEEP)) delete stored[old];
  write(path, stored);
  return value;
}

/** Synchronous, so parses finishing together in one process write in turn and none is lost. */
function write(path: string, stored: Slot): void {
  try {
    mkdirSync(dirname(path), { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(stored));
    renameSync(tmp, path);
  } catch {
    // A cache: a read-only project folder still builds, it only parses every time.
  }
}
