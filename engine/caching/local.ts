// The local store: per user, shared by every clone and project on the machine.
//
//   <dir>/store.json                        the marker: this folder is a store (gc deletes only in one)
//   <dir>/blobs/<2 hex>/<sha256>            a file's bytes, once
//   <dir>/manifests/<node>/<fingerprint>.json
//   <dir>/tmp/<pid>-<12 hex>                writes in progress, renamed into place when whole
//   <dir>/locks/use-<pid>-<12 hex>, gc      who is using the store (leases.ts)
//
// Every write is a temp file renamed into place, so two builds in two clones can fill the store at once
// and a crash leaves at most a temp file. A manifest's mtime is its last use (gc keeps the recent ones).
// Every manifest is validated (manifest.ts) before a path or digest in it is used.
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { chmod, lstat, mkdir, open, readdir, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { FileDigest, Fingerprint } from "../types.ts";
import { UserError } from "../types.ts";
import { cloneFile } from "./clone.ts";
import { exclusively, leased } from "./leases.ts";
import { entryFiles, type BlobPaths, type Cache } from "./cache.ts";
import { InvalidEntry, MANIFEST_NAME, MAX_MANIFEST_BYTES, parseManifest, tooBig, type Manifest } from "./manifest.ts";

/** An entry or blob used this recently is never collected: a build may be restoring or recording it. */
const GRACE_MS = 60 * 60 * 1000;

const MARKER = "store.json";
/** The names a store holds at its top: a folder holding anything else is not one, and is refused. */
const OWN = new Set(["blobs", "manifests", "tmp", "locks", MARKER]);
const SHARD = /^[0-9a-f]{2}$/;
const BLOB = /^[0-9a-f]{64}$/;
const TEMP = /^\d+-[0-9a-f]{12}$/;

export interface StoreEntry {
  readonly manifest: Manifest;
  /** Last use (restore or record), ms since the epoch. */
  readonly used: number;
}

const unique = () => randomBytes(6).toString("hex");

export class LocalStore implements Cache {
  private opened: Promise<void> | undefined;

  constructor(readonly dir: string) {}

  get name(): string {
    return this.dir;
  }

  blobPath(digest: FileDigest): string {
    return join(this.dir, "blobs", digest.slice(0, 2), digest);
  }

  manifestPath(node: string, fingerprint: Fingerprint): string {
    return join(this.dir, "manifests", node, `${fingerprint}.json`);
  }

  /**
   * Makes sure `dir` is a store before anything is written in it: a missing or empty folder becomes one; a
   * folder holding only a store's names (a store from before the marker) is adopted; anything else is refused.
   */
  private ready(): Promise<void> {
    this.opened ??= (async () => {
      const names = await readdir(this.dir).catch((e: NodeJS.ErrnoException) => {
        if (e.code === "ENOENT") return [] as string[];
        throw e;
      });
      if (names.includes(MARKER)) return;
      const foreign = names.filter((n) => !OWN.has(n));
      if (foreign.length > 0) {
        throw new UserError(
          `cache.dir: ${this.dir} exists and holds files that are not a build cache (${foreign.slice(0, 3).join(", ")}${foreign.length > 3 ? ", ..." : ""}): refused, so gc never deletes them. Point cache.dir at a new or empty folder.`,
          2,
        );
      }
      await mkdir(this.dir, { recursive: true });
      await writeFile(join(this.dir, MARKER), JSON.stringify({ store: "build cache", layout: 1 }) + "\n", { flag: "wx" }).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== "EEXIST") throw e;
      });
    })();
    return this.opened;
  }

  /** A folder of the store's own (`blobs/ab`, `manifests/<node>`), made if need be; a link there is refused, so no write leaves the store. */
  private async folder(...parts: string[]): Promise<string> {
    let path = this.dir;
    for (const part of parts) {
      path = join(path, part);
      await mkdir(path).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== "EEXIST") throw e;
      });
      const st = await lstat(path);
      if (!st.isDirectory()) throw new UserError(`build cache: ${path} is not a folder of the store (a link or a file): refused. Delete it; the store remakes it.`);
    }
    return path;
  }

  /** A fresh path in the store's own tmp folder (same file system as the blobs, so rename is atomic). */
  async tempPath(): Promise<string> {
    return join(await this.folder("tmp"), `${process.pid}-${unique()}`);
  }

  /**
   * Runs `work` while this process is registered as using the store, so a gc waits for it (and it for a gc).
   * Not re-entrant: `work` calls only the unleased methods (adopt, writeManifest).
   */
  async using<T>(work: () => Promise<T>): Promise<T> {
    await this.ready();
    return leased(await this.folder("locks"), this.dir, work);
  }

  /** Runs `work` with no other process using the store: waits for their leases (`waiting` is told once). */
  private async exclusive<T>(work: () => Promise<T>, waiting: (pids: number[]) => void): Promise<T> {
    await this.ready();
    return exclusively(await this.folder("locks"), this.dir, work, waiting);
  }

  manifest(node: string, fingerprint: Fingerprint): Promise<Manifest | undefined> {
    return this.get(node, fingerprint);
  }

  /** The entry, validated; undefined when there is none. An invalid one throws (InvalidEntry), naming its path. */
  async get(node: string, fingerprint: Fingerprint): Promise<Manifest | undefined> {
    return this.using(async () => {
      const path = this.manifestPath(node, fingerprint);
      const manifest = await this.read(path, node, fingerprint);
      if (!manifest) return undefined;
      const now = new Date();
      await utimes(path, now, now).catch(() => undefined);
      return manifest;
    });
  }

  /** Reads and validates one manifest file, its size checked before a byte is read. */
  private async read(path: string, node: string, fingerprint: Fingerprint): Promise<Manifest | undefined> {
    const remove = `Delete it (rm ${path})`;
    let fh;
    try {
      // Not through a link: the store reads only its own files.
      fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return undefined;
      if (code === "ELOOP") throw new InvalidEntry(`build cache: ${path} is a link, not a manifest: refused. ${remove}`);
      throw e;
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new InvalidEntry(`build cache: ${path} is not a file: refused. ${remove}`);
      if (st.size > MAX_MANIFEST_BYTES) throw tooBig(st.size, path, remove);
      return parseManifest(await fh.readFile("utf8"), node, fingerprint, path, remove);
    } finally {
      await fh.close();
    }
  }

  async set(manifest: Manifest, blobs: BlobPaths): Promise<void> {
    await this.using(async () => {
      for (const [rel, digest] of entryFiles(manifest.output)) {
        const blob = this.blobPath(digest);
        const now = new Date();
        const st = await lstat(blob).catch(() => undefined);
        // Already there: touched, so gc sees it as just used. Not through a link: that would touch a file outside.
        if (st?.isFile() && (await utimes(blob, now, now).then(() => true, () => false))) continue;
        if (st && !st.isFile()) await rm(blob, { recursive: true, force: true }); // not a blob: replaced by one
        const tmp = await this.tempPath();
        await cloneFile(blobs(digest, rel), tmp);
        await this.adopt(tmp, digest);
      }
      await this.writeManifest(manifest);
    });
  }

  /** Adds one blob from a file already verified to hold `digest` (a download), by rename. Inside `using`. */
  async adopt(tmp: string, digest: FileDigest): Promise<void> {
    await chmod(tmp, 0o444);
    await this.folder("blobs", digest.slice(0, 2));
    await rename(tmp, this.blobPath(digest));
  }

  async hasBlob(digest: FileDigest): Promise<boolean> {
    return lstat(this.blobPath(digest)).then(
      (st) => st.isFile(),
      () => false,
    );
  }

  /** Inside `using`. */
  async writeManifest(manifest: Manifest): Promise<void> {
    const tmp = await this.tempPath();
    await writeFile(tmp, JSON.stringify(manifest, null, 1));
    await this.folder("manifests", manifest.node);
    await rename(tmp, this.manifestPath(manifest.node, manifest.fingerprint));
  }

  /** Copies an entry's files into `dir` (copy-on-write where the file system can). Throws if a blob is gone or not a plain file. */
  async materialize(manifest: Manifest, dir: string): Promise<void> {
    await this.using(async () => {
      const executable = new Set(manifest.executable);
      for (const [rel, digest] of entryFiles(manifest.output)) {
        const blob = this.blobPath(digest);
        // A link in the store would make the restore read a file outside it.
        if (!(await lstat(blob)).isFile()) throw new Error(`${blob} is not a plain file`);
        const dst = join(dir, rel);
        await mkdir(dirname(dst), { recursive: true });
        await cloneFile(blob, dst);
        await chmod(dst, executable.has(rel) ? 0o755 : 0o644);
      }
    });
  }

  /** Drops a blob that does not hold its digest, and the manifest that led to it. */
  async discard(manifest: Manifest, digests: readonly FileDigest[]): Promise<void> {
    await this.using(async () => {
      await Promise.all(digests.map((d) => rm(this.blobPath(d), { force: true })));
      await rm(this.manifestPath(manifest.node, manifest.fingerprint), { force: true });
    });
  }

  /** Every valid entry (or only those of the node `only`), newest use first. Reads only: a report may list a store it does not own. */
  async entries(only?: string): Promise<StoreEntry[]> {
    return (await this.scan(only)).flatMap((e) => (e.manifest ? [{ manifest: e.manifest, used: e.used }] : []));
  }

  /** Every manifest file with a store name, with its entry when it is a valid one. */
  private async scan(only?: string): Promise<{ path: string; manifest?: Manifest; used: number }[]> {
    const root = join(this.dir, "manifests");
    const out: { path: string; manifest?: Manifest; used: number }[] = [];
    for (const node of only ? [only] : await readdir(root).catch(() => [] as string[])) {
      for (const name of await readdir(join(root, node)).catch(() => [] as string[])) {
        if (!MANIFEST_NAME.test(name)) continue;
        const path = join(root, node, name);
        const st = await stat(path).catch(() => undefined);
        if (!st) continue; // removed meanwhile
        const manifest = await this.read(path, node, name.slice(0, -5) as Fingerprint).catch(() => undefined);
        out.push({ path, ...(manifest ? { manifest } : {}), used: st.mtimeMs });
      }
    }
    return out.sort((a, b) => b.used - a.used);
  }

  /** Every blob with its size and age. */
  async blobs(): Promise<Map<FileDigest, { size: number; mtime: number }>> {
    const root = join(this.dir, "blobs");
    const out = new Map<FileDigest, { size: number; mtime: number }>();
    for (const shard of await readdir(root).catch(() => [] as string[])) {
      if (!SHARD.test(shard)) continue;
      for (const name of await readdir(join(root, shard)).catch(() => [] as string[])) {
        if (!BLOB.test(name) || !name.startsWith(shard)) continue;
        const st = await lstat(join(root, shard, name)).catch(() => undefined);
        if (st) out.set(name as FileDigest, { size: st.size, mtime: st.mtimeMs });
      }
    }
    return out;
  }

  /**
   * Keeps the entries in `pinned` (the current lock's), those used within the grace period, then the most
   * recently used ones while the blobs they need fit in `maxSize`; removes the other manifests and every blob
   * no kept entry needs. Runs alone (builds wait, and it waits for them), and re-checks each file before it
   * deletes it: a store shared with an older version of the tool, which takes no lock, is still safe.
   */
  async gc(
    pinned: ReadonlySet<string>,
    maxSize: number,
    waiting: (pids: number[]) => void = () => undefined,
  ): Promise<{ removedEntries: Manifest[]; freedBytes: number; keptBytes: number }> {
    return this.exclusive(async () => {
      const started = Date.now();
      const young = started - GRACE_MS;
      const scanned = await this.scan();
      const blobs = await this.blobs();
      const keep = new Set<FileDigest>();
      let kept = 0;
      const keepEntry = (m: Manifest) => {
        for (const [, d] of entryFiles(m.output)) {
          if (keep.has(d)) continue;
          keep.add(d);
          kept += blobs.get(d)?.size ?? 0;
        }
      };
      const isPinned = (m: Manifest) => pinned.has(`${m.node}\0${m.fingerprint}`);
      const entries = scanned.flatMap((e) => (e.manifest ? [{ ...e, manifest: e.manifest }] : []));
      for (const e of entries) if (isPinned(e.manifest) || e.used > young) keepEntry(e.manifest);
      const removed: typeof entries = [];
      for (const e of entries) {
        if (isPinned(e.manifest) || e.used > young) continue;
        const extra = [...new Set(entryFiles(e.manifest.output).map(([, d]) => d))].filter((d) => !keep.has(d)).reduce((n, d) => n + (blobs.get(d)?.size ?? 0), 0);
        if (kept + extra <= maxSize) keepEntry(e.manifest);
        else removed.push(e);
      }
      // Manifests first, then their blobs: an entry never points at a missing blob.
      const removedEntries: Manifest[] = [];
      for (const e of removed) {
        const now = await stat(e.path).catch(() => undefined);
        if (now && now.mtimeMs !== e.used) {
          keepEntry(e.manifest); // used since the scan
          continue;
        }
        await rm(e.path, { force: true });
        removedEntries.push(e.manifest);
      }
      // Files named like manifests that are none (torn, foreign, tampered): never restorable, so collected.
      for (const e of scanned) if (!e.manifest && e.used <= young) await rm(e.path, { force: true });
      let freedBytes = 0;
      for (const [d, { size, mtime }] of blobs) {
        if (keep.has(d) || mtime > young) continue;
        const now = await lstat(this.blobPath(d)).catch(() => undefined);
        if (!now || now.mtimeMs !== mtime) continue; // gone, or touched since the scan
        await rm(this.blobPath(d), { force: true });
        freedBytes += size;
      }
      // Temp files of writers that died (a kill -9 mid-copy); live writers' are younger than the grace period.
      const tmp = join(this.dir, "tmp");
      for (const name of await readdir(tmp).catch(() => [] as string[])) {
        if (!TEMP.test(name)) continue;
        const st = await lstat(join(tmp, name)).catch(() => undefined);
        if (st?.isFile() && st.mtimeMs < young) {
          await rm(join(tmp, name), { force: true });
          freedBytes += st.size;
        }
      }
      return { removedEntries, freedBytes, keptBytes: kept };
    }, waiting);
  }
}
