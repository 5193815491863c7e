// What the runner talks to: the local store, and a remote behind it when one is configured. A miss in
// the local store asks the remote, which fetches the entry into the local store (verified) first.
import { statSync } from "node:fs";
import type { Fingerprint, Json, OutputDigests, TreeDigest } from "../types.ts";
import { UserError } from "../types.ts";
import { entryFiles, transferLine, type Cache, type CacheSettings, type Manifest, type ProjectId } from "./cache.ts";
import { LocalStore } from "./local.ts";

export class BuildCache {
  readonly local: LocalStore;
  private remoteCache: Promise<Cache> | undefined;

  constructor(
    readonly settings: CacheSettings,
    /** false: --no-remote, or a command that must not touch it. */
    private readonly useRemote: boolean,
  ) {
    this.local = new LocalStore(settings.dir);
  }

  get hasRemote(): boolean {
    return this.useRemote && this.settings.remote !== undefined;
  }

  /** The remote, loading the S3 client on first use only: a build that never misses locally never loads it. */
  remote(): Promise<Cache> {
    const settings = this.settings.remote;
    if (!settings) throw new UserError("No remote cache is configured: set cache.remote in pipeline.yaml (s3://bucket/prefix).", 2);
    this.remoteCache ??= import("./s3.ts").then(({ S3Cache }) => S3Cache.open(settings, this.local));
    return this.remoteCache;
  }

  /**
   * Whether a stale node's new fingerprint can be restored: its manifest in the local store, or the remote's.
   * `want`: the output digest pipeline.lock records for this fingerprint; only an entry that made it counts,
   * and a local entry that differs does not hide a remote one that matches (the lock decides, not the store).
   */
  async peek(node: string, fingerprint: Fingerprint, want?: TreeDigest): Promise<Manifest | undefined> {
    const local = await this.local.get(node, fingerprint);
    if (matches(local, want)) return local;
    if (!this.hasRemote) return undefined;
    // A remote entry's manifest is small: fetching it only (its blobs come at restore) tells what the output will be.
    const remote = await (await this.remote()).manifest(node, fingerprint);
    return matches(remote, want) ? remote : undefined;
  }

  /**
   * The entry in the local store, fetched from the remote first when only the remote has it (progress: a line
   * with MB/s). With `want`, as in peek: only an entry whose output digest is the lock's.
   */
  async lookup(node: string, fingerprint: Fingerprint, progress?: (line: string) => void, want?: TreeDigest): Promise<Manifest | undefined> {
    const local = await this.local.get(node, fingerprint);
    if (matches(local, want)) return local;
    if (!this.hasRemote) return undefined;
    const remote = await this.remote();
    // The manifest first: a remote entry that is not the lock's moves no blob.
    if (want !== undefined && !matches(await remote.manifest(node, fingerprint), want)) return undefined;
    const started = performance.now();
    const fetched = await remote.get(node, fingerprint, (done, total) => progress?.(transferLine(done, total, started)));
    return matches(fetched, want) ? fetched : undefined;
  }

  /** Records a node's new output (in `dir`, whose files hashed to `output`). */
  async record(
    node: string,
    fingerprint: Fingerprint,
    output: OutputDigests,
    dir: string,
    facts: Readonly<Record<string, Json>>,
    origin: { readonly params: Json; readonly project: ProjectId },
  ): Promise<void> {
    const sizes: Record<string, number> = {};
    const executable: string[] = [];
    for (const [rel] of entryFiles(output)) {
      const st = statSync(`${dir}/${rel}`);
      sizes[rel] = st.size;
      if (st.mode & 0o100) executable.push(rel);
    }
    const manifest: Manifest = { version: 1, node, fingerprint, output, sizes, executable, ...(Object.keys(facts).length > 0 ? { facts } : {}), ...origin };
    await this.local.set(manifest, (_digest, rel) => `${dir}/${rel}`);
  }
}

/** An entry, and (when the lock names one) the output digest it must have. */
function matches(manifest: Manifest | undefined, want: TreeDigest | undefined): manifest is Manifest {
  return manifest !== undefined && (want === undefined || manifest.output.digest === want);
}
