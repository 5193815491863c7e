// pipeline.lock: what was built from what, in sorted YAML that diffs well. Users commit it.
import { readFile, rename, writeFile } from "node:fs/promises";
import YAML from "yaml";
import { z } from "zod";
import type { FileDigest, Fingerprint, Json, TreeDigest } from "./types.ts";
import type { FingerprintParts } from "./fingerprint.ts";
import { UserError } from "./types.ts";

export interface LockEntry extends FingerprintParts {
  readonly fingerprint: Fingerprint;
  readonly output: { readonly digest: TreeDigest; readonly files: Readonly<Record<string, FileDigest>> };
  /** Facts the node recorded (a hub revision, final loss): for people reading the lock, not hashed. */
  readonly facts?: Readonly<Record<string, Json>>;
}

export type LockNodes = Readonly<Record<string, LockEntry>>;

const digestMap = z.record(z.string(), z.string());
const entrySchema = z.object({
  fingerprint: z.string(),
  params: z.unknown(),
  files: digestMap,
  upstream: digestMap,
  tools: z.record(z.string(), z.string()),
  command: z.unknown(),
  output: z.object({ digest: z.string(), files: digestMap }),
  facts: z.record(z.string(), z.unknown()).optional(),
});
const lockSchema = z.object({ version: z.literal(1), nodes: z.record(z.string(), entrySchema) });

const HEADER = "# pipeline.lock: written by `npx tsx pipeline.ts`. Commit it: it records what each output was built from.\n";

export async function readLock(path: string): Promise<LockNodes> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    return {};
  }
  const parsed = lockSchema.safeParse(YAML.parse(text));
  if (!parsed.success) {
    throw new UserError(`${path} is not a valid lock file (${parsed.error.issues[0]?.message}). Delete it to rebuild everything.`, 2);
  }
  return parsed.data.nodes as unknown as LockNodes;
}

function sortDeep(value: Json): Json {
  if (Array.isArray(value)) return value.map(sortDeep);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortDeep(value[k] as Json)]));
  }
  return value;
}

/** Rewrites only the given entries, keeping every other node's entry as it was. */
export async function writeLockEntries(path: string, updates: LockNodes): Promise<void> {
  const merged = { ...(await readLock(path)), ...updates };
  const doc = { version: 1, nodes: sortDeep(merged as unknown as Json) };
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, HEADER + YAML.stringify(doc, { lineWidth: 0, sortMapEntries: true }));
  await rename(tmp, path);
}
