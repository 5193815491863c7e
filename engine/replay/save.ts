// Writes a no-op's record (record.ts) from its trace, for a run that changed nothing on disk and started no
// process or thread. A path whose last change is not older than the trace may have changed while it was read,
// within one tick of its file system's clock: then nothing is recorded (git's racy-clean rule, digest.ts).
import { mkdir, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { racy, RACY_MARGIN_MS } from "../digest.ts";
import { RECORD_VERSION, recordPath, recordsDir, stampOf, type NoopRecord } from "./record.ts";
import type { TraceOutcome } from "./trace.ts";

/** Records kept per project: one per environment a no-op ran in lately (a terminal, an IDE's, CI's). */
const KEEP = 16;

/** Manifests that decide what the code is, beside the code: npm's own record of node_modules among them. */
const MANIFESTS = ["package.json", "package-lock.json", "tsconfig.json", "node_modules/.package-lock.json"];

/**
 * The code the run may have loaded: every script of the package its entry point is in, outside node_modules,
 * and the manifests that pin what node_modules holds. `skip`: the project's own cache and outputs, when the
 * project is that package (the demo is). A walk rather than fast-glob: a no-op that records loads no parser.
 */
async function codeFiles(entry: string, skip: readonly string[]): Promise<string[]> {
  let pkg = dirname(entry);
  while (!(await stat(join(pkg, "package.json")).then(() => true, () => false))) {
    if (dirname(pkg) === pkg) return [entry];
    pkg = dirname(pkg);
  }
  const pruned = new Set(skip);
  const scripts: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    await Promise.all(
      entries.map((e) => {
        const path = join(dir, e.name);
        // Not node_modules (the manifests stand for it), nor .git, a .venv or another hidden folder.
        if (e.isDirectory()) return e.name === "node_modules" || e.name.startsWith(".") || pruned.has(path) ? undefined : walk(path);
        if (SCRIPT.test(e.name)) scripts.push(path);
        return undefined;
      }),
    );
  };
  await walk(pkg);
  return [...scripts, ...MANIFESTS.map((m) => join(pkg, m))];
}

const SCRIPT = /\.[mc]?[jt]s$/;

export interface RecordedProject {
  readonly root: string;
  /** Folders under root whose contents are the build's (its cache, its outputs), not code. */
  readonly own: readonly string[];
}

/** Records the answer of a run traced as `outcome`, when it may be replayed; says why not otherwise. */
export async function saveRecord(identity: string, outcome: TraceOutcome, project: RecordedProject, entry: string): Promise<string | undefined> {
  if (outcome.changed) return "it changed files";
  if (outcome.spawned) return "it started a process or a thread";
  if (outcome.overflowed) return "it read or printed more than a no-op does";
  const dir = recordsDir(project.root);
  const paths = [...new Set([...outcome.reads, ...(await codeFiles(entry, project.own))])].filter((p) => !p.startsWith(dir + "/")).sort();
  const stamps = paths.map((p) => [p, stampOf(p)] as const);
  // Changed in or after the tick the trace started in: the signature may not be of what was read. A later
  // change moves the ctime past it, so the signature's own stat is enough to tell.
  const sinceNs = BigInt(outcome.startedMs - RACY_MARGIN_MS) * 1_000_000n;
  const recent = stamps.find(([, s]) => s.changedNs.some((ns) => racy(ns, sinceNs)));
  if (recent) return `${recent[0]} changed while it ran`;
  const signed = stamps.map(([p, s]) => [p, s.signature] as const);
  const record: NoopRecord = { version: RECORD_VERSION, identity, paths: signed, output: outcome.output };
  // Written whole then renamed, but not synced: a record lost to a power cut costs one no-op its speed, no more.
  const path = recordPath(project.root, identity);
  await mkdir(dir, { recursive: true });
  await writeFile(`${path}.${process.pid}.tmp`, JSON.stringify(record));
  await rename(`${path}.${process.pid}.tmp`, path);
  await prune(dir);
  return undefined;
}

/** Keeps the KEEP files written last: records, and the temp file of a process killed while writing one. */
async function prune(dir: string): Promise<void> {
  const names = await readdir(dir);
  if (names.length <= KEEP) return;
  const dated = await Promise.all(names.map(async (n) => ({ n, at: (await stat(join(dir, n)).catch(() => undefined))?.mtimeMs ?? 0 })));
  dated.sort((a, b) => b.at - a.at);
  await Promise.all(dated.slice(KEEP).map(({ n }) => rm(join(dir, n), { force: true })));
}
