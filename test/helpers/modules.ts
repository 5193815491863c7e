// Reading what count-modules.mjs prints at exit: the modules a CLI run loaded, by package and of this repository.
import { join } from "node:path";

/** Node flags that load the counter (as arguments before tsx's loader, or joined into NODE_OPTIONS). */
export const COUNT_MODULES = ["--import", join(import.meta.dirname, "count-modules.mjs")];

export interface ModuleCount {
  byPackage: Record<string, number>;
  /** This repository's files, relative to it. */
  project: string[];
}

export function modulesLoaded(stderr: string): ModuleCount {
  const m = /@@modules (.*)/.exec(stderr);
  if (!m) throw new Error(`no module count in:\n${stderr}`);
  return JSON.parse(m[1]!) as ModuleCount;
}

export function packagesLoaded(stderr: string): string[] {
  return Object.keys(modulesLoaded(stderr).byPackage);
}
