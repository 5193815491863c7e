// What every remote backend does alike: which blobs an entry needs, transfers a few at a time, a local blob
// re-hashed before it is published, and the refusals of a blob that is missing or not what its name says.
import { hashFile } from "../digest.ts";
import type { FileDigest } from "../types.ts";
import { entryFiles, formatBytes, totalSize, type BlobPaths, type Progress, type RemoteCache } from "./cache.ts";
import type { LocalStore } from "./local.ts";
import { InvalidEntry, type Manifest } from "./manifest.ts";

export interface Blob {
  readonly digest: FileDigest;
  /** A path of the output holding it, for messages and for reading it from a staging folder. */
  readonly rel: string;
  readonly size: number;
}

/** Distinct blobs of a manifest with their sizes. */
export function blobsOf(m: Manifest): Blob[] {
  const seen = new Map<FileDigest, Blob>();
  for (const [rel, digest] of entryFiles(m.output)) if (!seen.has(digest)) seen.set(digest, { digest, rel, size: m.sizes[rel] ?? 0 });
  return [...seen.values()];
}

/** Runs `work` over `items`, `n` at a time. */
export async function parallel<T>(items: readonly T[], n: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

/**
 * Brings an entry into the local store: the blobs it lacks, `n` at a time through `fetch` (which adopts a blob
 * only if its bytes are its name), then the manifest, last, so a half-fetched entry is never visible.
 */
export async function fetchEntry(
  local: LocalStore,
  manifest: Manifest,
  n: number,
  fetch: (digest: FileDigest, onBytes: (bytes: number) => void) => Promise<void>,
  progress?: Progress,
): Promise<Manifest> {
  return local.using(async () => {
    const missing: Blob[] = [];
    for (const b of blobsOf(manifest)) if (!(await local.hasBlob(b.digest))) missing.push(b);
    const total = missing.reduce((sum, b) => sum + b.size, 0);
    let done = 0;
    await parallel(missing, n, (b) => fetch(b.digest, (bytes) => progress?.((done += bytes), total)));
    await local.writeManifest(manifest);
    return manifest;
  });
}

/** Re-hashes a local blob about to be uploaded: one rotted on disk is never published under a digest it does not hold. */
export async function assertIntact(path: string, blob: Blob): Promise<void> {
  const actual = await hashFile(path);
  if (actual !== blob.digest) {
    throw new InvalidEntry(`build cache: ${path} should hold sha256 ${blob.digest.slice(0, 12)}… (${blob.rel}) but holds ${actual.slice(0, 12)}…: not uploaded. Delete it (rm ${path}) and build the node again.`);
  }
}

export function missingBlob(where: string): InvalidEntry {
  return new InvalidEntry(`remote cache: ${where} is missing, though a manifest names it. Push the entry again from a machine that has it (push uploads the blobs a remote entry lacks)`);
}

/** A downloaded blob whose bytes are not its name; `remove`: the command that deletes it. */
export function tamperedBlob(where: string, actual: string, bytes: number, remove: string): InvalidEntry {
  return new InvalidEntry(
    `remote cache: ${where} does not hold the bytes its name promises (got sha256 ${actual.slice(0, 12)}…, ${bytes} bytes): refused. ` +
      `It was altered or truncated on the server: delete it (${remove}), then push again from a trusted machine that has the entry`,
  );
}

/**
 * Uploads a local entry: when the remote has the same output, only the blobs it lost; when it has none (or an
 * invalid one), the entry; when it has another build of the same inputs, the entry only if `replace` (push: the
 * lock decides), else it is kept. Returns what was done, for the command's line.
 */
export async function uploadEntry(remote: RemoteCache, manifest: Manifest, blobs: BlobPaths, replace: boolean, progress?: Progress): Promise<string> {
  const there = await remote.manifest(manifest.node, manifest.fingerprint).catch((e: unknown) => (e instanceof InvalidEntry ? undefined : Promise.reject(e)));
  if (there?.output.digest === manifest.output.digest) {
    // Every blob checked, not just the manifest: a blob deleted for being damaged is uploaded again.
    const sent = await remote.putBlobs(manifest, blobs, progress);
    return sent === 0 ? "already on the remote" : `already on the remote; uploaded ${sent} missing ${sent === 1 ? "file" : "files"}`;
  }
  if (there && !replace) return "the remote holds another build of the same inputs: kept";
  await remote.set(manifest, blobs, progress);
  return `pushed ${formatBytes(totalSize(manifest))}${there ? " (the remote's entry was not pipeline.lock's output: replaced)" : ""}`;
}
