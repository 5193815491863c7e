// The local store: per user, shared by every clone and project on the machine.
//
//   <dir>/blobs/<2 hex>/<sha256>            a file's bytes, once
//   <dir>/manifests/<node>/<fingerprint>.json
//   <dir>/tmp/                              writes in progress, renamed into place when whole
//
// Every write is a temp file renamed into place, so two builds in two clones can fill the store at once
// and a crash leaves at most a temp file. A manifest's mtime is its last use (gc keeps the recent ones).
import { randomBytes } from "node:crypto";
import { chmod, mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { FileDigest, Fingerprint } from "../types.ts";
import { cloneFile } from "./clone.ts";
import { entryFiles, type BlobPaths, type Cache, type Manifest } from "./cache.ts";

/** A blob younger than this is never collected: a build may have written it and not yet its manifest. */
const GRACE_MS = 60 * 60 * 1000;

export interface StoreEntry {
  readonly manifest: Manifest;
  /** Last use (restore or record), ms since the epoch. */
  readonly used: number;
}

export class LocalStore implements Cache {
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

  /** A fresh path in the store's own tmp folder (same file system as the blobs, so rename is atomic). */
  async tempPath(): Promise<string> {
    const tmp = join(this.dir, "tmp");
    await mkdir(tmp, { recursive: true });
    return join(tmp, `${process.pid}-${randomBytes(6).toString("hex")}`);
  }

  manifest(node: string, fingerprint: Fingerprint): Promise<Manifest | undefined> {
    return this.get(node, fingerprint);
  }

  async get(node: string, fingerprint: Fingerprint): Promise<Manifest | undefined> {
    const path = this.manifestPath(node, fingerprint);
    let manifest: Manifest;
    try {
      manifest = JSON.parse(await readFile(path, "utf8")) as Manifest;
    } catch {
      return undefined; // none, or torn by hand: a miss either way
    }
    if (manifest.version !== 1 || manifest.fingerprint !== fingerprint) return undefined;
    const now = new Date();
    await utimes(path, now, now).catch(() => undefined);
    return manifest;
  }

  async set(manifest: Manifest, blobs: BlobPaths): Promise<void> {
    for (const [rel, digest] of entryFiles(manifest.output)) {
      const blob = this.blobPath(digest);
      const now = new Date();
      // Already there: touched, so a concurrent gc's grace period covers it until the manifest is written.
      if (await utimes(blob, now, now).then(() => true, () => false)) continue;
      const tmp = await this.tempPath();
      await cloneFile(blobs(digest, rel), tmp);
      await chmod(tmp, 0o444);
      await mkdir(dirname(blob), { recursive: true });
      await rename(tmp, blob);
    }
    await this.writeManifest(manifest);
  }

  /** Adds one blob from a file already verified to hold `digest` (a download), by rename. */
  async adopt(tmp: string, digest: FileDigest): Promise<void> {
    const blob = this.blobPath(digest);
    await chmod(tmp, 0o444);
    await mkdir(dirname(blob), { recursive: true });
    await rename(tmp, blob);
  }

  async hasBlob(digest: FileDigest): Promise<boolean> {
    return stat(this.blobPath(digest)).then(
      () => true,
      () => false,
    );
  }

  async writeManifest(manifest: Manifest): Promise<void> {
    const path = this.manifestPath(manifest.node, manifest.fingerprint);
    const tmp = await this.tempPath();
    await writeFile(tmp, JSON.stringify(manifest, null, 1));
    await mkdir(dirname(path), { recursive: true });
    await rename(tmp, path);
  }

  /** Copies an entry's files into `dir` (copy-on-write where the file system can). Throws if a blob is gone. */
  async materialize(manifest: Manifest, dir: string): Promise<void> {
    const executable = new Set(manifest.executable);
    for (const [rel, digest] of entryFiles(manifest.output)) {
      const dst = join(dir, rel);
      await mkdir(dirname(dst), { recursive: true });
      await cloneFile(this.blobPath(digest), dst);
      await chmod(dst, executable.has(rel) ? 0o755 : 0o644);
    }
  }

  /** Drops a blob that does not hold its digest, and the manifest that led to it. */
  async discard(manifest: Manifest, digests: readonly FileDigest[]): Promise<void> {
    await Promise.all(digests.map((d) => rm(this.blobPath(d), { force: true })));
    await rm(this.manifestPath(manifest.node, manifest.fingerprint), { force: true });
  }

  /** Every entry (or only those of the node `only`), newest use first. */
  async entries(only?: string): Promise<StoreEntry[]> {
    const root = join(this.dir, "manifests");
    const out: StoreEntry[] = [];
    for (const node of only ? [only] : (await readdir(root).catch(() => [] as string[]))) {
      for (const name of await readdir(join(root, node)).catch(() => [] as string[])) {
        if (!name.endsWith(".json")) continue;
        const path = join(root, node, name);
        try {
          const [text, st] = await Promise.all([readFile(path, "utf8"), stat(path)]);
          out.push({ manifest: JSON.parse(text) as Manifest, used: st.mtimeMs });
        } catch {
          // Removed meanwhile, or unreadable: not an entry.
        }
      }
    }
    return out.sort((a, b) => b.used - a.used);
  }

  /** Every blob with its size and age. */
  async blobs(): Promise<Map<FileDigest, { size: number; mtime: number }>> {
    const root = join(this.dir, "blobs");
    const out = new Map<FileDigest, { size: number; mtime: number }>();
    for (const shard of await readdir(root).catch(() => [] as string[])) {
      for (const name of await readdir(join(root, shard)).catch(() => [] as string[])) {
        const st = await stat(join(root, shard, name)).catch(() => undefined);
        if (st) out.set(name as FileDigest, { size: st.size, mtime: st.mtimeMs });
      }
    }
    return out;
  }

  /**
   * Keeps the entries in `pinned` (the current lock's) and then the most recently used ones while the
   * blobs they need fit in `maxSize`; removes the other manifests and every blob no kept entry needs.
   */
  async gc(pinned: ReadonlySet<string>, maxSize: number): Promise<{ removedEntries: Manifest[]; freedBytes: number; keptBytes: number }> {
    const entries = await this.entries();
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
    for (const e of entries) if (isPinned(e.manifest)) keepEntry(e.manifest);
    const removedEntries: Manifest[] = [];
    for (const e of entries) {
      if (isPinned(e.manifest)) continue;
      const extra = [...new Set(entryFiles(e.manifest.output).map(([, d]) => d))].filter((d) => !keep.has(d)).reduce((n, d) => n + (blobs.get(d)?.size ?? 0), 0);
      if (kept + extra <= maxSize) keepEntry(e.manifest);
      else removedEntries.push(e.manifest);
    }
    // Manifests first, then their blobs: an entry never points at a missing blob.
    for (const m of removedEntries) await rm(this.manifestPath(m.node, m.fingerprint), { force: true });
    let freedBytes = 0;
    const young = Date.now() - GRACE_MS;
    for (const [d, { size, mtime }] of blobs) {
      if (keep.has(d) || mtime > young) continue;
      await rm(this.blobPath(d), { force: true });
      freedBytes += size;
    }
    // Temp files of writers that died (a kill -9 mid-copy); live writers' are younger than the grace period.
    const tmp = join(this.dir, "tmp");
    for (const name of await readdir(tmp).catch(() => [] as string[])) {
      const st = await stat(join(tmp, name)).catch(() => undefined);
      if (st && st.mtimeMs < young) {
        await rm(join(tmp, name), { force: true });
        freedBytes += st.size;
      }
    }
    return { removedEntries, freedBytes, keptBytes: kept };
  }
}
