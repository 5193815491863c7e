// `runs`, `runs show ID`, `runs diff A B`: the trainings this project's build cache holds, as a table (stdout).
import type { Json } from "../engine/types.ts";
import { UserError } from "../engine/types.ts";
import { settingArgs, type Setting } from "../engine/experiments/overrides.ts";
import { paramsDiff } from "../report/data.ts";
import { collectRuns, findRun, PARAMS_SECTION, sortRuns, TRAINING, type Run, type RunSort } from "./runs.ts";

export interface RunsArgs {
  readonly root: string;
  readonly storeDir: string;
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
  const runs = sortRuns(await collectRuns(a.root, a.storeDir, a.currentParams), sort);
  const [verb, ...ids] = a.rest;
  switch (verb) {
    case undefined: {
      if (a.json) print(JSON.stringify({ runs: runs.map(publicRun) }));
      else print(table(runs));
      return runs.length === 0 ? `no training of this project in the build cache ${a.storeDir} yet.` : "";
    }
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
      throw new UserError(`runs ${verb}: say \`runs\`, \`runs show ID\` or \`runs diff A B\`.`, 2);
  }
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
    ["params", run.diff.length === 0 ? "as pipeline.yaml" : run.diff.map((c) => `${c.key}=${show(c.then)}`).join(" ")],
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
  const rows = runs.map((r) => [`${r.id}${r.current ? "*" : ""}`, ...numbers(r).map(([, v]) => v)]);
  return columns([header, ...rows]) + (runs.some((r) => r.current) ? "\n* pipeline.lock's training" : "");
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
