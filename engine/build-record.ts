// The last build's node timings (cache/last-build.json), for `report`'s timeline. Not a build input: a
// record of what happened, written when a build ran or restored something (a no-op keeps the last one).
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { replaceFile, sweepTemps } from "./durable.ts";
import type { NodeReport } from "./engine.ts";

export const LAST_BUILD_FILE = "last-build.json";

export interface BuildRecord {
  readonly target: string;
  /** ISO time the build started. */
  readonly started: string;
  /** Each node's status, start (ms since the build started) and duration. */
  readonly nodes: readonly NodeReport[];
}

export async function writeLastBuild(cacheDir: string, record: BuildRecord): Promise<void> {
  await mkdir(cacheDir, { recursive: true });
  const path = join(cacheDir, LAST_BUILD_FILE);
  await sweepTemps(path); // what a build killed while writing it left
  await replaceFile(path, JSON.stringify(record, null, 2) + "\n");
}
