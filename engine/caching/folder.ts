// A shared folder (an NFS or SMB mount, a synced drive) as a remote build cache, laid out as the S3 one:
//
//   <folder>/blobs/<sha256>
//   <folder>/manifests/<node>/<fingerprint>.json
//   <folder>/tmp/<host>-<pid>-<12 hex>     writes in progress, renamed into place when whole
//
// Many machines write it: every object is written to a temp file in the folder's own tmp/ (the same file
// system) and renamed into place, so a crash leaves no half object under a final name. Nothing in it is
// trusted: every manifest is validated (manifest.ts) and refused unread past a size; every blob is hashed as
// it is copied into the local store and adopted only when its sha256 is its name; no link inside the folder
// is followed (the folder itself may be one, to a mount), so no entry makes a pull read, or a push write,
// outside it.
import { createHash, randomBytes } from "node:crypto";
import { constants, createReadStream, createWriteStream } from "node:fs";
import { lstat, mkdir, open, readdir, realpath, rename, rm, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import type { FileDigest, Fingerprint } from "../types.ts";
import { UserError } from "../types.ts";
import { RemoteUnavailable, type BlobPaths, type Progress, type RemoteCache, type RemoteSettings } from "./cache.ts";
import type { LocalStore } from "./local.ts";
import { InvalidEntry, isInsidePath, MANIFEST_NAME, MAX_MANIFEST_BYTES, parseManifest, tooBig, type Manifest } from "./manifest.ts";
import { assertIntact, blobsOf, fetchEntry, missingBlob, parallel, tamperedBlob, type Blob } from "./remote.ts";

const PARALLEL_COPIES = 4;
/** A temp file this old was left by a writer that died (a kill -9 mid-push): removed by the next push. */
const STALE_TEMP_MS = 24 * 60 * 60 * 1000;
/** Opened without following a link, and without blocking on a FIFO planted where a file should be. */
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
/** The folder went away under us (an NFS server down, a share unmounted): the remote as a whole is unusable. */
const GONE = new Set(["EIO", "ESTALE", "ENOTCONN", "EHOSTDOWN", "EHOSTUNREACH", "ETIMEDOUT", "ENODEV"]);

type Errno = NodeJS.ErrnoException;

/** An error of the file system, as the build and the commands should see it. */
function explain(e: unknown, path: string, url: string): Error {
  if (e instanceof UserError) return e;
  const code = (e as Errno).code ?? "";
  if (GONE.has(code)) return new RemoteUnavailable(`cache.remote: ${path} cannot be reached (${code}): the shared folder went away. Check the mount, or build with --no-remote.`, 1);
  if (code === "EACCES" || code === "EPERM" || code === "EROFS") {
    return new RemoteUnavailable(`cache.remote: ${path} cannot be written (${code}). Check the folder's permissions, or set cache.push: false on clones that only read it.`, 2);
  }
  return new UserError(`remote cache ${url}: ${path}: ${(e as Error).message}`, 1);
}

export class FolderCache implements RemoteCache {
  private swept = false;

  private constructor(
    private readonly root: string,
    private readonly settings: RemoteSettings,
    private readonly local: LocalStore,
  ) {}

  get name(): string {
    return this.settings.url;
  }

  /** Checks the folder once, so a share that is not mounted fails with its one clear line before any transfer. */
  static async open(settings: RemoteSettings, local: LocalStore): Promise<FolderCache> {
    let path: string;
    try {
      path = fileURLToPath(settings.url);
    } catch (e) {
      throw new UserError(`cache.remote: "${settings.url}" is not a file URL (${(e as Error).message}). Write it as file:///absolute/path.`, 2);
    }
    try {
      const root = await realpath(path);
      if (!(await lstat(root)).isDirectory()) throw new RemoteUnavailable(`cache.remote: ${path} is not a folder. Point cache.remote at the shared folder.`, 2);
      return new FolderCache(root, settings, local);
    } catch (e) {
      const code = (e as Errno).code;
      if (code === "ENOENT" || code === "ENOTDIR") {
        throw new RemoteUnavailable(`cache.remote: folder ${path} does not exist (a share that is not mounted?). Mount or create it, or fix cache.remote.`, 2);
      }
      if (code === "EACCES" || code === "EPERM") throw new RemoteUnavailable(`cache.remote: folder ${path} cannot be read (${code}). Check its permissions.`, 2);
      throw explain(e, path, settings.url);
    }
  }

  private explain(e: unknown, path: string): Error {
    return explain(e, path, this.settings.url);
  }

  /**
   * A folder of the cache (`manifests/<node>`), made when `create`; undefined when it is not there. A link or a
   * file where a folder should be is refused: following it would leave the shared folder.
   */
  private async folder(parts: readonly string[], create: boolean): Promise<string | undefined> {
    let path = this.root;
    for (const part of parts) {
      if (!isInsidePath(part) || part.includes("/")) throw new UserError(`remote cache: "${part}" is not a folder name the cache uses.`);
      path = join(path, part);
      let st = await lstat(path).catch((e: Errno) => (e.code === "ENOENT" ? undefined : Promise.reject(this.explain(e, path))));
      if (!st && !create) return undefined;
      if (!st) {
        await mkdir(path).catch((e: Errno) => (e.code === "EEXIST" ? undefined : Promise.reject(this.explain(e, path))));
        st = await lstat(path);
      }
      if (!st.isDirectory()) throw new InvalidEntry(`remote cache: ${path} is a link or a file, not a folder of the cache: refused. Delete it (rm ${path}); a push makes it again`);
    }
    return path;
  }

  /** Opens a file of the cache for reading: undefined when it is not there; a link or anything but a file is refused. */
  private async openFile(path: string, what: string) {
    const remove = `Delete it (rm ${path}) and push the entry again from a trusted machine`;
    const fh = await open(path, READ_FLAGS).catch((e: Errno) => {
      if (e.code === "ENOENT") return undefined;
      if (e.code === "ELOOP") throw new InvalidEntry(`remote cache: ${path} is a link, not a ${what}: refused. ${remove}`);
      throw this.explain(e, path);
    });
    if (!fh) return undefined;
    const st = await fh.stat();
    if (!st.isFile()) {
      await fh.close();
      throw new InvalidEntry(`remote cache: ${path} is not a file: refused. ${remove}`);
    }
    return { fh, size: st.size, remove };
  }

  /** The entry's manifest, validated; undefined when there is none. An invalid one throws (InvalidEntry), naming its path. */
  async manifest(node: string, fingerprint: Fingerprint): Promise<Manifest | undefined> {
    const dir = await this.folder(["manifests", node], false);
    if (!dir) return undefined;
    const path = join(dir, `${fingerprint}.json`);
    const file = await this.openFile(path, "manifest");
    if (!file) return undefined;
    try {
      // Refused before a byte is read: a writer of the share must not make every build read gigabytes.
      if (file.size > MAX_MANIFEST_BYTES) throw tooBig(file.size, path, file.remove);
      return parseManifest(await file.fh.readFile("utf8"), node, fingerprint, path, file.remove);
    } finally {
      await file.fh.close();
    }
  }

  async get(node: string, fingerprint: Fingerprint, progress?: Progress): Promise<Manifest | undefined> {
    const manifest = await this.manifest(node, fingerprint);
    return manifest && fetchEntry(this.local, manifest, PARALLEL_COPIES, (digest, onBytes) => this.copyIn(digest, onBytes), progress);
  }

  async fingerprints(node: string): Promise<Fingerprint[]> {
    const dir = await this.folder(["manifests", node], false);
    if (!dir) return [];
    const names = await readdir(dir).catch((e: Errno) => Promise.reject(this.explain(e, dir)));
    return names.filter((n) => MANIFEST_NAME.test(n)).map((n) => n.slice(0, -5) as Fingerprint);
  }

  fetchBlob(digest: FileDigest): Promise<void> {
    return this.local.using(() => this.copyIn(digest, () => {}));
  }

  /** Copies one blob into the local store, hashing as it goes; adopted only if the bytes are its name. */
  private async copyIn(digest: FileDigest, onBytes: (n: number) => void): Promise<void> {
    const dir = await this.folder(["blobs"], false);
    const path = join(dir ?? join(this.root, "blobs"), digest);
    const file = dir && (await this.openFile(path, "blob"));
    if (!file) throw missingBlob(path);
    const tmp = await this.local.tempPath();
    const hash = createHash("sha256");
    let bytes = 0;
    const body = file.fh.createReadStream(); // closes the handle when done
    body.on("data", (chunk: Buffer | string) => {
      hash.update(chunk);
      bytes += chunk.length;
      onBytes(chunk.length);
    });
    try {
      await pipeline(body, createWriteStream(tmp));
      const actual = hash.digest("hex");
      if (actual !== digest) throw tamperedBlob(path, actual, bytes, `rm ${path}`);
      await this.local.adopt(tmp, digest);
    } catch (e) {
      await rm(tmp, { force: true });
      throw this.explain(e, path);
    }
  }

  async set(manifest: Manifest, blobs: BlobPaths, progress?: Progress): Promise<void> {
    await this.putBlobs(manifest, blobs, progress);
    // Blobs first, the manifest last: an entry in the folder never points at a missing blob.
    const dir = (await this.folder(["manifests", manifest.node], true))!;
    const tmp = await this.tempPath();
    try {
      await writeFile(tmp, JSON.stringify(manifest, null, 1), { flag: "wx" });
      await rename(tmp, join(dir, `${manifest.fingerprint}.json`));
    } catch (e) {
      await rm(tmp, { force: true });
      throw this.explain(e, dir);
    }
  }

  /** Copies the blobs of `manifest` the folder lacks, each re-hashed first; returns how many were copied. */
  async putBlobs(manifest: Manifest, blobs: BlobPaths, progress?: Progress): Promise<number> {
    const dir = (await this.folder(["blobs"], true))!;
    const missing: Blob[] = [];
    for (const b of blobsOf(manifest)) {
      // A link where a blob should be is not one: replaced (the rename replaces the link, not what it points at).
      const st = await lstat(join(dir, b.digest)).catch(() => undefined);
      if (!st?.isFile()) missing.push(b);
    }
    const total = missing.reduce((n, b) => n + b.size, 0);
    let done = 0;
    await parallel(missing, PARALLEL_COPIES, async (b) => {
      const path = blobs(b.digest, b.rel);
      await assertIntact(path, b);
      const tmp = await this.tempPath();
      const body = createReadStream(path);
      body.on("data", (chunk: Buffer | string) => progress?.((done += chunk.length), total));
      try {
        await pipeline(body, createWriteStream(tmp, { flags: "wx" }));
        await rename(tmp, join(dir, b.digest));
      } catch (e) {
        await rm(tmp, { force: true });
        throw this.explain(e, join(dir, b.digest));
      }
    });
    return missing.length;
  }

  /** A fresh temp path in the folder's tmp/, named for this machine and process; the first one sweeps dead writers' leftovers. */
  private async tempPath(): Promise<string> {
    const dir = (await this.folder(["tmp"], true))!;
    if (!this.swept) {
      this.swept = true;
      const old = Date.now() - STALE_TEMP_MS;
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        const st = await lstat(join(dir, name)).catch(() => undefined);
        if (st?.isFile() && st.mtimeMs < old) await rm(join(dir, name), { force: true }).catch(() => undefined);
      }
    }
    return join(dir, `${hostname()}-${process.pid}-${randomBytes(6).toString("hex")}`);
  }
}
