// Where node outputs live, and their atomic publication.
//
// <outputs>/<id> (the app names the folder, e.g. models/) is a symlink to <outputs>/.builds/<id>-<stamp>. A
// node runs into a fresh staging folder in <outputs>/.builds; publishing renames a new symlink over the old one, which POSIX does atomically. A crash
// at any moment leaves either the previous output or the new one in place, never a half-written one.
// The tool only ever replaces or removes what it made itself: its own links and what is under .builds.
import { lstat, mkdir, readdir, readlink, rename, rm, stat, symlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { fsyncDir } from "./durable.ts";
import { UserError } from "./types.ts";

/** What is at <outputs>/<id>. */
type Occupant =
  | { readonly kind: "none" }
  /** A link this tool made; `build` is the .builds entry it names (which may have been deleted since). */
  | { readonly kind: "ours"; readonly build: string }
  | { readonly kind: "foreign"; readonly problem: string };

/** A leftover of a publish killed between making the new link and renaming it into place. */
const TMP_LINK = /\.link-\d+$/;

export class OutputStore {
  readonly buildsDir: string;

  constructor(
    readonly dir: string,
    /** The folder as the user knows it (relative to the project), for messages. */
    private readonly name: string,
  ) {
    this.buildsDir = join(dir, ".builds");
  }

  path(id: string): string {
    return join(this.dir, id);
  }

  /** Why the node's output cannot be read (a link whose build folder was deleted), or undefined when it can. */
  async missing(id: string): Promise<string | undefined> {
    const link = this.path(id);
    const st = await stat(link).catch(() => undefined);
    if (st?.isDirectory()) return undefined;
    const target = await readlink(link).catch(() => undefined);
    if (target !== undefined) return `output ${link} is missing (it links to ${target}, which is gone)`;
    return st ? `output ${link} is not a folder` : `output ${link} is missing`;
  }

  private async occupant(id: string): Promise<Occupant> {
    const link = this.path(id);
    const st = await lstat(link).catch(() => undefined);
    if (!st) return { kind: "none" };
    const where = `${this.name}/${id}`;
    if (st.isSymbolicLink()) {
      const target = await readlink(link);
      const build = target.startsWith(".builds/") ? target.slice(".builds/".length) : undefined;
      if (build !== undefined && !build.includes("/") && build.startsWith(`${id}-`)) return { kind: "ours", build };
      return {
        kind: "foreign",
        problem:
          `${where} is a link to ${target}, which this tool did not make; publishing ${id} would replace it, and the tool ` +
          `never deletes what it did not make. Remove the link (\`rm ${link}\` keeps the folder it points at). ` +
          `To keep outputs on another disk, make ${this.name}/ itself a link to a folder there.`,
      };
    }
    return {
      kind: "foreign",
      problem:
        `${where} is a ${st.isDirectory() ? "folder" : "file"} this tool did not make; publishing ${id} would replace it, and the tool ` +
        `never deletes what it did not make. Move it out of ${this.name}/ (e.g. \`mv ${link} ./my-${id}\`) and, if pipeline.yaml ` +
        `names it, name the new place: ${this.name}/ holds only the tool's outputs.`,
    };
  }

  /** Throws, saying what to do, when <outputs>/<id> holds something the tool would have to replace but did not make. */
  async assertPublishable(id: string): Promise<void> {
    const occupant = await this.occupant(id);
    if (occupant.kind === "foreign") throw new UserError(occupant.problem);
  }

  async createStaging(id: string): Promise<string> {
    await mkdir(this.buildsDir, { recursive: true });
    const dir = join(this.buildsDir, `${id}.staging-${process.pid}-${Date.now()}`);
    await mkdir(dir);
    return dir;
  }

  /**
   * Makes the staging folder (made by createStaging, or another folder directly under .builds named
   * `<id>.staging-...`) the node's output, atomically and durably, then removes the previous one.
   */
  async publish(id: string, staging: string): Promise<void> {
    const name = basename(staging);
    if (dirname(staging) !== this.buildsDir || !name.startsWith(`${id}.staging-`)) {
      throw new Error(`publish(${id}): ${staging} is not a staging folder of ${this.buildsDir}`);
    }
    const occupant = await this.occupant(id);
    if (occupant.kind === "foreign") throw new UserError(occupant.problem);
    const finalName = name.replace(".staging-", "-");
    await rename(staging, join(this.buildsDir, finalName));
    await fsyncDir(this.buildsDir); // the folder's new name before a link may name it
    const link = this.path(id);
    const tmpLink = `${link}.link-${process.pid}`;
    await rm(tmpLink, { force: true });
    await symlink(join(".builds", finalName), tmpLink);
    // Over a link, rename is atomic; over a folder someone put there meanwhile it fails, and deletes nothing.
    await rename(tmpLink, link);
    await fsyncDir(this.dir);
    if (occupant.kind === "ours" && occupant.build !== finalName) {
      await rm(join(this.buildsDir, occupant.build), { recursive: true, force: true });
    }
  }

  /**
   * What a crash left: staging folders, superseded builds and half-made links (only what the tool made:
   * entries of .builds no link names, and <outputs>/<id>.link-<pid> links).
   */
  async debris(): Promise<string[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const live = new Set<string>();
    const found: string[] = [];
    for (const name of names) {
      const path = join(this.dir, name);
      const target = await readlink(path).catch(() => undefined);
      if (target === undefined) continue;
      if (TMP_LINK.test(name)) found.push(path);
      else if (target.startsWith(".builds/")) live.add(target.slice(".builds/".length));
    }
    const entries = await readdir(this.buildsDir).catch(() => [] as string[]);
    return [...found, ...entries.filter((e) => !live.has(e)).map((e) => join(this.buildsDir, e))];
  }

  /** Removes the debris. Call while holding the run lock: another build's staging folder is debris too. */
  async sweep(): Promise<void> {
    await Promise.all((await this.debris()).map((path) => rm(path, { recursive: true, force: true })));
  }
}
