// Where node outputs live, and their atomic publication.
//
// models/<id> is a symlink to models/.builds/<id>-<stamp>. A node runs into a fresh staging folder in
// models/.builds; publishing renames a new symlink over the old one, which POSIX does atomically. A crash
// at any moment leaves either the previous output or the new one in place, never a half-written one.
import { lstat, mkdir, readdir, readlink, rename, rm, symlink } from "node:fs/promises";
import { join } from "node:path";

export class OutputStore {
  readonly buildsDir: string;

  constructor(readonly modelsDir: string) {
    this.buildsDir = join(modelsDir, ".builds");
  }

  path(id: string): string {
    return join(this.modelsDir, id);
  }

  async exists(id: string): Promise<boolean> {
    return lstat(this.path(id)).then(
      (s) => s.isSymbolicLink() || s.isDirectory(),
      () => false,
    );
  }

  async createStaging(id: string): Promise<string> {
    await mkdir(this.buildsDir, { recursive: true });
    const dir = join(this.buildsDir, `${id}.staging-${process.pid}-${Date.now()}`);
    await mkdir(dir);
    return dir;
  }

  /** Makes the staging folder the node's output, atomically, then removes the previous one. */
  async publish(id: string, staging: string): Promise<void> {
    const final = staging.replace(/\.staging-/, "-");
    await rename(staging, final);
    const link = this.path(id);
    const previous = await readlink(link).catch(() => undefined);
    const tmpLink = `${link}.link-${process.pid}`;
    await rm(tmpLink, { force: true });
    await symlink(join(".builds", final.slice(this.buildsDir.length + 1)), tmpLink);
    // rename() replaces a symlink atomically, but not a real folder (someone copied one in by hand).
    const st = await lstat(link).catch(() => undefined);
    if (st && !st.isSymbolicLink()) await rm(link, { recursive: true, force: true });
    await rename(tmpLink, link);
    if (previous) await rm(join(this.modelsDir, previous), { recursive: true, force: true });
  }

  /** Removes staging folders and superseded builds left by a crash. Call while holding the run lock. */
  async sweep(): Promise<void> {
    const entries = await readdir(this.buildsDir).catch(() => [] as string[]);
    if (entries.length === 0) return;
    const live = new Set<string>();
    for (const name of await readdir(this.modelsDir)) {
      const target = await readlink(join(this.modelsDir, name)).catch(() => undefined);
      if (target?.startsWith(".builds/")) live.add(target.slice(".builds/".length));
    }
    await Promise.all(
      entries.filter((e) => !live.has(e)).map((e) => rm(join(this.buildsDir, e), { recursive: true, force: true })),
    );
  }
}
