// Content digests with a persistent stat cache, so an unchanged file is never read twice, and glob
// expansions memoized by the folders they listed, so a warm build neither lists nor loads fast-glob.
import { createHash } from "node:crypto";
import { readdir as readdirCallback, stat as statCallback, type BigIntStats } from "node:fs";
import { availableParallelism } from "node:os";
import { mkdir, readdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import type { Piscina } from "piscina";
import { fastGlob } from "./packages.ts";
import type { FileDigest, OutputDigests, TreeDigest } from "./types.ts";

/** Stat-cache key: a file whose bytes changed cannot keep all five of these. */
type StatKey = string;

/**
 * Racy-mtime rule (git, Nx): a file whose mtime is not older than the scan's start may still be
 * changing within the same timestamp tick, so its digest is used but not cached. The margin covers
 * filesystems whose clocks run a few milliseconds behind the wall clock. Like git, the comparison is
 * made at the file system's granularity: see racy().
 */
export const RACY_MARGIN_MS = 50;
const MAX_ENTRIES = 200_000;

let pool: Promise<Piscina> | undefined;
/** The hashing threads, started on the first large file: a no-op build hashes nothing and should not pay for them. */
function workers(): Promise<Piscina> {
  pool ??= import("piscina").then(
    ({ Piscina }) =>
      new Piscina({
        filename: new URL("./hash-worker.mjs", import.meta.url).href,
        maxThreads: availableParallelism(),
        idleTimeout: 200,
        // Not the parent's flags: under `node --import tsx` every thread would load tsx (and its own loader
        // thread) first, ~150 ms of CPU per thread; the worker is plain JavaScript.
        execArgv: [],
      }),
  );
  return pool;
}

/**
 * Up to this size a file is hashed on the calling thread: reading and hashing it takes well under a millisecond,
 * where starting the pool's threads costs ~90 ms of CPU and ~55 ms of waiting (a build of small files hashes
 * nothing larger, and should not pay for them).
 */
const INLINE_BYTES = 256 << 10;

/** One file's sha256: a small one here, a larger one on the hashing threads. */
async function sha256File(abs: string, size: number): Promise<FileDigest> {
  if (size <= INLINE_BYTES) return sha256(await readFile(abs)) as FileDigest;
  return (await (await workers()).run(abs)) as FileDigest;
}

/** One file's sha256, uncached: what a transfer re-checks must be read again. */
export async function hashFile(abs: string): Promise<FileDigest> {
  return sha256File(abs, (await stat(abs)).size);
}

/** Counters the benchmark and tests read to show a no-op build reads no file contents. */
export const hashStats = { files: 0, bytes: 0 };

/**
 * A glob's matches and the folders it listed, each with its identity and mtime when listed. Adding,
 * removing or renaming an entry changes its folder's mtime, so while none has changed the matches stand.
 */
interface GlobMemo {
  readonly dirs: Record<string, string>;
  readonly matches: string[];
}

interface CacheFile {
  readonly version: 2;
  readonly files: Record<StatKey, FileDigest>;
  readonly globs: Record<string, GlobMemo>;
}

const dirKey = (st: BigIntStats) => `${st.dev}:${st.ino}:${st.mtimeNs}`;

export class Digester {
  private readonly entries = new Map<StatKey, FileDigest>();
  private readonly globs = new Map<string, GlobMemo>();
  /** Files being hashed now: two patterns naming the same file (hashed at once) read it once. */
  private readonly hashing = new Map<StatKey, Promise<FileDigest>>();
  private dirty = false;

  private constructor(private readonly cachePath: string) {}

  static async open(cachePath: string): Promise<Digester> {
    const d = new Digester(cachePath);
    try {
      const raw = JSON.parse(await readFile(cachePath, "utf8")) as CacheFile;
      if (raw.version === 2) {
        for (const [key, digest] of Object.entries(raw.files)) d.entries.set(key, digest);
        for (const [key, memo] of Object.entries(raw.globs)) d.globs.set(key, memo);
      }
    } catch {
      // No cache or an unreadable one: start empty, it is only an accelerator.
    }
    return d;
  }

  /** `st`: the file's stat when the caller has just taken it (one stat per input file, not two). */
  private async file(abs: string, scanStartNs: bigint, trustCache = true, st?: BigIntStats): Promise<FileDigest> {
    st ??= await stat(abs, { bigint: true });
    const key: StatKey = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
    const cached = trustCache ? this.entries.get(key) : undefined;
    if (cached) {
      // Re-insert so the newest entries survive pruning.
      this.entries.delete(key);
      this.entries.set(key, cached);
      return cached;
    }
    let pending = this.hashing.get(key);
    if (!pending) {
      pending = (async () => {
        const digest = await sha256File(abs, Number(st.size));
        hashStats.files++;
        hashStats.bytes += Number(st.size);
        return digest;
      })();
      this.hashing.set(key, pending);
      const done = () => this.hashing.delete(key);
      pending.then(done, done);
    }
    const digest = await pending;
    if (!racy(st.mtimeNs, scanStartNs)) {
      this.entries.set(key, digest);
      this.dirty = true;
    }
    return digest;
  }

  /** Digest of every file under a folder, keyed by relative path ("/" separators), sorted. */
  async tree(dir: string, trustCache = true): Promise<{ digest: TreeDigest; files: Record<string, FileDigest> }> {
    const scanStart = scanStartNow();
    const entries = await readdir(dir, { recursive: true, withFileTypes: true });
    // A link to a file is that file (a Hugging Face snapshot is all links into blobs/); folder links are not followed.
    const counted = await Promise.all(
      entries.map((e) => e.isFile() || (e.isSymbolicLink() && stat(join(e.parentPath, e.name)).then((s) => s.isFile(), () => false))),
    );
    const names = entries
      .filter((_, i) => counted[i])
      .map((e) => relative(dir, join(e.parentPath, e.name)))
      .sort();
    const digests = await Promise.all(names.map((n) => this.file(join(dir, n), scanStart, trustCache)));
    const files: Record<string, FileDigest> = {};
    names.forEach((n, i) => (files[n] = digests[i]!));
    return { digest: manifestDigest(files), files };
  }

  /**
   * Expands files, folders and globs (relative to root, or absolute) into per-file digests, keyed as
   * inputLabel says. All the patterns are expanded and hashed at once, so several named files hash on
   * several cores.
   */
  async inputs(root: string, patterns: readonly string[], toolRoot?: string): Promise<Record<string, FileDigest>> {
    const scanStart = scanStartNow();
    const label = (p: string) => inputLabel(p, root, toolRoot);
    const expand = async (pattern: string): Promise<[string, FileDigest][]> => {
      const abs = resolve(root, pattern);
      const st = await stat(abs, { bigint: true }).catch(() => undefined);
      if (st?.isFile()) return [[label(abs), await this.file(abs, scanStart, true, st)]];
      if (st?.isDirectory()) {
        const { files } = await this.tree(abs);
        return Object.entries(files).map(([rel, d]) => [label(join(abs, rel)), d]);
      }
      const matches = await this.glob(root, pattern, scanStart);
      if (!matches) return [[label(abs), MISSING]];
      const digests = await Promise.all(matches.map((m) => this.file(m, scanStart)));
      return matches.map((m, i) => [label(m), digests[i]!]);
    };
    const out: Record<string, FileDigest> = {};
    for (const entries of await Promise.all(patterns.map(expand))) for (const [k, d] of entries) out[k] = d;
    return out;
  }

  /** Absolute paths of the files a glob matches, sorted, or undefined when the pattern is not a glob. */
  private async glob(root: string, pattern: string, scanStartNs: bigint): Promise<string[] | undefined> {
    const key = `${root}\0${pattern}`;
    const memo = this.globs.get(key);
    if (memo && (await unchanged(memo.dirs))) return memo.matches;
    // Loaded on first use: a warm build, or one whose inputs are all plain paths, never pays for it.
    const fg = fastGlob();
    if (!fg.isDynamicPattern(pattern)) return undefined;
    // Each folder is stat'ed before it is listed: a change after the stat shows as a new mtime next time.
    const dirs: Record<string, string> = {};
    let listedRacy = false;
    const readdir = (path: string, options: object, callback: (...args: unknown[]) => void) =>
      statCallback(path, { bigint: true }, (error, st) => {
        if (error) dirs[path] = "gone"; // listing fails too; the folder appearing changes the key
        else {
          dirs[path] = dirKey(st);
          listedRacy ||= racy(st.mtimeNs, scanStartNs);
        }
        readdirCallback(path, options as { withFileTypes: true }, callback);
      });
    const matches = (await fg(pattern, { cwd: root, absolute: true, onlyFiles: true, fs: { readdir: readdir as never } })).sort();
    // Nothing listed would leave nothing to revalidate the memo by: expand again next time instead.
    if (listedRacy || Object.keys(dirs).length === 0) this.globs.delete(key);
    else this.globs.set(key, { dirs, matches });
    this.dirty = true;
    return matches;
  }

  async save(): Promise<void> {
    if (!this.dirty) return;
    await mkdir(dirname(this.cachePath), { recursive: true });
    const tmp = `${this.cachePath}.${process.pid}.tmp`;
    const file: CacheFile = { version: 2, files: Object.fromEntries([...this.entries].slice(-MAX_ENTRIES)), globs: Object.fromEntries(this.globs) };
    await writeFile(tmp, JSON.stringify(file));
    await rename(tmp, this.cachePath);
    this.dirty = false;
  }
}

/** Whether every folder a glob listed is still the same folder with the same mtime. */
async function unchanged(dirs: Readonly<Record<string, string>>): Promise<boolean> {
  const now = await Promise.all(Object.keys(dirs).map((d) => stat(d, { bigint: true }).then(dirKey, () => "gone")));
  return Object.values(dirs).every((k, i) => k === now[i]);
}

/**
 * How an input file inside the tool's folder (and not the project's) is keyed: "//" and its path there, as
 * Bazel labels a path from the workspace root. No path relative to the project, nor any absolute one, starts so.
 */
const TOOL_LABEL = "//";

/**
 * An input file's key in the fingerprint: its path in the project; else, inside the tool's folder, "//" and
 * its path there, so two machines with the tool checked out in different folders agree; else its absolute path.
 */
function inputLabel(abs: string, root: string, toolRoot: string | undefined): string {
  if (abs.startsWith(root + "/")) return relative(root, abs);
  if (toolRoot !== undefined && abs.startsWith(toolRoot + "/")) return TOOL_LABEL + relative(toolRoot, abs);
  return abs;
}

/** The file an input key names: inputLabel undone, on this machine. */
export function inputPath(label: string, root: string, toolRoot: string | undefined): string {
  return toolRoot !== undefined && label.startsWith(TOOL_LABEL) ? join(toolRoot, label.slice(TOOL_LABEL.length)) : resolve(root, label);
}

/** Stands in for the digest of a declared input that does not exist. */
const MISSING = "missing" as FileDigest;

/**
 * Whether a timestamp may be of a change in the same tick as the scan. HFS+, FAT (2 s), some network
 * shares and old ext4 inodes keep whole seconds: a file rewritten later in the second of a scan keeps
 * the same mtime. The scan's start is truncated to the granularity the mtime shows (whole seconds, or
 * two, when its sub-second part is zero), as git compares against an index file's coarse mtime.
 */
export function racy(mtimeNs: bigint, scanStartNs: bigint): boolean {
  const tick = mtimeNs % 2_000_000_000n === 0n ? 2_000_000_000n : mtimeNs % 1_000_000_000n === 0n ? 1_000_000_000n : 1n;
  return mtimeNs >= (scanStartNs / tick) * tick;
}

function scanStartNow(): bigint {
  return BigInt(Date.now() - RACY_MARGIN_MS) * 1_000_000n;
}

/** A node's output from the tree of its folder: the files named in `records` are set apart and not hashed into its digest. */
export function outputOf(tree: { files: Readonly<Record<string, FileDigest>> }, records: readonly string[] = []): OutputDigests {
  const files: Record<string, FileDigest> = {};
  const kept: Record<string, FileDigest> = {};
  for (const [name, digest] of Object.entries(tree.files)) (records.includes(name) ? kept : files)[name] = digest;
  return { digest: manifestDigest(files), files, ...(Object.keys(kept).length > 0 ? { records: kept } : {}) };
}

function manifestDigest(files: Readonly<Record<string, FileDigest>>): TreeDigest {
  const manifest = Object.keys(files)
    .sort()
    .map((k) => `${k}\0${files[k]}\n`)
    .join("");
  return sha256(manifest) as TreeDigest;
}

export function sha256(text: string | Buffer): string {
  return createHash("sha256").update(text).digest("hex");
}

export async function closeHashWorkers(): Promise<void> {
  await (await pool)?.destroy();
  pool = undefined;
}
