// `runs`, `runs show ID`, `runs diff A B`: the trainings this project's build cache holds, as a table (stdout);
// with --remote, the remote's too. `runs push [ID ...]`: runs shared through the remote.
import type { Json } from "../engine/types.ts";
import { UserError } from "../engine/types.ts";
import type { CacheSettings, RemoteCache } from "../engine/caching/cache.ts";
import type { ProjectEntries } from "../engine/experiments/entries.ts";
import { settingArgs, type Setting } from "../engine/experiments/overrides.ts";
import { shareEntry } from "../engine/experiments/share.ts";
import { paramsDiff } from "../report/data.ts";
import { STAGES } from "../stages/index.ts";
import { collectRuns, findRun, openRemote, PARAMS_SECTION, projectEntries, sortRuns, TRAINING, type Run, type RunSort } from "./runs.ts";

export interface RunsArgs {
  readonly root: string;
  /** The project's build cache: its local store, and the remote `--remote` and `runs push` use. */
  readonly cache: CacheSettings;
  /** --remote: list the runs only the remote holds too. */
  readonly withRemote: boolean;
  /** The current config's training params (`lora:`, defaults applied). */
  readonly currentParams: Json;
  readonly rest: readonly string[];
  readonly json: boolean;
  readonly sort?: string;
  /** How the CLI is started, for the commands printed: `npx tsx pipeline.ts`. */
  readonly cli: string;
}

const SORTS: readonly RunSort[] = ["when", "loss", "eval"];

export async function runsCommand(a: RunsArgs): Promise<string> {
  const sort = (a.sort ?? "when") as RunSort;
  if (!SORTS.includes(sort)) throw new UserError(`--sort ${a.sort}: sort by one of ${SORTS.join(", ")}.`, 2);
  const [verb, ...ids] = a.rest;
  // The remote is opened (and must be usable) only when asked for: listing it, or pushing to it.
  const remote = a.withRemote || verb === "push" ? await openRemoteFor(a.cache, verb === "push") : undefined;
  const entries = await projectEntries(a.root, a.cache.dir, a.withRemote ? remote : undefined);
  const runs = sortRuns(await collectRuns(a.root, entries, a.currentParams), sort);
  for (const refused of entries.refused) process.stderr.write(`warning: ${refused}\n`);
  switch (verb) {
    case undefined: {
      if (a.json) print(JSON.stringify({ runs: runs.map(publicRun) }));
      else print(table(runs));
      const where = a.withRemote ? `the build cache ${a.cache.dir} or ${a.cache.remote!.url}` : `the build cache ${a.cache.dir}`;
      return runs.length === 0 ? `no training of this project in ${where} yet.` : "";
    }
    case "push":
      return pushRuns(runs, ids, entries, remote!, a.json);
    case "show": {
      if (ids.length !== 1) throw new UserError("runs show ID: name one run (its id from `runs`).", 2);
      const run = findRun(runs, ids[0]!);
      const command = restoreCommand(a.cli, run);
      if (a.json) print(JSON.stringify({ run: publicRun(run), command }));
      else print([`run ${run.id}${run.current ? " (pipeline.lock's)" : ""}`, ...numbers(run).map(([k, v]) => `  ${k.padEnd(16)} ${v}`), `restore it: ${command}`].join("\n"));
      return run.diff.length === 0 && !run.current ? "its params are the current ones: its data or code differed, so -S alone does not bring it back." : "";
    }
    case "diff": {
      if (ids.length !== 2) throw new UserError("runs diff A B: name two runs (their ids from `runs`).", 2);
      const [x, y] = [findRun(runs, ids[0]!), findRun(runs, ids[1]!)];
      const params = paramsDiff(x.params, y.params);
      if (a.json) print(JSON.stringify({ a: publicRun(x), b: publicRun(y), params }));
      else {
        const rows = [["", x.id, y.id], ...params.map((c) => [`${PARAMS_SECTION}.${c.key}`, show(c.then), show(c.now)])];
        const nx = numbers(x);
        const ny = new Map(numbers(y));
        rows.push(...nx.map(([k, v]) => [k, v, ny.get(k) ?? "-"]));
        print(columns(rows));
      }
      return "";
    }
    default:
      throw new UserError(`runs ${verb}: say \`runs\`, \`runs show ID\`, \`runs diff A B\` or \`runs push [ID ...]\`.`, 2);
  }
}

async function openRemoteFor(cache: CacheSettings, push: boolean): Promise<RemoteCache> {
  if (push && cache.remote && !cache.remote.push) {
    throw new UserError("cache.push is false: this clone reads the remote cache but does not write it. Push runs from a machine that may, or set cache.push: true.", 2);
  }
  return openRemote(cache);
}

/**
 * Uploads each run's entries, its training and every local entry built from it (fused, eval, ...), so a clone
 * lists it with `runs --remote` and restores it, eval scores included, with its -S. Without ids: every local run.
 */
async function pushRuns(runs: readonly Run[], ids: readonly string[], entries: ProjectEntries, remote: RemoteCache, json: boolean): Promise<string> {
  const chosen = ids.length > 0 ? ids.map((id) => findRun(runs, id)) : runs;
  const trainings = await entries.of(TRAINING);
  const order = STAGES.map((s) => s.id);
  const results: Record<string, Record<string, string>> = {};
  let failed = 0;
  for (const run of chosen) {
    const done: Record<string, string> = (results[run.id] = {});
    if (run.remoteOnly) {
      done[TRAINING] = "already on the remote (not in the local store)";
      continue;
    }
    const manifest = trainings.find((e) => e.manifest.fingerprint === run.fingerprint)!.manifest;
    for (const m of await entries.builtFrom(manifest, order)) {
      done[m.node] = await shareEntry(remote, entries.store, m).catch((e: unknown) => {
        if (e instanceof UserError && e.exitCode === 2) throw e;
        failed++;
        return `FAILED: ${(e as Error).message}`;
      });
    }
  }
  if (json) print(JSON.stringify({ ok: failed === 0, remote: remote.name, runs: results }));
  else print(Object.entries(results).map(([id, r]) => `${id}: ${Object.entries(r).map(([node, what]) => `${node} ${what}`).join("; ")}`).join("\n"));
  if (failed > 0) throw new UserError(`runs push: ${failed} ${failed === 1 ? "entry" : "entries"} failed to upload (above); run it again once ${remote.name} can be written.`, 1);
  return chosen.length === 0 ? "no training of this project in the local build cache to push." : "";
}

function print(text: string): void {
  process.stdout.write(text + "\n");
}

/** The -S arguments that give this run's params, and the build that restores it from the cache. */
export function restoreCommand(cli: string, run: Run): string {
  const setting: Setting = run.diff.map((c) => ({ arg: "", path: [PARAMS_SECTION, ...c.key.split(".")], value: c.then ?? null }));
  return [cli, TRAINING, ...settingArgs(setting)].join(" ");
}

const show = (v: Json | undefined) => (v === undefined ? "unset" : typeof v === "string" ? v : JSON.stringify(v));
const fixed = (n: number | undefined, digits: number) => (n === undefined ? "-" : n.toFixed(digits));

function when(run: Run): string {
  const iso = run.built ?? new Date(run.used).toISOString();
  return iso.slice(0, 16).replace("T", " ");
}

function evalText(run: Run): string {
  return run.eval ? `${run.eval.fineTuned}/${run.eval.examples}` : "-";
}

function wall(seconds: number | undefined): string {
  if (seconds === undefined) return "-";
  return seconds < 120 ? `${seconds.toFixed(1)} s` : `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

function numbers(run: Run): [string, string][] {
  return [
    ["when", when(run)],
    // The same params but not the lock's training: its data or the tool's code differed.
    ["params", run.diff.length > 0 ? run.diff.map((c) => `${c.key}=${show(c.then)}`).join(" ") : run.current ? "as pipeline.yaml" : "as pipeline.yaml, other data or code"],
    ["train loss", fixed(run.trainLoss, 4)],
    ["val loss", fixed(run.valLoss, 4)],
    ["eval exact", evalText(run)],
    ["tokens/s", fixed(run.tokensPerSecond, 0)],
    ["peak memory GB", fixed(run.peakMemoryGB, 3)],
    ["wall time", wall(run.seconds)],
  ];
}

function table(runs: readonly Run[]): string {
  const header = ["run", "when", "params (vs pipeline.yaml)", "train loss", "val loss", "eval exact", "tokens/s", "peak GB", "wall"];
  const rows = runs.map((r) => [`${r.id}${r.current ? "*" : ""}${r.remoteOnly ? "†" : ""}`, ...numbers(r).map(([, v]) => v)]);
  const notes = [
    ...(runs.some((r) => r.current) ? ["* pipeline.lock's training"] : []),
    ...(runs.some((r) => r.remoteOnly) ? ["† only on the remote: its -S build restores it from there"] : []),
  ];
  return [columns([header, ...rows]), ...notes].join("\n");
}

function columns(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n");
}

/** A run as --json gives it: without the per-report metrics (the report draws those). */
function publicRun(run: Run): Omit<Run, "metrics"> {
  const { metrics: _metrics, ...rest } = run;
  return rest;
}
