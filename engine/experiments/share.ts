// Sharing experiments: a run's entries uploaded to the remote, so a clone elsewhere lists it (`runs --remote`)
// and restores it with -S. Unlike `push`, these are not pipeline.lock's entries: nothing says which build of a
// fingerprint is right, so a remote entry made elsewhere from the same inputs is kept, not replaced.
import type { Manifest, Progress, RemoteCache } from "../caching/cache.ts";
import type { LocalStore } from "../caching/local.ts";
import { uploadEntry } from "../caching/remote.ts";

/** What became of one entry: uploaded, already there (its missing blobs uploaded), or another build kept. */
export function shareEntry(remote: RemoteCache, store: LocalStore, manifest: Manifest, progress?: Progress): Promise<string> {
  return uploadEntry(remote, manifest, (digest) => store.blobPath(digest), false, progress);
}
