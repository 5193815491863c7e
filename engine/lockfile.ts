// pipeline.lock: what was built from what, in sorted YAML that diffs well. Users commit it.
// yaml and zod are loaded only when the lock's text changed since the last run (see parse-cache.ts).
import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { sha256 } from "./digest.ts";
import { replaceFile } from "./durable.ts";
import { yaml, zod } from "./packages.ts";
import type { ProjectId } from "./caching/manifest.ts";
import type { Fingerprint, Json, OutputDigests } from "./types.ts";
import type { FingerprintParts } from "./fingerprint.ts";
import { parseCached, type CachedParser } from "./parse-cache.ts";
import { UserError } from "./types.ts";

export interface LockEntry extends FingerprintParts {
  readonly fingerprint: Fingerprint;
  /** Its records are listed apart from its result files: a rebuild that differs only in them keeps this entry. */
  readonly output: OutputDigests;
  /** Facts the node recorded (a hub revision, final loss): for people reading the lock, not hashed. */
  readonly facts?: Readonly<Record<string, Json>>;
}

export type LockNodes = Readonly<Record<string, LockEntry>>;

async function parseLock(text: string): Promise<Json> {
  const { z } = zod();
  const digestMap = z.record(z.string(), z.string());
  const entrySchema = z.object({
    fingerprint: z.string(),
    params: z.unknown(),
    files: digestMap,
    upstream: digestMap,
    tools: z.record(z.string(), z.string()),
    command: z.unknown(),
    output: z.object({ digest: z.string(), files: digestMap, records: digestMap.optional() }),
    facts: z.record(z.string(), z.unknown()).optional(),
  });
  const parsed = z.object({ version: z.literal(1), project: z.string().regex(PROJECT).optional(), nodes: z.record(z.string(), entrySchema) }).safeParse(yaml().parse(text));
  if (!parsed.success) throw new Error(parsed.error.issues[0]?.message);
  return parsed.data.nodes as Json;
}

function lockParser(path: string): CachedParser<Json> {
  return {
    id: "lock",
    code: [import.meta.filename],
    packages: ["yaml", "zod"],
    parse: (text) =>
      parseLock(text).catch((e: unknown) => {
        throw new UserError(`${path} is not a valid lock file (${(e as Error).message}). Delete it to rebuild everything.`, 2);
      }),
  };
}

/** A project id: 16 hex digits. */
const PROJECT = /^[0-9a-f]{16}$/;
const PROJECT_LINE = /^project: ([0-9a-f]{16})$/m;

/**
 * The project's id, as cache manifests name it: the one pipeline.lock carries (committed, so every clone of the
 * repository is the same project), else a digest of the folder (what manifests named before the lock carried it,
 * and what the lock's first write records). Read with a line match, not a parse: the line is the writer's own.
 */
export async function lockProject(path: string): Promise<ProjectId> {
  const text = await readFile(path, "utf8").catch(() => "");
  return (PROJECT_LINE.exec(text)?.[1] ?? legacyProjectId(dirname(path))) as ProjectId;
}

/** What manifests named a project by before its lock carried an id: a digest of its folder, machine-bound. */
export function legacyProjectId(root: string): ProjectId {
  return sha256(resolve(root)).slice(0, 16) as ProjectId;
}

const HEADER = "# pipeline.lock: written by `npx tsx pipeline.ts`. Commit it: it records what each output was built from.\n";

export async function readLock(path: string, cacheDir: string): Promise<LockNodes> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    return {};
  }
  return (await parseCached(cacheDir, lockParser(path), text)) as unknown as LockNodes;
}

function sortDeep(value: Json): Json {
  if (Array.isArray(value)) return value.map(sortDeep);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortDeep(value[k] as Json)]));
  }
  return value;
}

/** Rewrites only the given entries, keeping every other node's entry as it was. */
export async function writeLockEntries(path: string, cacheDir: string, updates: LockNodes): Promise<void> {
  const merged = { ...(await readLock(path, cacheDir)), ...updates };
  const nodes = sortDeep(merged as unknown as Json);
  const project = await lockProject(path);
  const text = HEADER + yaml().stringify({ version: 1, project, nodes }, { lineWidth: 0, sortMapEntries: true });
  // Synced, then renamed and its folder synced: a power loss leaves the old lock or the new, never an empty one.
  await replaceFile(path, text);
  await parseCached(cacheDir, lockParser(path), text); // stored now, so the next run need not parse it
}
