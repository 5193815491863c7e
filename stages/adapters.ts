// Node adapters: LoRA training with `mlx_lm lora`, metrics read through its training-callback hook,
// resumed from the newest checkpoint when a build of the same fingerprint was interrupted.
import { existsSync } from "node:fs";
import { appendFile, copyFile, mkdir, readdir, readFile, realpath, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { PipelineConfig } from "../config/schema.ts";
import type { BaseCtx, Json, NodeSpec, RunCtx, Verdict } from "../engine/types.ts";
import type { ClusterFacts } from "../guard/distributed.ts";
import type { Failed, TrainedModel, TrainingFacts, TrainingJudgement } from "../guard/training.ts";
import { STATS, type FormatStats } from "./formatted.ts";
import { UserError } from "../engine/types.ts";
import { modelDir } from "./lib/model/model-ref.ts";
import { MLX_CONDITIONS, mlxConditions, pyScript, runPython, toolVersions } from "./lib/toolchain/tools.ts";
import { readToolchain } from "./lib/toolchain/venv.ts";
import type { Cluster } from "./lib/distributed/cluster.ts";
import { MEMORY_FILE, METRICS_FILE, type MemoryFile, type Report, type TrainReport, type ValReport } from "./lib/data/training-metrics.ts";

// What only the guard and the run use is imported there: a no-op build loads this module for its inputs alone.
const SHIM = pyScript("lora_train.py");
/** mlx.launch, for `distributed:`. */
const LAUNCHER = pyScript("mlx_launch.py");
const METRICS_PREFIX = "@@metrics ";

/** The longest formatted example in tokens, once the formatted node has counted them. */
async function longestExample(ctx: BaseCtx<PipelineConfig>): Promise<number | undefined> {
  if (!ctx.isBuilt("formatted")) return undefined;
  const stats = JSON.parse(await readFile(join(ctx.upstream("formatted"), STATS), "utf8")) as FormatStats;
  return stats.tokens.max;
}

/** The machines of `distributed:` (hosts are read from a hostfile when one is named), or undefined for one process. */
async function clusterOf(ctx: BaseCtx<PipelineConfig>): Promise<Cluster | undefined> {
  if (!ctx.config.distributed) return undefined;
  const { resolveCluster } = await import("./lib/distributed/cluster.ts");
  return resolveCluster(ctx.config.distributed, ctx.root);
}

/**
 * The base model as the guard reads it, or undefined before it is built. A config.json the guard cannot read,
 * or hosts that cannot be read, fail it: their message says what is wrong and what to use instead.
 */
async function trainedModel(ctx: BaseCtx<PipelineConfig>): Promise<TrainedModel | Failed | undefined> {
  try {
    const [{ guardModelDir }, { readModelFacts }] = await Promise.all([import("./lib/model/model-ref.ts"), import("../guard/verdicts.ts")]);
    const dir = await guardModelDir(ctx);
    if (!dir) return undefined;
    const facts = await readModelFacts(dir);
    const world = (await clusterOf(ctx))?.ranks.length ?? 1;
    const longest = await longestExample(ctx);
    return { facts, world, ...(longest !== undefined ? { longestExample: longest } : {}) };
  } catch (e) {
    if (e instanceof UserError) return { failed: e.message };
    throw e;
  }
}

/** Every host of a distributed run as the probe finds it, or undefined for one process. */
async function clusterFacts(ctx: BaseCtx<PipelineConfig>): Promise<ClusterFacts | Failed | undefined> {
  let cluster: Cluster | undefined;
  try {
    cluster = await clusterOf(ctx);
  } catch (e) {
    if (e instanceof UserError) return { failed: e.message };
    throw e;
  }
  if (!cluster) return undefined;
  const { probeCluster } = await import("./lib/distributed/probe.ts");
  return probeCluster(cluster, ctx.isBuilt("mlx-env") ? await readToolchain(ctx.upstream("mlx-env")) : undefined);
}

/** What the guard judges: the config and the base model, and with `probes` mlx-lm's and the other hosts' answers. */
async function trainingFacts(ctx: BaseCtx<PipelineConfig>, probes: boolean): Promise<TrainingFacts> {
  const model = await trainedModel(ctx);
  if (!probes) return { config: ctx.config, ...(model ? { model } : {}) };
  const { askMlxLm } = await import("./lib/model/arch-probe.ts");
  const [arch, cluster] = await Promise.all([model && !("failed" in model) ? askMlxLm(ctx, model.facts) : undefined, clusterFacts(ctx)]);
  return { config: ctx.config, ...(model ? { model } : {}), ...(arch ? { arch } : {}), ...(cluster ? { cluster } : {}) };
}

/** The memory estimate for this config on the planned machine (one rank's share of the batch), when the model can be read. */
export async function memoryFor(ctx: BaseCtx<PipelineConfig>): Promise<TrainingJudgement["memory"]> {
  const { judgeTraining } = await import("../guard/training.ts");
  return judgeTraining(await trainingFacts(ctx, false)).memory;
}

async function adaptersGuard(ctx: BaseCtx<PipelineConfig>): Promise<Verdict[]> {
  const { judgeTraining } = await import("../guard/training.ts");
  return judgeTraining(await trainingFacts(ctx, true)).verdicts;
}

/** The mlx-lm YAML config, without the paths (those are covered by the upstream digests). */
function loraConfig(config: PipelineConfig): Record<string, Json> {
  const l = config.lora;
  return {
    train: true,
    test: false,
    fine_tune_type: l.fine_tune_type,
    optimizer: "adam",
    mask_prompt: l.mask_prompt,
    num_layers: l.num_layers,
    batch_size: l.batch_size,
    iters: l.iters,
    val_batches: l.val_batches,
    learning_rate: l.learning_rate,
    steps_per_report: l.steps_per_report,
    steps_per_eval: l.steps_per_eval,
    save_every: l.save_every,
    max_seq_length: l.max_seq_length,
    grad_checkpoint: l.grad_checkpoint,
    seed: l.seed,
    lora_parameters: { rank: l.rank, scale: l.scale, dropout: l.dropout, ...(l.keys ? { keys: l.keys } : {}) },
  };
}

function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** Where an interrupted run of this fingerprint got to: the newest checkpoint and how many iterations it holds. */
async function findResumePoint(runDir: string, offset: number): Promise<{ file: string; done: number } | undefined> {
  const names = existsSync(runDir) ? await readdir(runDir) : [];
  const steps = names.map((n) => /^(\d{7})_adapters\.safetensors$/.exec(n)?.[1]).filter((s): s is string => !!s).map(Number);
  if (steps.length === 0) return undefined;
  const newest = Math.max(...steps);
  return { file: join(runDir, `${String(newest).padStart(7, "0")}_adapters.safetensors`), done: offset + newest };
}

/** The iteration of a metrics.jsonl line; a line torn by a kill counts as past any checkpoint. */
function iterationOf(line: string): number {
  try {
    return (JSON.parse(line) as Report).iteration;
  } catch {
    return Infinity;
  }
}

async function train(ctx: RunCtx<PipelineConfig>): Promise<{ lastTrain?: TrainReport; lastVal?: ValReport; resumedFrom: number }> {
  const total = ctx.config.lora.iters;
  const runDir = join(ctx.scratch, "run");
  const progressFile = join(ctx.scratch, "progress.json");
  const metricsFile = join(ctx.scratch, METRICS_FILE);
  const offset = existsSync(progressFile) ? (JSON.parse(await readFile(progressFile, "utf8")) as { offset: number }).offset : 0;

  // A checkpoint from an interrupted build of this same fingerprint: continue from it. A resumed build
  // stopped before its own first checkpoint leaves none in runDir: it resumes from where that one did.
  const checkpoint = await findResumePoint(runDir, offset);
  const previous = join(ctx.scratch, `resume-${offset}.safetensors`);
  let start = 0;
  let resumeFile: string | undefined;
  if (checkpoint) {
    start = checkpoint.done;
    resumeFile = join(ctx.scratch, `resume-${start}.safetensors`);
    await copyFile(checkpoint.file, resumeFile);
  } else if (offset > 0 && existsSync(previous)) {
    start = offset;
    resumeFile = previous;
  }
  if (resumeFile) ctx.note(`resuming from the checkpoint at iteration ${start} of ${total} (an earlier build was interrupted)`);
  // Reports the stopped run made after its checkpoint are made again by this one.
  const earlier = existsSync(metricsFile) ? (await readFile(metricsFile, "utf8")).split("\n") : [];
  await writeFile(metricsFile, earlier.filter((l) => iterationOf(l) <= start).map((l) => l + "\n").join(""));
  await rm(runDir, { recursive: true, force: true });
  await mkdir(runDir, { recursive: true });
  await writeFile(progressFile, JSON.stringify({ offset: start }));
  if (start >= total) {
    await copyFile(resumeFile!, join(runDir, "adapters.safetensors"));
    return { resumedFrom: start };
  }

  // Real paths: a distributed run copies them to the other hosts, where the models/ links do not exist.
  const model = await realpath(await modelDir(ctx.upstream("model"), ctx.root));
  const data = await realpath(ctx.upstream("formatted"));
  const yaml = {
    ...loraConfig(ctx.config),
    iters: total - start,
    model,
    data,
    adapter_path: runDir,
    ...(resumeFile ? { resume_adapter_file: resumeFile } : {}),
  };
  const configPath = join(ctx.scratch, "lora.yaml");
  await writeFile(configPath, (await import("yaml")).stringify(yaml));

  let lastTrain: TrainReport | undefined;
  let lastVal: ValReport | undefined;
  const started = performance.now();
  const pending: Promise<void>[] = [];
  const cluster = await clusterOf(ctx);
  const world = cluster ? ` over ${cluster.ranks.length} processes` : "";
  const onLine = (line: string) => {
    // Anywhere in the line: another write on the same stream may have left a partial line before it.
    const at = line.indexOf(METRICS_PREFIX);
    if (at < 0) return;
    let report: Report;
    try {
      report = JSON.parse(line.slice(at + METRICS_PREFIX.length)) as Report;
    } catch {
      return; // a mangled line costs one progress update, never the build
    }
    // Every rank reports the same all-summed figures; rank 0's are the record (the others feed the watchdog).
    const { rank = 0, ...fields } = report;
    if (rank !== 0) return;
    report = fields as Report;
    report.iteration += start;
    pending.push(appendFile(metricsFile, JSON.stringify(report) + "\n"));
    if (report.type === "val") {
      lastVal = report;
      return;
    }
    lastTrain = report;
    const elapsed = (performance.now() - started) / 1000;
    const rate = (report.iteration - start) / elapsed;
    const loss = report.train_loss === null ? "nan" : report.train_loss.toFixed(3);
    ctx.progress(
      `iter ${report.iteration}/${total} · loss ${loss} · ${Math.round(report.tokens_per_second)} tok/s${world} · ` +
        `peak ${report.peak_memory.toFixed(2)} GB · ETA ${clock((total - report.iteration) / rate)}`,
    );
  };
  ctx.progress(`training ${total - start} iterations`);
  if (cluster) {
    const { runDistributed } = await import("./lib/distributed/run.ts");
    const files = [SHIM, configPath, ...(resumeFile ? [resumeFile] : [])];
    await runDistributed(ctx, cluster, { launcher: LAUNCHER, args: [SHIM, "-c", configPath], folders: [model, data], files, metricsPrefix: METRICS_PREFIX, onLine, offset: start });
  } else {
    await runPython(ctx, "mlx-env", [SHIM, "-c", configPath], "mlx_lm lora", { onLine });
  }
  await Promise.all(pending);
  return { lastTrain, lastVal, resumedFrom: start };
}

export const adaptersNode: NodeSpec<PipelineConfig> = {
  id: "adapters",
  deps: ["formatted", "model", "mlx-env"],
  description: "LoRA adapters (mlx_lm lora)",
  // Tokens/s, free memory and the measured peak vary from run to run: identical weights must still cut off.
  records: [METRICS_FILE, MEMORY_FILE],
  conditions: MLX_CONDITIONS,
  inputs: async (ctx) => ({
    // The launcher too, though one process does not run it: where the ranks run is not part of the fingerprint.
    files: [SHIM, LAUNCHER],
    params: ctx.config.lora as unknown as Json,
    tools: await toolVersions(ctx.upstream("mlx-env"), ["mlx", "mlx_lm"]),
    command: ["lora_train.py -c lora.yaml", loraConfig(ctx.config)],
  }),
  guard: adaptersGuard,
  async run(ctx) {
    const [{ parseMetrics }, { sparkline }] = await Promise.all([import("./lib/data/training-metrics.ts"), import("./lib/data/sparkline.ts")]);
    const estimate = await memoryFor(ctx).catch(() => undefined);
    const { lastTrain, lastVal, resumedFrom } = await train(ctx);
    const runDir = join(ctx.scratch, "run");
    const adapters = join(runDir, "adapters.safetensors");
    // adapter_config.json is written before training starts: only adapters.safetensors proves success.
    if (!existsSync(adapters)) throw new UserError(`mlx_lm lora finished without writing ${adapters}; see cache/logs/adapters.log.`);
    await copyFile(adapters, join(ctx.staging, "adapters.safetensors"));
    // mlx-lm records absolute paths (the staging and scratch folders); keep the file the same across builds.
    const adapterConfigPath = join(runDir, "adapter_config.json");
    const adapterConfig = existsSync(adapterConfigPath) ? (JSON.parse(await readFile(adapterConfigPath, "utf8")) as Record<string, unknown>) : {};
    for (const key of ["model", "data", "adapter_path", "resume_adapter_file", "config"]) delete adapterConfig[key];
    await writeFile(join(ctx.staging, "adapter_config.json"), JSON.stringify({ ...adapterConfig, iters: ctx.config.lora.iters }, null, 2) + "\n");
    const metrics = join(ctx.scratch, METRICS_FILE);
    if (existsSync(metrics)) await copyFile(metrics, join(ctx.staging, METRICS_FILE));
    const peakGB = lastTrain ? Number(lastTrain.peak_memory.toFixed(3)) : null;
    // The estimate beside what mlx-lm measured, so the memory model can be checked against real runs.
    const estimatedGB = estimate ? Number((estimate.estimate.peakBytes / 1e9).toFixed(3)) : null;
    const facts: Record<string, Json> = {};
    if (lastTrain?.train_loss != null) facts.final_train_loss = Number(lastTrain.train_loss.toFixed(4));
    if (lastVal?.val_loss != null) facts.final_val_loss = Number(lastVal.val_loss.toFixed(4));
    if (peakGB !== null) facts.peak_memory_gb = peakGB;
    if (resumedFrom > 0) facts.resumed_from_iteration = resumedFrom;
    if (ctx.config.distributed) facts.world_size = (await clusterOf(ctx))?.ranks.length ?? 1;
    if (estimatedGB !== null) facts.estimated_peak_gb = estimatedGB;
    Object.assign(facts, await mlxConditions(ctx));
    ctx.record(facts);
    // usableGB: the machine's limit the guard planned against, for the report's memory chart.
    const memory: MemoryFile = {
      measuredPeakGB: peakGB,
      estimatedPeakGB: estimatedGB,
      usableGB: estimate ? Number((estimate.machine.usableBytes / 1e9).toFixed(3)) : null,
      breakdown: estimate?.estimate.breakdown ?? null,
    };
    await writeFile(join(ctx.staging, MEMORY_FILE), JSON.stringify(memory, null, 2) + "\n");
    const losses = existsSync(metrics) ? parseMetrics(await readFile(metrics, "utf8")).train.map((p) => p.loss) : [];
    ctx.note(
      `train loss ${sparkline(losses)} final ${facts.final_train_loss ?? "?"}, validation loss ${facts.final_val_loss ?? "?"}; ` +
        `peak memory ${peakGB ?? "?"} GB measured, ${estimatedGB ?? "?"} GB estimated`,
    );
  },
};
