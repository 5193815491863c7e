// What the run report shows, read from the project: pipeline.lock, the outputs under models/, the last
// build's timings (cache/last-build.json) and the build cache's earlier trainings of this project.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Json } from "../engine/types.ts";
import { readLock, type LockNodes } from "../engine/lockfile.ts";
import { LAST_BUILD_FILE, type BuildRecord } from "../engine/build-record.ts";
import { ProjectEntries, projectIds } from "../engine/experiments/entries.ts";
import { MEMORY_FILE, METRICS_FILE, parseMetrics, type MemoryFile, type Metrics } from "../stages/lib/data/training-metrics.ts";

/** models/gguf/gguf.json, the parts the page shows. */
export interface GgufFacts {
  readonly file: string;
  readonly bytes: number;
  readonly type: string;
  readonly header: Readonly<Record<string, Json>>;
  readonly special?: Readonly<Record<string, Json>>;
  readonly agreeOnFirst?: number;
}

/** models/eval/eval.json (stages/eval.ts). */
export interface EvalFile {
  readonly examples: number;
  readonly base: { readonly exact: number; readonly normalized: number; readonly loss: number; readonly ppl: number };
  readonly fineTuned: { readonly exact: number; readonly normalized: number; readonly loss: number; readonly ppl: number };
  readonly gguf: { readonly type: string; readonly exact: number; readonly agreesWithFused: number; readonly agreesWithF16?: number };
  /** With deploy.check: base GGUF + LoRA GGUF (llama.cpp) and llama-server, each against the GGUF's answers. */
  readonly deploy?: { readonly loraAgreesWithGguf: number; readonly serverAgreesWithGguf: number };
  readonly answers: readonly {
    readonly question: string;
    readonly reference: string;
    readonly base: string;
    readonly fineTuned: string;
    readonly gguf: string;
    readonly f16?: string;
    readonly lora?: string;
    readonly server?: string;
  }[];
}

/** An earlier training of this project still in the build cache, and how its params differ from the lock's. */
export interface EarlierTraining {
  readonly fingerprint: string;
  /** The params that differ from this build's (none when only other inputs did). */
  readonly diff: readonly ParamChange[];
  /** "rank 16 (now 8), iters 100 (now 60)" */
  readonly label: string;
  readonly metrics: Metrics;
  /** Last use of the cache entry (ms since the epoch). */
  readonly used: number;
  /** Its eval's exact answers ("28/40"), for runs picked with `report --runs`. */
  readonly score?: string;
}

export interface ParamChange {
  readonly key: string;
  readonly then: Json | undefined;
  readonly now: Json | undefined;
}

export interface ReportData {
  readonly root: string;
  readonly lock: LockNodes;
  readonly metrics?: Metrics;
  readonly memory?: MemoryFile;
  readonly gguf?: GgufFacts;
  readonly eval?: EvalFile;
  readonly lastBuild?: BuildRecord;
  readonly earlier: readonly EarlierTraining[];
}

/** The most earlier trainings overlaid: more lines than this no longer read as a comparison. */
const MAX_EARLIER = 6;

async function readJsonIf<T>(path: string): Promise<T | undefined> {
  if (!existsSync(path)) return undefined;
  return JSON.parse(await readFile(path, "utf8")) as T;
}

/** Leaf keys of nested params as dotted paths ("lora_parameters.rank"), for a readable diff. */
function flatten(value: Json | undefined, prefix = "", out: Record<string, Json> = {}): Record<string, Json> {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v as Json, prefix ? `${prefix}.${k}` : k, out);
  } else if (value !== undefined && prefix) {
    out[prefix] = value;
  }
  return out;
}

export function paramsDiff(then: Json | undefined, now: Json | undefined): ParamChange[] {
  const a = flatten(then);
  const b = flatten(now);
  return [...new Set([...Object.keys(a), ...Object.keys(b)])]
    .sort()
    .filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]))
    .map((key) => ({ key, then: a[key], now: b[key] }));
}

const show = (v: Json | undefined) => (v === undefined ? "unset" : typeof v === "string" ? v : JSON.stringify(v));

export function diffLabel(diff: readonly ParamChange[]): string {
  return diff.length === 0 ? "same params (data or code differed)" : diff.map((c) => `${c.key} ${show(c.then)} (now ${show(c.now)})`).join(", ");
}

/**
 * The adapters entries of the local store built by this project (manifests name their project since the report
 * exists, by pipeline.lock's id or before it by a digest of the folder; older ones and other projects' are left out),
 * newest first, the current one excluded.
 */
async function earlierTrainings(storeDir: string, root: string, lock: LockNodes): Promise<EarlierTraining[]> {
  const entries = new ProjectEntries(storeDir, await projectIds(root, join(root, "pipeline.lock")));
  const current = lock.adapters;
  const found: EarlierTraining[] = [];
  for (const { manifest, used } of await entries.of("adapters")) {
    if (manifest.fingerprint === current?.fingerprint) continue;
    // A record since the adapters node declares it one; in its files in entries made before.
    const text = await entries.text(manifest, METRICS_FILE);
    if (text === undefined) continue; // none, or its blob was collected
    const diff = paramsDiff(manifest.params, current?.params);
    found.push({ fingerprint: manifest.fingerprint, diff, label: diffLabel(diff), metrics: parseMetrics(text), used });
    if (found.length === MAX_EARLIER) break; // entries come newest first
  }
  return found;
}

/** `earlier`: the trainings to overlay (`report --runs`); by default this project's latest in the build cache. */
export async function collectReport(root: string, storeDir: string | undefined, earlier?: readonly EarlierTraining[]): Promise<ReportData> {
  const models = join(root, "models");
  const lock = await readLock(join(root, "pipeline.lock"), join(root, "cache"));
  const metricsPath = join(models, "adapters", METRICS_FILE);
  const gguf = await readJsonIf<GgufFacts>(join(models, "gguf", "gguf.json"));
  return {
    root,
    lock,
    ...(existsSync(metricsPath) ? { metrics: parseMetrics(await readFile(metricsPath, "utf8")) } : {}),
    ...optional("memory", await readJsonIf<MemoryFile>(join(models, "adapters", MEMORY_FILE))),
    ...optional("gguf", gguf),
    ...optional("eval", await readJsonIf<EvalFile>(join(models, "eval", "eval.json"))),
    ...optional("lastBuild", await readJsonIf<BuildRecord>(join(root, "cache", LAST_BUILD_FILE))),
    earlier: earlier ?? (storeDir ? await earlierTrainings(storeDir, root, lock) : []),
  };
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}
