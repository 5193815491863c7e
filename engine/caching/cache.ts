// The build cache: one interface over a local content-addressed store and remote ones (backends.ts).
//
// Two maps, written in order (Bazel's CAS and action cache): blobs, each file's bytes once under its
// sha256; then a manifest per node fingerprint naming the files, their digests and the lock facts.
// Blobs go first and the manifest last, so an entry never points at a missing blob.
import type { FileDigest, Fingerprint, OutputDigests } from "../types.ts";
import { UserError } from "../types.ts";
import type { Manifest } from "./manifest.ts";

export type { Manifest, ProjectId } from "./manifest.ts";

/**
 * The remote cannot be used at all (unreachable, too slow, credentials refused, no such bucket or folder): a build warns
 * once and goes on with the local store; `push` and `pull` fail with it. Not raised for one bad entry.
 */
export class RemoteUnavailable extends UserError {}

/** Where an entry's bytes can be read from now: a local file holding the blob of `digest`. */
export type BlobPaths = (digest: FileDigest, rel: string) => string;

/** Reports transfer progress: bytes moved so far of the total. */
export type Progress = (done: number, total: number) => void;

export interface Cache {
  /** Human name for messages: the store's folder, or the remote's URL. */
  readonly name: string;
  /** The entry of a node's fingerprint, its blobs present in the local store (fetched there if need be). */
  get(node: string, fingerprint: Fingerprint, progress?: Progress): Promise<Manifest | undefined>;
  /** The entry's manifest alone, no blob moved: what a restore would produce. */
  manifest(node: string, fingerprint: Fingerprint): Promise<Manifest | undefined>;
  /** Stores an entry: the blobs it lacks first (read from `blobs`), the manifest last. */
  set(manifest: Manifest, blobs: BlobPaths, progress?: Progress): Promise<void>;
}

/**
 * A remote: besides the entries, it can be asked to complete one (a blob deleted for being damaged), and to say
 * what it holds (what `runs --remote` lists).
 */
export interface RemoteCache extends Cache {
  /** Uploads the blobs of `manifest` the remote lacks (each checked), re-hashed first; returns how many. */
  putBlobs(manifest: Manifest, blobs: BlobPaths, progress?: Progress): Promise<number>;
  /** The fingerprints of the node's entries: the names of its manifests, none of them read. */
  fingerprints(node: string): Promise<Fingerprint[]>;
  /** Brings one blob into the local store, adopted only if its bytes are its name. */
  fetchBlob(digest: FileDigest): Promise<void>;
}

export type { CacheSettings, RemoteSettings } from "./settings.ts";

/** Every file an entry restores, records included, as (relative path, digest). */
export function entryFiles(output: OutputDigests): [string, FileDigest][] {
  return [...Object.entries(output.files), ...Object.entries(output.records ?? {})];
}

export function totalSize(m: Manifest): number {
  return Object.values(m.sizes).reduce((a, b) => a + b, 0);
}

/** "1.2 GiB of 4.0 GiB (85.3 MB/s)": a transfer begun at `startedMs` (performance.now()). */
export function transferLine(done: number, total: number, startedMs: number): string {
  const secs = (performance.now() - startedMs) / 1000;
  return `${formatBytes(done)} of ${formatBytes(total)} (${(secs > 0 ? done / secs / 1e6 : 0).toFixed(1)} MB/s)`;
}

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}
