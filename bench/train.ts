// Benchmark `train`: what the tool's wrappers cost against the tools run by hand, alternately (ABAB…) in one run.
// - training: the adapters node (the metrics shim, the watcher, the log pipes) against `python -m mlx_lm lora`
//   with the identical config, data and seed: tokens/s, and the adapters' bytes (the same bytes: same final loss);
// - eval's mlx-lm answers: the eval node's script against mlx-lm's batch_generate written by hand;
// - eval's GGUF answers: the tool's llama.cpp child against node-llama-cpp in plain node.
// Both sides of each pair get the same environment (the preloaded OpenBLAS, the thread counts), so the ratio
// is the wrapper's cost alone. Needs the demo built here (`npx tsx pipeline.ts gguf`).
//
// Env: BENCH_TRAIN_REPS (rounds, default 3), BENCH_TRAIN_ITERS (default the demo's lora.iters),
// BENCH_EVAL_PROMPTS (default the demo's eval.max_examples), BENCH_TRAIN_ONLY (some of training,mlx,gguf; default all).
import { createHash } from "node:crypto";
import { cpSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { load, log, median, REPO, rotated, timed, TSX_ARGS, type Row } from "./lib.ts";
import { builtDemo, evalPrompts, ggufAnswers, mlxAnswers, mlxLora, writeLoraConfig, type Answered, type Demo } from "./workloads.ts";

const sha = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex").slice(0, 12);
const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

interface TrainRun {
  readonly ms: number;
  readonly tokens: number;
  readonly loss: number | null;
  readonly adapters: string;
}

/** A copy of the demo project with `iters` iterations, built up to `formatted` (restored from the build cache). */
async function toolProject(tmp: string, iters: number): Promise<string> {
  const dir = join(tmp, "train-project");
  mkdirSync(dir, { recursive: true });
  cpSync(join(REPO, "data"), join(dir, "data"), { recursive: true });
  writeFileSync(join(dir, "pipeline.yaml"), readFileSync(join(REPO, "pipeline.yaml"), "utf8").replace(/^( {2}iters:) \d+/m, `$1 ${iters}`));
  const r = await timed(process.execPath, [...TSX_ARGS, join(REPO, "pipeline.ts"), "formatted", "--json"], { cwd: dir, env: { ...process.env, CI: "true" } });
  if (r.code !== 0) throw new Error(`building formatted in ${dir} failed:\n${r.stderr.slice(-2000)}`);
  return dir;
}

/** The adapters node, forced: its own run time (from --json), the tokens it trained and its final loss. */
async function toolTrain(dir: string): Promise<TrainRun> {
  const r = await timed(process.execPath, [...TSX_ARGS, join(REPO, "pipeline.ts"), "adapters", "--force", "adapters", "--json"], { cwd: dir, env: { ...process.env, CI: "true" } });
  if (r.code !== 0) throw new Error(`adapters failed:\n${r.stderr.slice(-2000)}`);
  const node = (JSON.parse(r.stdout) as { nodes: { id: string; ms: number }[] }).nodes.find((n) => n.id === "adapters")!;
  const reports = readFileSync(join(dir, "models", "adapters", "metrics.jsonl"), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as { type: string; trained_tokens?: number; train_loss?: number });
  const last = reports.filter((x) => x.type === "train").at(-1);
  return { ms: node.ms, tokens: last?.trained_tokens ?? 0, loss: last?.train_loss ?? null, adapters: sha(join(dir, "models", "adapters", "adapters.safetensors")) };
}

async function trainRows(tmp: string, demo: Demo, reps: number, iters: number): Promise<Row[]> {
  log(`train: the adapters node against mlx_lm lora, ${iters} iterations, ${reps} rounds (load ${load()})`);
  const dir = await toolProject(tmp, iters);
  const byHand = join(tmp, "by-hand");
  const config = join(tmp, "lora.yaml");
  await writeLoraConfig(demo, config, byHand, iters);
  const tool: TrainRun[] = [];
  const hand: { ms: number; adapters: string }[] = [];
  for (let i = 0; i < reps; i++) {
    for (const side of rotated(["tool", "by hand"] as const, i)) {
      if (side === "tool") tool.push(await toolTrain(dir));
      else hand.push({ ms: await mlxLora(demo, config, "tool"), adapters: sha(join(byHand, "adapters.safetensors")) });
      log(`  round ${i + 1} ${side}: ${s(side === "tool" ? tool.at(-1)!.ms : hand.at(-1)!.ms)} (load ${load()})`);
    }
  }
  const tokens = tool[0]!.tokens;
  const rate = (ms: number) => tokens / (ms / 1000);
  const ratios = tool.map((t, i) => rate(t.ms) / rate(hand[i]!.ms));
  const same = new Set([...tool.map((t) => t.adapters), ...hand.map((h) => h.adapters)]);
  return [
    {
      bench: `train: adapters node (${iters} iters)`,
      command: `npx tsx pipeline.ts adapters --force adapters (lora.iters: ${iters})`,
      numbers: `median ${s(median(tool.map((t) => t.ms)))}, ${rate(median(tool.map((t) => t.ms))).toFixed(1)} tok/s; final loss ${tool.map((t) => t.loss?.toFixed(4)).join(", ")}`,
      ratio: `${median(ratios).toFixed(3)}x the tokens/s by hand (per round ${ratios.map((r) => r.toFixed(2)).join(", ")}; goal ≥ 0.98)`,
    },
    {
      bench: "train: mlx_lm lora by hand",
      command: `python -m mlx_lm lora -c lora.yaml (the node's config, the toolchain's env)`,
      numbers: `median ${s(median(hand.map((h) => h.ms)))}, ${rate(median(hand.map((h) => h.ms))).toFixed(1)} tok/s`,
      ratio: same.size === 1 ? `adapters byte-identical in all ${tool.length + hand.length} runs (${[...same][0]})` : `ADAPTERS DIFFER: ${[...same].join(", ")}`,
    },
  ];
}

async function pairRows(name: string, reps: number, commands: [string, string], run: (how: "tool" | "by hand") => Promise<Answered>): Promise<Row[]> {
  log(`train: ${name}, ${reps} rounds (load ${load()})`);
  const tool: Answered[] = [];
  const hand: Answered[] = [];
  for (let i = 0; i < reps; i++) {
    for (const how of rotated(["tool", "by hand"] as const, i)) {
      (how === "tool" ? tool : hand).push(await run(how));
      log(`  round ${i + 1} ${how}: ${s((how === "tool" ? tool : hand).at(-1)!.ms)}`);
    }
  }
  const ratios = tool.map((t, i) => hand[i]!.ms / t.ms);
  const n = tool[0]!.texts.length;
  const agree = tool[0]!.texts.filter((t, i) => t === hand[0]!.texts[i]).length;
  return [
    {
      bench: `${name}: the tool`,
      command: commands[0],
      numbers: `median ${s(median(tool.map((t) => t.ms)))} for ${n} prompts`,
      ratio: `${median(ratios).toFixed(3)}x the speed by hand (per round ${ratios.map((r) => r.toFixed(2)).join(", ")}; goal ≥ 0.98)`,
    },
    { bench: `${name}: by hand`, command: commands[1], numbers: `median ${s(median(hand.map((h) => h.ms)))}`, ratio: `same answers on ${agree}/${n}` },
  ];
}

export async function trainBench(tmp: string): Promise<{ rows: Row[]; notes: string[] }> {
  const demo = await builtDemo();
  if (typeof demo === "string") return { rows: [], notes: [`train: ${demo}`] };
  const reps = Number(process.env.BENCH_TRAIN_REPS ?? 3);
  const iters = Number(process.env.BENCH_TRAIN_ITERS ?? demo.config.lora.iters);
  const prompts = await evalPrompts(demo, Number(process.env.BENCH_EVAL_PROMPTS ?? demo.config.eval.max_examples));
  const maxTokens = demo.config.eval.max_tokens;
  const dir = join(tmp, "answers");
  mkdirSync(dir, { recursive: true });
  const only = new Set((process.env.BENCH_TRAIN_ONLY ?? "training,mlx,gguf").split(","));
  const rows = [
    ...(only.has("training") ? await trainRows(tmp, demo, reps, iters) : []),
    ...(only.has("mlx")
      ? await pairRows("eval, mlx-lm answers", reps, ["stages/py/eval_answers.py (as the eval node runs it)", "bench/py/batch_decode.py (mlx_lm.batch_generate, greedy)"], (how) =>
          mlxAnswers(demo, dir, prompts, maxTokens, how, "tool"),
        )
      : []),
    ...(only.has("gguf")
      ? await pairRows("eval, GGUF answers", reps, ["node stages/lib/llama/worker.mjs (the tool's llama.cpp child, as child.ts runs it)", "node bench/llama-direct.mjs (node-llama-cpp, plain node)"], (how) =>
          ggufAnswers(demo, dir, prompts, maxTokens, how, "tool"),
        )
      : []),
  ];
  return { rows, notes: [`train: ${prompts.length} eval prompts, max_tokens ${maxTokens}; load ${load()} at the end`] };
}
