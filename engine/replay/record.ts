// A no-op's record: what a build that found everything up to date printed, and the state of every path it
// read (files, folders, paths it found absent) and of the code it ran, so that the same command, in the same
// environment, is answered again without loading the graph while none of them changed. Gradle's configuration
// cache does the same for its configuration phase: it records the files and environment variables the phase
// read and reuses its result while they stay the same.
//
// This module is all a replayed no-op loads besides the entry point and replay.ts: node builtins only, and
// the record is validated by hand, not with zod (test/engine/warm.test.ts holds the list).
import { createHash } from "node:crypto";
import { lstatSync, readFileSync, statSync, type BigIntStats } from "node:fs";
import { availableParallelism, totalmem } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";

/** Bumped when the record's meaning changes: an older record is then never read. */
export const RECORD_VERSION = 1;

/** Which stream a chunk of output went to. */
export type Stream = 1 | 2;

export interface NoopRecord {
  readonly version: typeof RECORD_VERSION;
  /** sha256 of the command line, its folder, the environment and the facts of this node and machine (identityOf). */
  readonly identity: string;
  /** Every path the build read or ran as code, absolute, with its signature then (signatureOf). */
  readonly paths: readonly (readonly [string, string])[];
  /** What it printed, in order. */
  readonly output: readonly (readonly [Stream, string])[];
}

/**
 * The project folder a command line builds in: the config's folder (--config, else the app's default config
 * in the current folder). Read without the CLI's parser; a command line it misreads is never replayed, as
 * its record is then looked for where none was written.
 */
export function projectRootOf(argv: readonly string[], defaultConfig: string, cwd: string): string {
  const at = argv.indexOf("--config");
  const config = at >= 0 ? argv[at + 1] : argv.find((a) => a.startsWith("--config="))?.slice("--config=".length);
  return dirname(resolve(cwd, config ?? defaultConfig));
}

/** The folder of a project's records: one per identity, so `npx tsx` and `node --import tsx` (another environment) keep one each. */
export function recordsDir(root: string): string {
  return join(root, "cache", "noop");
}

export function recordPath(root: string, identity: string): string {
  return join(recordsDir(root), `${identity.slice(0, 32)}.json`);
}

/**
 * What a no-op's answer may depend on besides the paths it read: the command line and its folder, every
 * environment variable (hashed: the record keeps no secret), the node that runs it and how (its flags load
 * tsx), the machine's platform, cores (the default -j) and memory, and whether the output goes to a terminal.
 */
export function identityOf(argv: readonly string[], cwd: string): string {
  const env = Object.entries(process.env).sort(([a], [b]) => (a < b ? -1 : 1));
  const tty = [process.stdout.isTTY === true, process.stderr.isTTY === true, process.stderr.isTTY ? process.stderr.columns : 0];
  const facts = [RECORD_VERSION, argv, cwd, env, process.version, process.execPath, process.execArgv, process.platform, process.arch, availableParallelism(), totalmem(), process.getuid?.(), tty];
  return createHash("sha256").update(JSON.stringify(facts)).digest("hex");
}

const statKey = (s: BigIntStats) => `${s.mode}:${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;

/** A path's signature, and when it or what it links to last changed (ns; none when absent). */
export interface Stamp {
  readonly signature: string;
  readonly changedNs: readonly bigint[];
}

/**
 * A path's state as far as reading it can tell: its kind, identity, size and times (a change to its bytes,
 * its entries or its mode moves the ctime), what a link points at, or that it is absent or unreadable.
 */
export function stampOf(path: string): Stamp {
  try {
    const own = lstatSync(path, { bigint: true, throwIfNoEntry: false });
    if (!own) return { signature: "absent", changedNs: [] };
    const target = own.isSymbolicLink() ? statSync(path, { bigint: true, throwIfNoEntry: false }) : undefined;
    const signature = own.isSymbolicLink() ? `${statKey(own)}>${target ? statKey(target) : "absent"}` : statKey(own);
    return { signature, changedNs: [own, ...(target ? [target] : [])].flatMap((s) => [s.mtimeNs, s.ctimeNs]) };
  } catch (e) {
    // ENOTDIR, EACCES: the same error is the same answer.
    return { signature: `error:${(e as NodeJS.ErrnoException).code ?? "unknown"}`, changedNs: [] };
  }
}

export const signatureOf = (path: string): string => stampOf(path).signature;

const isPair = <A, B>(v: unknown, a: (x: unknown) => x is A, b: (x: unknown) => x is B): v is [A, B] => Array.isArray(v) && v.length === 2 && a(v[0]) && b(v[1]);
const isString = (v: unknown): v is string => typeof v === "string";
const isPath = (v: unknown): v is string => isString(v) && isAbsolute(v);
const isStream = (v: unknown): v is Stream => v === 1 || v === 2;

/** The record at `path`, or undefined when there is none or it is not one this version wrote whole. */
export function readRecord(path: string): NoopRecord | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch {
    return undefined; // none yet, or torn: the command runs and records anew
  }
  const r = raw as Partial<Record<keyof NoopRecord, unknown>> | null;
  const valid =
    typeof r === "object" && r !== null && r.version === RECORD_VERSION && isString(r.identity) && /^[0-9a-f]{64}$/.test(r.identity) &&
    Array.isArray(r.paths) && r.paths.every((p) => isPair(p, isPath, isString)) &&
    Array.isArray(r.output) && r.output.every((o) => isPair(o, isStream, isString));
  return valid ? (r as NoopRecord) : undefined;
}
