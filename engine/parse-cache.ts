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
  /** Names the cache slot: one entry per parser and file, replaced when its key changes. */
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

interface Entry {
  readonly key: string;
  readonly value: Json;
}

function slotPath(cacheDir: string, parser: CachedParser<Json>, file: string): string {
  return join(cacheDir, "parsed", `${parser.id}-${sha256(file).slice(0, 16)}.json`);
}

/**
 * `parser.parse(text)` of `file`, or the stored result of the same parse. The result is round-tripped
 * through JSON either way, so a fresh parse and a stored one are indistinguishable. Errors are not stored.
 */
export async function parseCached<T extends Json>(cacheDir: string, parser: CachedParser<T>, file: string, text: string): Promise<T> {
  const key = sha256(`${codeKey(parser)}\n${text}`);
  const slot = slotPath(cacheDir, parser, file);
  const stored = await readFile(slot, "utf8")
    .then((s) => JSON.parse(s) as Entry)
    .catch(() => undefined); // missing or torn: parse again
  if (stored?.key === key) return stored.value as T;
  const value = JSON.parse(JSON.stringify(await parser.parse(text))) as T;
  store(slot, { key, value });
  return value;
}

function store(slot: string, entry: Entry): void {
  try {
    mkdirSync(dirname(slot), { recursive: true });
    const tmp = `${slot}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(entry));
    renameSync(tmp, slot);
  } catch {
    // A cache: a read-only project folder still builds, it only parses every time.
  }
}
