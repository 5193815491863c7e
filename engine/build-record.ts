// The last build's node timings (cache/last-build.json), for `report`'s timeline. Not a build input: a
// record of what happened, written when a build ran or restored something (a no-op keeps the last one).
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { replaceFile } from "./durable.ts";
import type { BuildObserver, NodeReport, NodeStatus } from "./runner.ts";

export const LAST_BUILD_FILE = "last-build.json";

export interface TimedNode {
  readonly id: string;
  readonly status: NodeStatus;
  readonly reason: string;
  /** Milliseconds from the build's start to the node's start, and its duration. */
  readonly startMs: number;
  readonly ms: number;
}

export interface BuildRecord {
  readonly target: string;
  /** ISO time the build started. */
  readonly started: string;
  readonly nodes: readonly TimedNode[];
}

/** Wraps the CLI's observer to time each node: a node started `ms` before it finished, in any build order. */
export function timingObserver(inner: BuildObserver): { observer: BuildObserver; record: (target: string) => BuildRecord } {
  const t0 = performance.now();
  const started = new Date().toISOString();
  const nodes: TimedNode[] = [];
  const observer: BuildObserver = {
    nodeRunning: (id, reason) => inner.nodeRunning(id, reason),
    progress: (id, line) => inner.progress(id, line),
    note: (id, line) => inner.note(id, line),
    nodeFinished(report: NodeReport) {
      nodes.push({ ...report, startMs: Math.max(0, Math.round(performance.now() - t0 - report.ms)) });
      inner.nodeFinished(report);
    },
  };
  return { observer, record: (target) => ({ target, started, nodes }) };
}

export async function writeLastBuild(cacheDir: string, record: BuildRecord): Promise<void> {
  await mkdir(cacheDir, { recursive: true });
  await replaceFile(join(cacheDir, LAST_BUILD_FILE), JSON.stringify(record, null, 2) + "\n");
}
