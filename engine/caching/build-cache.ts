// What the runner talks to: the local store, and a remote behind it when one is configured. A miss in
// the local store asks the remote, which fetches the entry into the local store (verified) first.
//
// The remote is an optimization, never a requirement: when it cannot be used at all (offline, too slow,
// credentials refused, no bucket, a share not mounted), the build warns once, naming the setting, and goes on with the local store.
import { statSync } from "node:fs";
import type { Fingerprint, Json, OutputDigests, TreeDigest } from "../types.ts";
import { UserError } from "../types.ts";
import { entryFiles, RemoteUnavailable, transferLine, type CacheSettings, type Manifest, type ProjectId, type RemoteCache } from "./cache.ts";
import { backendOf, REMOTE_FORMS } from "./backends.ts";
import { LocalStore } from "./local.ts";
import { InvalidEntry } from "./manifest.ts";

export class BuildCache {
  readonly local: LocalStore;
  private remoteCache: Promise<RemoteCache> | undefined;
  /** Set once the remote failed as a whole: the rest of the build does not ask it again. */
  private remoteDown = false;

  constructor(
    readonly settings: CacheSettings,
    /** false: --no-remote, or a command that must not touch it. */
    private readonly useRemote: boolean,
  ) {
    this.local = new LocalStore(settings.dir);
  }

  get hasRemote(): boolean {
    return this.useRemote && this.settings.remote !== undefined && !this.remoteDown;
  }

  /** `work` against the remote; `fallback` (and the one warning) when the remote cannot be used. */
  private async fromRemote<T>(fallback: T, work: (remote: RemoteCache) => Promise<T>): Promise<T> {
    try {
      return await work(await this.remote());
    } catch (e) {
      if (!(e instanceof RemoteUnavailable)) throw e;
      // Straight to stderr: planning (status, --dry-run) has no observer to note it with.
      if (!this.remoteDown) process.stderr.write(`warning: ${e.message} Building with the local build cache only.\n`);
      this.remoteDown = true;
      return fallback;
    }
  }

  /** The remote, its backend loaded on first use only: a build that never misses locally never loads it. */
  remote(): Promise<RemoteCache> {
    const settings = this.settings.remote;
    if (!settings) throw new UserError(`No remote cache is configured: set cache.remote in pipeline.yaml (${REMOTE_FORMS}).`, 2);
    const backend = backendOf(settings.url);
    if (!backend) throw new UserError(`cache.remote: ${settings.url} is not ${REMOTE_FORMS}.`, 2);
    this.remoteCache ??= backend.open(settings, this.local);
    return this.remoteCache;
  }

  /**
   * Whether a stale node's new fingerprint can be restored: its manifest in the local store, or the remote's.
   * `want`: the output digest pipeline.lock records for this fingerprint; only an entry that made it counts,
   * and a local entry that differs does not hide a remote one that matches (the lock decides, not the store).
   */
  async peek(node: string, fingerprint: Fingerprint, want?: TreeDigest): Promise<Manifest | undefined> {
    // An invalid entry is not planned as a restore; the restore attempt says why, and runs the node instead.
    const invalid = (e: unknown) => {
      if (e instanceof InvalidEntry) return undefined;
      throw e;
    };
    const local = await this.local.get(node, fingerprint).catch(invalid);
    if (matches(local, want)) return local;
    if (!this.hasRemote) return undefined;
    // A remote entry's manifest is small: fetching it only (its blobs come at restore) tells what the output will be.
    const remote = await this.fromRemote(undefined, (r) => r.manifest(node, fingerprint)).catch(invalid);
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
    const started = performance.now();
    return this.fromRemote(undefined, async (remote) => {
      // The manifest first: a remote entry that is not the lock's moves no blob.
      if (want !== undefined && !matches(await remote.manifest(node, fingerprint), want)) return undefined;
      const fetched = await remote.get(node, fingerprint, (done, total) => progress?.(transferLine(done, total, started)));
      return matches(fetched, want) ? fetched : undefined;
    });
  }

  /** Records a node's new output (in `dir`, whose files hashed to `output`). */
  async record(
    node: string,
    fingerprint: Fingerprint,
    output: OutputDigests,
    dir: string,
    facts: Readonly<Record<string, Json>>,
    origin: { readonly params: Json; readonly project: ProjectId; readonly upstream: Readonly<Record<string, string>>; readonly built: string; readonly seconds: number },
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
