// Running a training script on every rank with mlx.launch: inputs copied first, a watchdog on the metrics
// lines, and no rank left behind on any host whatever way the run ends.
import { join } from "node:path";
import type { RunCtx } from "../../../engine/types.ts";
import { UserError } from "../../../engine/types.ts";
import { failedRanks, isLocal, launchCommand, pidDir, remoteHosts, stopStrayRanks, syncToHosts, tailOf, type Cluster } from "./cluster.ts";
import { PY_ENV } from "../toolchain/tools.ts";
import { threadEnv } from "../toolchain/threads.mjs";
import { readToolchain } from "../toolchain/venv.ts";

export interface DistributedRun {
  /** stages/py/mlx_launch.py, declared as an input by the node that runs it. */
  readonly launcher: string;
  /** The script and its arguments, run by the environment's Python on every rank. */
  readonly args: readonly string[];
  /** Folders and files every rank reads, copied to the other hosts at the same paths. */
  readonly folders: readonly string[];
  readonly files: readonly string[];
  /** The prefix of the script's metrics lines (JSON with "rank" and "iteration" after it). */
  readonly metricsPrefix: string;
  readonly onLine: (line: string) => void;
  /** Iterations done before this run (a resumed build), for messages. */
  readonly offset: number;
}

/** Where the ranks are, for messages: "rank 1 (mac2)". */
function who(cluster: Cluster, rank: number): string {
  return `rank ${rank} (${rank === 0 ? "this machine" : (cluster.ranks[rank]?.ssh ?? "?")})`;
}

/** "rank 1 exited with code 255" → "rank 1 (mac2) exited with code 255 (...)": ssh's 255 hides how the rank ended. */
function explain(cluster: Cluster, failure: string): string {
  const [, rank = "0", how = ""] = /^rank (\d+) (.*)$/.exec(failure) ?? [];
  const r = cluster.ranks[Number(rank)];
  const note = r && !isLocal(r) && how.endsWith("code 255") ? " (its ssh session ended: the rank was killed or the connection dropped)" : how.endsWith("code -15") ? " (stopped by mlx.launch)" : "";
  return `${who(cluster, Number(rank))} ${how}${note}`;
}

export async function runDistributed<C>(ctx: RunCtx<C>, cluster: Cluster, run: DistributedRun): Promise<void> {
  const info = await readToolchain(ctx.upstream("mlx-env"));
  const script = run.args[0] ?? "";
  // Ranks of an interrupted build that a host kept running (it never saw the hangup) would hold the ports.
  const leftover = await stopStrayRanks(cluster, ctx.scratch, script);
  if (leftover.length > 0) ctx.note(`stopped ${leftover.join(", ")} left running by an interrupted build`);
  await syncToHosts(ctx, cluster, join(ctx.scratch, "bin"), run.folders, run.files);

  // The newest iteration each rank reported: every rank reports at the same steps (the loss is all-summed).
  const heard = new Map<number, number>();
  const failures: string[] = [];
  const watchdog = new AbortController();
  const limit = cluster.watchdogSeconds;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => watchdog.abort(), limit * 1000);
  };
  const onLine = (line: string) => {
    const at = line.indexOf(run.metricsPrefix);
    if (at >= 0) {
      try {
        const report = JSON.parse(line.slice(at + run.metricsPrefix.length)) as { rank?: number; iteration: number };
        heard.set(report.rank ?? 0, run.offset + report.iteration);
        arm();
      } catch {
        // A mangled line is one missed heartbeat, not a failure.
      }
    }
    failures.push(...failedRanks([line]));
    run.onLine(line);
  };

  // Every rank's pools are sized by this machine's cores: the others are not asked.
  const rankEnv = Object.fromEntries(Object.entries({ ...PY_ENV, ...threadEnv(), MLX_PIPELINE_PIDS: pidDir(ctx.scratch) }).filter((e): e is [string, string] => e[1] !== undefined));
  const launch = await launchCommand(cluster, info, ctx.scratch, rankEnv, run.launcher, run.args);
  const world = cluster.ranks.length;
  ctx.progress(`starting ${world} processes (${cluster.backend}${remoteHosts(cluster).size > 0 ? `, hosts ${[...remoteHosts(cluster).keys()].join(", ")}` : ""})`);
  arm();
  let result;
  try {
    result = await ctx.exec(launch.command, launch.args, { env: { ...PY_ENV, ...launch.env }, onLine, signal: watchdog.signal });
  } finally {
    clearTimeout(timer);
  }
  // mlx.launch stops the other ranks when one fails, but not when it is itself killed (the watchdog): make sure.
  const stray = await stopStrayRanks(cluster, ctx.scratch, script);
  const strayNote = stray.length > 0 ? ` (stopped ${stray.join(", ")} that outlived the launcher)` : "";
  const resume = "The next build resumes from the last checkpoint.";

  if (watchdog.signal.aborted) {
    const last = Math.max(run.offset, ...heard.values());
    const ranks = cluster.ranks.map((r) => `${who(cluster, r.rank)} ${heard.has(r.rank) ? `at iteration ${heard.get(r.rank)}` : "never"}`).join(", ");
    throw new UserError(
      `training hung: no metrics line for ${limit} s (distributed.watchdog) after iteration ${last}; every rank was stopped${strayNote}. ` +
        `Last heard: ${ranks}. A rank that stops answering blocks the others in all_sum (a stalled host or network, or mlx #4475 / #3862). ` +
        `${resume} Raise distributed.watchdog if loading the model or lora.steps_per_report iterations take longer. Last lines of ${result.logPath}:\n${tailOf(result)}`,
    );
  }
  if (failures.length > 0 || result.exitCode !== 0) {
    const what = failures.length > 0 ? failures.map((f) => explain(cluster, f)).join(", ") : `mlx.launch exited with ${result.exitCode ?? result.signal}`;
    throw new UserError(`training across ${world} processes failed: ${what}; the other ranks were stopped${strayNote}. ${resume} Last lines of ${result.logPath}:\n${tailOf(result)}`);
  }
}
