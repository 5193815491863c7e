// Every training the build cache holds for this project, with its numbers: what the `runs` command lists and
// the report compares. The ML side of experiments: `adapters` is the training, its params are `lora:`, its
// records say the losses, speed and memory, and an `eval` entry built from it (through `fused`) its scores.
import { join } from "node:path";
import type { Json } from "../engine/types.ts";
import { UserError } from "../engine/types.ts";
import { ProjectEntries, projectIds, type ProjectEntry } from "../engine/experiments/entries.ts";
import { BuildCache } from "../engine/caching/build-cache.ts";
import type { CacheSettings, RemoteCache } from "../engine/caching/cache.ts";
import { readLock } from "../engine/lockfile.ts";
import { diffLabel, paramsDiff, type EarlierTraining, type EvalFile, type ParamChange } from "../report/data.ts";
import { MEMORY_FILE, METRICS_FILE, parseMetrics, type MemoryFile, type Metrics } from "../stages/lib/data/training-metrics.ts";
import { EVAL_FILE } from "../stages/eval.ts";

/** The node that trains, and the config section its params are (adapters' params are `lora:` as is). */
export const TRAINING = "adapters";
export const PARAMS_SECTION = "lora";

export interface RunEval {
  readonly examples: number;
  readonly fineTuned: number;
  readonly base: number;
  readonly gguf: number;
  readonly testLoss: number;
}

export interface Run {
  /** A short prefix of the adapters fingerprint: how `runs show`, `runs diff` and `report --runs` name it. */
  readonly id: string;
  readonly fingerprint: string;
  /** When it was trained (ISO); undefined for entries recorded before the cache said so. */
  readonly built?: string;
  /** Last use of its cache entry, ms since the epoch. */
  readonly used: number;
  readonly params: Json;
  /** Its params against the current config's (`then` is the run's). */
  readonly diff: readonly ParamChange[];
  /** pipeline.lock's training: what pipeline.yaml builds. */
  readonly current: boolean;
  /** Only the remote holds it (`runs --remote`): a build with its -S restores it from there. */
  readonly remoteOnly?: true;
  readonly trainLoss?: number;
  readonly valLoss?: number;
  readonly tokensPerSecond?: number;
  readonly peakMemoryGB?: number;
  readonly seconds?: number;
  /** The newest eval of it, when eval ran on it. */
  readonly eval?: RunEval;
  readonly metrics: Metrics;
}

const ID_LENGTH = 8;
const last = <T>(xs: readonly T[]) => xs[xs.length - 1];
const finite = (n: number | null | undefined) => (typeof n === "number" && Number.isFinite(n) ? n : undefined);

/** cache.remote, checked usable: an error naming the setting when it is not (asked for, unlike in a build). */
export function openRemote(cache: CacheSettings): Promise<RemoteCache> {
  return new BuildCache(cache, true).remote();
}

/** This project's entries in the local store and, when given, the remote. */
export async function projectEntries(root: string, storeDir: string, remote?: RemoteCache): Promise<ProjectEntries> {
  return new ProjectEntries(storeDir, await projectIds(root, join(root, "pipeline.lock")), remote);
}

export async function collectRuns(root: string, entries: ProjectEntries, currentParams: Json): Promise<Run[]> {
  const lock = await readLock(join(root, "pipeline.lock"), join(root, "cache"));
  const runs: Run[] = [];
  for (const { manifest, used, remoteOnly } of await entries.of(TRAINING)) {
    const metricsText = await entries.text(manifest, METRICS_FILE);
    const metrics = parseMetrics(metricsText ?? "");
    const memoryText = await entries.text(manifest, MEMORY_FILE);
    const memory = memoryText ? (JSON.parse(memoryText) as MemoryFile) : undefined;
    const train = metrics.train.filter((p) => Number.isFinite(p.tokensPerSecond));
    const evals = await entries.downstream(manifest, ["fused"], "eval");
    const evalRun = await newestEval(entries, evals);
    runs.push({
      id: manifest.fingerprint.slice(0, ID_LENGTH),
      fingerprint: manifest.fingerprint,
      ...(manifest.built ? { built: manifest.built } : {}),
      used,
      params: manifest.params ?? null,
      diff: paramsDiff(manifest.params, currentParams),
      current: lock[TRAINING]?.fingerprint === manifest.fingerprint,
      ...(remoteOnly ? { remoteOnly } : {}),
      ...defined("trainLoss", finite(last(metrics.train)?.loss)),
      ...defined("valLoss", finite(last(metrics.val)?.loss)),
      ...defined("tokensPerSecond", train.length > 0 ? train.reduce((a, p) => a + p.tokensPerSecond, 0) / train.length : undefined),
      ...defined("peakMemoryGB", finite(memory?.measuredPeakGB) ?? finite(Math.max(...metrics.train.map((p) => p.peakMemoryGB).filter(Number.isFinite)))),
      ...defined("seconds", manifest.seconds),
      ...defined("eval", evalRun),
      metrics,
    });
  }
  return runs;
}

async function newestEval(entries: ProjectEntries, evals: readonly ProjectEntry[]): Promise<RunEval | undefined> {
  const newest = [...evals].sort((a, b) => (b.manifest.built ?? "").localeCompare(a.manifest.built ?? "") || b.used - a.used)[0];
  const text = newest && (await entries.text(newest.manifest, EVAL_FILE));
  if (!text) return undefined;
  const e = JSON.parse(text) as EvalFile;
  return { examples: e.examples, fineTuned: e.fineTuned.exact, base: e.base.exact, gguf: e.gguf.exact, testLoss: e.fineTuned.loss };
}

function defined<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

export type RunSort = "when" | "loss" | "eval";

/** Newest first; lowest validation loss (else train loss) first; best eval score first. Runs without the number last. */
export function sortRuns(runs: readonly Run[], by: RunSort): Run[] {
  const key = (r: Run): number | undefined => {
    switch (by) {
      case "when":
        return -(r.built ? Date.parse(r.built) : r.used);
      case "loss":
        return r.valLoss ?? r.trainLoss;
      case "eval":
        return r.eval ? -r.eval.fineTuned / Math.max(1, r.eval.examples) : undefined;
      default: {
        const never: never = by;
        return never;
      }
    }
  };
  return [...runs].sort((a, b) => {
    const x = key(a);
    const y = key(b);
    return x === undefined ? (y === undefined ? 0 : 1) : y === undefined ? -1 : x - y;
  });
}

/** The run a user names by a prefix of its id; an error naming the choices when none or several match. */
export function findRun(runs: readonly Run[], prefix: string): Run {
  const hits = runs.filter((r) => r.fingerprint.startsWith(prefix.toLowerCase()));
  if (hits.length === 1) return hits[0]!;
  const known = runs.map((r) => r.id).join(", ") || "none";
  throw new UserError(hits.length === 0 ? `no run ${prefix} in this project's build cache (runs: ${known}).` : `${prefix} names ${hits.length} runs (${hits.map((r) => r.id).join(", ")}): give more of its id.`, 2);
}

/** `report --runs A,B`: those runs as the report overlays them, labelled with their id and the params that differ. */
export async function runsAsEarlier(root: string, entries: ProjectEntries, currentParams: Json, ids: readonly string[]): Promise<EarlierTraining[]> {
  const runs = await collectRuns(root, entries, currentParams);
  return ids.map((id) => {
    const r = findRun(runs, id);
    return { fingerprint: r.fingerprint, diff: r.diff, label: `${r.id}: ${r.current ? "pipeline.lock's training" : diffLabel(r.diff)}`, metrics: r.metrics, used: r.used, ...(r.eval ? { score: `${r.eval.fineTuned}/${r.eval.examples}` } : {}) };
  });
}
