// A project's entries in the local build cache, as experiments see them: one node's builds, the params they were
// built with, their records, and the entries built downstream of them. Reads only.
import { readFile } from "node:fs/promises";
import type { Manifest, ProjectId } from "../caching/cache.ts";
import { LocalStore, type StoreEntry } from "../caching/local.ts";
import { legacyProjectId, lockProject } from "../lockfile.ts";

/**
 * The ids a project's entries carry: the one its pipeline.lock names (every clone's), and the digest of its folder
 * that entries named it by before (this folder's own older entries).
 */
export async function projectIds(root: string, lockPath: string): Promise<ReadonlySet<ProjectId>> {
  return new Set([await lockProject(lockPath), legacyProjectId(root)]);
}

export class ProjectEntries {
  readonly store: LocalStore;
  private readonly byNode = new Map<string, Promise<StoreEntry[]>>();

  constructor(
    storeDir: string,
    readonly projects: ReadonlySet<ProjectId>,
  ) {
    this.store = new LocalStore(storeDir);
  }

  /** The node's entries built by this project, newest use first. */
  of(node: string): Promise<StoreEntry[]> {
    let found = this.byNode.get(node);
    if (!found) {
      found = this.store.entries(node).then((all) => all.filter((e) => e.manifest.project !== undefined && this.projects.has(e.manifest.project)));
      this.byNode.set(node, found);
    }
    return found;
  }

  /** The text of one of an entry's files or records; undefined when it has none such or its blob was collected. */
  async text(manifest: Manifest, rel: string): Promise<string | undefined> {
    const digest = manifest.output.records?.[rel] ?? manifest.output.files[rel];
    if (!digest) return undefined;
    return readFile(this.store.blobPath(digest), "utf8").catch(() => undefined);
  }

  /**
   * The entries of `node` built from `from`'s output, following the recorded upstream digests through the nodes
   * in `path` (e.g. eval ← fused ← adapters: path ["fused"]). Entries recorded before they named their upstream are not found.
   */
  async downstream(from: Manifest, path: readonly string[], node: string): Promise<StoreEntry[]> {
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
}
