// A project's entries in the build cache, as experiments see them: one node's builds, the params they were
// built with, their records, and the entries built downstream of them. Reads the local store and, when given
// one, a remote too: its manifests (validated), and a blob only when its text is asked for.
import { readFile } from "node:fs/promises";
import type { Manifest, ProjectId, RemoteCache } from "../caching/cache.ts";
import { LocalStore, type StoreEntry } from "../caching/local.ts";
import { InvalidEntry } from "../caching/manifest.ts";
import { parallel } from "../caching/remote.ts";
import { legacyProjectId, lockProject } from "../lockfile.ts";

/**
 * The ids a project's entries carry: the one its pipeline.lock names (every clone's), and the digest of its folder
 * that entries named it by before (this folder's own older entries).
 */
export async function projectIds(root: string, lockPath: string): Promise<ReadonlySet<ProjectId>> {
  return new Set([await lockProject(lockPath), legacyProjectId(root)]);
}

export interface ProjectEntry extends StoreEntry {
  /** Only the remote holds it: its blobs are fetched when its text is asked for. */
  readonly remoteOnly?: true;
}

/** Remote manifests read at once: each is a small request. */
const PARALLEL_MANIFESTS = 8;

export class ProjectEntries {
  readonly store: LocalStore;
  /** Remote entries skipped for being invalid, each naming its URL and the command that deletes it. */
  readonly refused: string[] = [];
  private readonly byNode = new Map<string, Promise<ProjectEntry[]>>();

  constructor(
    storeDir: string,
    readonly projects: ReadonlySet<ProjectId>,
    private readonly remote?: RemoteCache,
  ) {
    this.store = new LocalStore(storeDir);
  }

  private mine(m: Manifest): boolean {
    return m.project !== undefined && this.projects.has(m.project);
  }

  /** The node's entries built by this project: the local store's, newest use first, then the remote's it lacks. */
  of(node: string): Promise<ProjectEntry[]> {
    let found = this.byNode.get(node);
    if (!found) {
      found = this.load(node);
      this.byNode.set(node, found);
    }
    return found;
  }

  private async load(node: string): Promise<ProjectEntry[]> {
    const all = await this.store.entries(node);
    const local: ProjectEntry[] = all.filter((e) => this.mine(e.manifest));
    const remote = this.remote;
    if (!remote) return local;
    const have = new Set<string>(all.map((e) => e.manifest.fingerprint));
    const there: ProjectEntry[] = [];
    await parallel(
      (await remote.fingerprints(node)).filter((f) => !have.has(f)),
      PARALLEL_MANIFESTS,
      async (f) => {
        const manifest = await remote.manifest(node, f).catch((e: unknown) => this.skip(e));
        if (manifest && this.mine(manifest)) there.push({ manifest, used: 0, remoteOnly: true });
      },
    );
    return [...local, ...there.sort((a, b) => (b.manifest.built ?? "").localeCompare(a.manifest.built ?? ""))];
  }

  private skip(e: unknown): undefined {
    if (!(e instanceof InvalidEntry)) throw e;
    this.refused.push(e.message);
    return undefined;
  }

  /** The text of one of an entry's files or records; undefined when it has none such or its blob was collected. */
  async text(manifest: Manifest, rel: string): Promise<string | undefined> {
    const digest = manifest.output.records?.[rel] ?? manifest.output.files[rel];
    if (!digest) return undefined;
    const path = this.store.blobPath(digest);
    const text = await readFile(path, "utf8").catch(() => undefined);
    if (text !== undefined || !this.remote) return text;
    // A remote entry's record: fetched into the local store, adopted only if its bytes are its name, then read.
    if ((await this.remote.fetchBlob(digest).then(() => true, (e: unknown) => this.skip(e))) !== true) return undefined;
    return readFile(path, "utf8").catch(() => undefined);
  }

  /**
   * The entries of `node` built from `from`'s output, following the recorded upstream digests through the nodes
   * in `path` (e.g. eval ← fused ← adapters: path ["fused"]). Entries recorded before they named their upstream are not found.
   */
  async downstream(from: Manifest, path: readonly string[], node: string): Promise<ProjectEntry[]> {
    let frontier = new Set([from.output.digest as string]);
    let previous = from.node;
    for (const step of [...path, node]) {
      const found = (await this.of(step)).filter((e) => {
        const digest = e.manifest.upstream?.[previous];
        return digest !== undefined && frontier.has(digest);
      });
      if (step === node) return found;
      frontier = new Set(found.map((e) => e.manifest.output.digest as string));
      previous = step;
    }
    return [];
  }

  /**
   * `from` and every local entry built from it, directly or through others (the nodes in `order`, upstream
   * first): what a run is, shared. Entries recorded before they named their upstream are not found.
   */
  async builtFrom(from: Manifest, order: readonly string[]): Promise<Manifest[]> {
    const reached = new Map<string, Set<string>>([[from.node, new Set([from.output.digest])]]);
    const out = [from];
    for (const node of order) {
      if (node === from.node) continue;
      for (const { manifest, remoteOnly } of await this.of(node)) {
        if (remoteOnly) continue;
        const fromReached = Object.entries(manifest.upstream ?? {}).some(([up, digest]) => reached.get(up)?.has(digest));
        if (!fromReached) continue;
        out.push(manifest);
        reached.set(node, (reached.get(node) ?? new Set()).add(manifest.output.digest));
      }
    }
    return out;
  }
}
