// Calibrates guard/memory.ts against real `mlx_lm lora` runs at real scale: random-weight models
// built from real configs (guard/calibration/make_random_model.py, 4-bit via mlx_lm convert),
// two or three LoRA iterations each on this machine, mlx's reported peak vs the estimate.
//
//   npx tsx bench/calibrate-memory.ts [--models DIR,DIR] [--plans 128x4,256x8] [--iters 2]
//                                    [--val-batches 1] [--timeout-min 15] [--reuse-logs] [--table-only]
//   --reuse-logs  parse a finished run's log in /tmp/calib/logs instead of training again
//
// Every finished run is merged into guard/calibration/results.json (keyed by model and plan), so
// the sweep can be done in pieces; guard/calibration/TABLE.md is re-rendered from all results.
import { spawn, execFileSync } from "node:child_process";
import { createWriteStream, existsSync, readdirSync, readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { homedir, cpus, totalmem } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { estimateTrainingMemory, type TrainingPlan } from "../guard/memory.ts";
import { readModelFacts } from "../guard/verdicts.ts";
import { openblasEnv } from "../stages/lib/toolchain/openblas.ts";

// The measuring harness drives mlx (a tool), so it lives here; the scripts it runs and its results stay with the guard.
const HERE = join(dirname(fileURLToPath(import.meta.url)), "..", "guard", "calibration");
const RESULTS = join(HERE, "results.json");
const TABLE = join(HERE, "TABLE.md");
const WORK = process.env.CALIB_DIR ?? "/tmp/calib";
const DEFAULT_MODELS = ["qwen2.5-1.5b-4bit", "qwen2.5-1.5b", "llama3.2-3b-4bit", "llama3.2-3b"].map((m) => join(WORK, m));

interface Result {
  readonly model: string;
  readonly modelType: string;
  readonly dtype: string;
  readonly layers: number;
  readonly seq: number;
  readonly trainedLayers: number;
  readonly rank: number;
  readonly batch: number;
  readonly iters: number;
  /** Validation batches before the first step (0 skips the forward pass; its peak is below training's anyway). */
  readonly valBatches: number;
  readonly weightBytes: number;
  readonly estimate: { peak: number; weights: number; lora: number; loraGradients: number; optimizer: number; activations: number; logits: number; overhead: number };
  /** Largest peak_memory the training callback reported (GB of 1e9 bytes, as mlx-lm prints it). */
  readonly reportedPeakGB: number;
  /** mx.get_peak_memory() at process exit, bytes. */
  readonly mlxPeak: number;
  /** Max resident set size of the process, bytes. */
  readonly maxRss: number;
  readonly secondsPerIter: number | null;
  readonly wallSeconds: number;
  readonly date: string;
  /** The run.ts invocation that trained it. */
  readonly command?: string;
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function venv(): string {
  if (process.env.CALIB_VENV) return process.env.CALIB_VENV;
  const root = join(homedir(), ".cache/mlx-lora-pipeline/venvs");
  const found = readdirSync(root).filter((d) => d.startsWith("mlx-dcf")).sort()[0];
  if (!found) throw new Error(`no mlx-dcf* venv under ${root}; set CALIB_VENV`);
  return join(root, found);
}

const WORDS =
  "the model reads a long line of plain words so that every example is longer than the longest sequence we train on while mlx keeps what it needs for the backward pass of each trained layer and the logits over the whole vocabulary".split(
    " ",
  );

/** Each example has far more tokens than max_seq_length, so every batch is exactly max_seq_length wide. */
function writeData(dir: string, seq: number): void {
  mkdirSync(dir, { recursive: true });
  const line = (i: number) => JSON.stringify({ text: Array.from({ length: 2 * seq + 64 }, (_, k) => WORDS[(k * 7 + i) % WORDS.length]).join(" ") });
  writeFileSync(join(dir, "train.jsonl"), [0, 1, 2, 3].map(line).join("\n") + "\n");
  writeFileSync(join(dir, "valid.jsonl"), [4, 5].map(line).join("\n") + "\n");
}

function yamlConfig(o: { model: string; data: string; adapters: string; iters: number; seq: number; layers: number; rank: number; valBatches: number }): string {
  return [
    `model: ${o.model}`,
    `train: true`,
    `fine_tune_type: lora`,
    `data: ${o.data}`,
    `seed: 0`,
    `iters: ${o.iters}`,
    `batch_size: 1`,
    `num_layers: ${o.layers}`,
    `max_seq_length: ${o.seq}`,
    `learning_rate: 1.0e-5`,
    `val_batches: ${o.valBatches}`,
    `steps_per_report: 1`,
    `steps_per_eval: 1000`,
    `save_every: 1000`,
    `grad_checkpoint: false`,
    `adapter_path: ${o.adapters}`,
    `lora_parameters:`,
    `  rank: ${o.rank}`,
    `  scale: 20.0`,
    `  dropout: 0.0`,
    ``,
  ].join("\n");
}

async function runOne(python: string, env: Record<string, string>, modelDir: string, seq: number, trained: number, iters: number, valBatches: number, timeoutMs: number): Promise<Result> {
  const name = basename(modelDir);
  const tag = `${name}-s${seq}-l${trained}`;
  const data = join(WORK, "data", `s${seq}`);
  writeData(data, seq);
  const cfgPath = join(WORK, "cfg", `${tag}.yaml`);
  mkdirSync(dirname(cfgPath), { recursive: true });
  writeFileSync(cfgPath, yamlConfig({ model: modelDir, data, adapters: join(WORK, "adapters", tag), iters, seq, layers: trained, rank: 8, valBatches }));
  mkdirSync(join(WORK, "logs"), { recursive: true });

  const { shape, weightBytes } = await readModelFacts(modelDir);
  const plan: TrainingPlan = { batchSize: 1, maxSeqLength: seq, longestExampleTokens: seq, rank: 8, numLayers: trained, gradCheckpoint: false };
  const est = estimateTrainingMemory(shape, plan, { weightBytes });

  const logPath = join(WORK, "logs", `${tag}.log`);
  const reuse = process.argv.includes("--reuse-logs") && existsSync(logPath) && readFileSync(logPath, "utf8").includes("@@peak ");
  const started = Date.now();
  let out = "";
  if (reuse) {
    out = readFileSync(logPath, "utf8");
  } else {
    const log = createWriteStream(logPath);
    const child = spawn("nice", ["-n", "19", python, join(HERE, "lora_peak.py"), "-c", cfgPath], {
      env: { ...process.env, ...env, PYTHONUNBUFFERED: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const timer = setTimeout(() => child.pid !== undefined && process.kill(child.pid, "SIGKILL"), timeoutMs);
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      log.write(d);
    });
    child.stderr.on("data", (d: Buffer) => log.write(d));
    const code = await new Promise<number | null>((res) => child.on("close", res));
    clearTimeout(timer);
    log.end();
    if (code !== 0) throw new Error(`${tag}: exit ${code} after ${((Date.now() - started) / 1000).toFixed(0)} s; see ${logPath}`);
  }
  const wallSeconds = (Date.now() - started) / 1000;

  const lines = out.split("\n");
  // rich's live display may put cursor codes in front of a line, so match anywhere in it.
  const tagged = (prefix: string) => lines.flatMap((l) => {
    const m = new RegExp(`${prefix} (\\{.*\\})`).exec(l);
    return m?.[1] ? [JSON.parse(m[1]) as Record<string, unknown>] : [];
  });
  const train = tagged("@@metrics").filter((m) => m.type === "train");
  const peak = tagged("@@peak")[0] as { mlx_peak: number; max_rss: number } | undefined;
  if (train.length === 0 || !peak) throw new Error(`${tag}: no training metrics; see ${logPath}`);
  const ips = train.map((m) => Number(m.iterations_per_second)).filter((x) => x > 0);
  const b = est.breakdown;
  return {
    model: name,
    modelType: shape.textModelType,
    dtype: shape.quantization ? `${shape.quantization.bits}-bit g${shape.quantization.groupSize}` : shape.dtype.name,
    layers: shape.numLayers,
    seq: est.sequenceLength,
    trainedLayers: est.trainedLayers,
    rank: 8,
    batch: 1,
    iters,
    valBatches,
    weightBytes: b.weights,
    estimate: { peak: est.peakBytes, ...b },
    reportedPeakGB: Math.max(...train.map((m) => Number(m.peak_memory))),
    mlxPeak: peak.mlx_peak,
    maxRss: peak.max_rss,
    secondsPerIter: ips.length > 0 ? 1 / Math.min(...ips) : null,
    wallSeconds,
    date: new Date().toISOString(),
    command: `npx tsx bench/calibrate-memory.ts ${process.argv.slice(2).filter((a) => a !== "--reuse-logs").join(" ")}`,
  };
}

function loadResults(): Result[] {
  return existsSync(RESULTS) ? (JSON.parse(readFileSync(RESULTS, "utf8")) as Result[]) : [];
}

function versions(python: string, env: Record<string, string>): string {
  try {
    return execFileSync(python, ["-c", "import mlx.core as mx, mlx_lm; print(f'mlx {mx.__version__}, mlx-lm {mlx_lm.__version__}, device {mx.default_device()}')"], {
      env: { ...process.env, ...env },
      encoding: "utf8",
    }).trim();
  } catch {
    return "versions unavailable";
  }
}

const GB = 1e9;
const f2 = (x: number) => x.toFixed(2);

function render(results: Result[], machine: string): string {
  const key = (r: Result) => `${r.modelType} ${r.layers} ${r.dtype} ${String(r.seq).padStart(5)} ${String(r.trainedLayers).padStart(3)}`;
  const rows = [...results].sort((a, b) => key(a).localeCompare(key(b)));
  const out: string[] = [];
  out.push("# Memory estimator vs real `mlx_lm lora` runs");
  out.push("");
  out.push(`Generated ${new Date().toISOString().slice(0, 10)} by \`npx tsx bench/calibrate-memory.ts\` (runs dated ${[...new Set(rows.map((r) => r.date.slice(0, 10)))].join(", ")}).`);
  out.push("");
  out.push(`Machine: ${machine}.`);
  out.push("");
  out.push("Commands that produced the rows (with `make_random_model.py` models in /tmp/calib):");
  out.push("");
  for (const c of [...new Set(rows.map((r) => r.command ?? "npx tsx bench/calibrate-memory.ts"))]) out.push(`    ${c}`);
  out.push("");
  out.push(
    "Models: random bf16 weights in the real architectures (`guard/calibration/make_random_model.py` on " +
      "`/work/shared/model-configs/{meta-llama--Llama-3.2-3B-Instruct,Qwen--Qwen2.5-1.5B-Instruct}.json`; the layer count is in the model column: " +
      "a model cut to fewer blocks with `--layers N` has the real widths and vocabulary, and frozen blocks below the trained ones keep no activations), " +
      "4-bit made with `python -m mlx_lm convert -q --q-bits 4 --q-group-size 64`. Memory depends on shapes, not on trained values.",
  );
  out.push("");
  out.push(
    "Runs: `guard/calibration/lora_peak.py -c cfg.yaml` = `stages/py/lora_train.py` (`mlx_lm lora` + `@@metrics`), batch 1, rank 8 " +
      "(scale 20, dropout 0), LoRA on every linear of the top `num_layers` blocks, Adam, no grad checkpointing, iterations and `val_batches` per row; every example is longer than " +
      "`max_seq_length`, so each batch is exactly `max_seq_length` tokens wide (estimate: `longestExampleTokens = max_seq_length`). " +
      "Estimate: `estimateTrainingMemory(readModelShape(config), plan, { weightBytes: readWeightBytes(dir) })`.",
  );
  out.push("");
  out.push(
    "GB = 1e9 bytes (as mlx-lm prints). *measured* = the largest `peak_memory` the training callback reported " +
      "(`mx.get_peak_memory()`, never reset, so it includes loading and the validation pass). mlx's counter does not see the runtime, " +
      "so *est. − overhead* (the estimate without `CALIBRATION.overheadBytes`) is the figure comparable to it; *max RSS* is the whole process " +
      "(Python, mlx runtime, tokenizer), comparable to the full estimate.",
  );
  out.push("");
  out.push("| model | dtype | plan (seq × trained layers) | weights GB | estimated GB | est. − overhead GB | measured GB (mlx peak) | ratio est−ovh / measured | max RSS GB | ratio est / RSS | iters / val batches | s/iter |");
  out.push("|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
  for (const r of rows) {
    const noOverhead = r.estimate.peak - r.estimate.overhead;
    const measured = r.reportedPeakGB * GB;
    out.push(
      `| ${r.model} (${r.layers} layers) | ${r.dtype} | ${r.seq} × ${r.trainedLayers} | ${f2(r.weightBytes / GB)} | ${f2(r.estimate.peak / GB)} | ${f2(noOverhead / GB)} | ${f2(r.reportedPeakGB)} | ${(noOverhead / measured).toFixed(3)} | ${f2(r.maxRss / GB)} | ${(r.estimate.peak / r.maxRss).toFixed(3)} | ${r.iters} / ${r.valBatches ?? "?"} | ${r.secondsPerIter === null ? "–" : r.secondsPerIter.toFixed(1)} |`,
    );
  }
  out.push("");
  out.push("What the step adds on top of the weights (GB): measured = mlx peak − weights − LoRA weights (fp32); estimated = LoRA gradients + Adam + activations + logits.");
  out.push("");
  out.push("| model | dtype | plan | est. activations | est. logits | est. LoRA grads + Adam | estimated step | measured step | ratio |");
  out.push("|---|---|---|--:|--:|--:|--:|--:|--:|");
  for (const r of rows) {
    const e = r.estimate;
    const estStep = e.loraGradients + e.optimizer + e.activations + e.logits;
    const measStep = r.reportedPeakGB * GB - e.weights - e.lora;
    out.push(
      `| ${r.model} | ${r.dtype} | ${r.seq} × ${r.trainedLayers} | ${f2(e.activations / GB)} | ${f2(e.logits / GB)} | ${f2((e.loraGradients + e.optimizer) / GB)} | ${f2(estStep / GB)} | ${f2(measStep / GB)} | ${(estStep / measStep).toFixed(3)} |`,
    );
  }
  out.push("");
  out.push(
    "Not measured here: the 4-bit models and full-depth Llama 3.2 3B. On this machine's mlx CPU backend a 128×3072 by 3072×8192 " +
      "matmul runs at ~55 GFLOPS in fp32 (OpenBLAS) but ~5.5 in bf16 and ~0.2 as a 4-bit `quantized_matmul`, so one 4-bit step (the tied, " +
      "quantized lm_head alone is 60-100 GFLOP each way) takes hours, and a full-depth 3B bf16 step well over ten minutes with the cores shared. " +
      "The 4-bit weight bytes were checked instead (guard/calibration/WEIGHTS.md: config-based = safetensors headers, to 4 digits).",
  );
  out.push("");
  return out.join("\n");
}

async function main(): Promise<void> {
  const v = venv();
  const python = join(v, "bin/python");
  const env = await openblasEnv(v);
  const machine = `${cpus()[0]?.model ?? "unknown CPU"} × ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Linux, mlx CPU backend (OpenBLAS preloaded); ${versions(python, env)}`;
  let results = loadResults();
  if (!process.argv.includes("--table-only")) {
    const models = (arg("models")?.split(",").map((m) => (m.includes("/") ? m : join(WORK, m))) ?? DEFAULT_MODELS).filter((m) => {
      if (!existsSync(join(m, "config.json"))) console.error(`skipping ${m}: no config.json (build it with make_random_model.py)`);
      return existsSync(join(m, "config.json"));
    });
    const plans = (arg("plans") ?? "128x4,256x8").split(",").map((p) => p.split("x").map(Number) as [number, number]);
    const iters = Number(arg("iters") ?? 2);
    const valBatches = Number(arg("val-batches") ?? 1);
    const timeoutMs = Number(arg("timeout-min") ?? 15) * 60_000;
    for (const model of models) {
      for (const [seq, trained] of plans) {
        process.stdout.write(`${basename(model)} seq ${seq} layers ${trained} ... `);
        try {
          const r = await runOne(python, env, model, seq, trained, iters, valBatches, timeoutMs);
          results = [...loadResults().filter((x) => !(x.model === r.model && x.seq === r.seq && x.trainedLayers === r.trainedLayers)), r];
          writeFileSync(RESULTS, JSON.stringify(results, null, 2) + "\n");
          writeFileSync(TABLE, render(results, machine));
          console.log(
            `estimated ${f2((r.estimate.peak - r.estimate.overhead) / GB)} GB (+${f2(r.estimate.overhead / GB)} overhead), measured ${f2(r.reportedPeakGB)} GB, RSS ${f2(r.maxRss / GB)} GB, ${r.wallSeconds.toFixed(0)} s`,
          );
        } catch (e) {
          console.log(`FAILED: ${(e as Error).message}`);
        }
      }
    }
  }
  writeFileSync(TABLE, render(results, machine));
  console.log(readFileSync(TABLE, "utf8"));
}

await main();
