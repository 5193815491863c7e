// Sharing experiments: a run's entries uploaded to the remote, so a clone elsewhere lists it (`runs --remote`)
// and restores it with -S. Unlike `push`, these are not pipeline.lock's entries: nothing says which build of a
// fingerprint is right, so a remote entry made elsewhere from the same inputs is kept, not replaced.
import type { FileDigest } from "../types.ts";
import { formatBytes, totalSize, type Manifest, type Progress, type RemoteCache } from "../caching/cache.ts";
import type { LocalStore } from "../caching/local.ts";
import { InvalidEntry } from "../caching/manifest.ts";

/** What became of one entry: uploaded, already there (its missing blobs uploaded), or another build kept. */
export async function shareEntry(remote: RemoteCache, store: LocalStore, manifest: Manifest, progress?: Progress): Promise<string> {
  const there = await remote.manifest(manifest.node, manifest.fingerprint).catch((e: unknown) => (e instanceof InvalidEntry ? undefined : Promise.reject(e)));
  const blobs = (digest: FileDigest) => store.blobPath(digest);
  if (there && there.output.digest !== manifest.output.digest) return "the remote holds another build of the same inputs: kept";
  if (there) {
    const sent = await remote.putBlobs(manifest, blobs, progress);
    return sent === 0 ? "already on the remote" : `already on the remote; uploaded ${sent} missing ${sent === 1 ? "file" : "files"}`;
  }
  // An invalid remote manifest is replaced by this one, as a missing one is.
  await remote.set(manifest, blobs, progress);
  return `pushed ${formatBytes(totalSize(manifest))}`;
}
