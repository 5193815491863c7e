// The demo's three heavy workloads (training, eval's mlx-lm answers, eval's GGUF answers) as commands: the
// way the tool runs each one and the way a user would by hand, for the `train` and `contention` benchmarks.
// They read the demo as built in this checkout (`npx tsx pipeline.ts gguf`).
import { existsSync, readFileSync, realpathSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import YAML from "yaml";
import { pipelineSchema, type PipelineConfig } from "../config/schema.ts";
import { loadChatTemplate } from "../stages/lib/data/chat-template.ts";
import { modelDir } from "../stages/lib/model/model-ref.ts";
import { freeCores, threadEnv } from "../stages/lib/toolchain/threads.mjs";
import { pyScript, PY_ENV } from "../stages/lib/toolchain/tools.ts";
import { readToolchain, type ToolchainInfo } from "../stages/lib/toolchain/venv.ts";
import { REPO, timed } from "./lib.ts";

export interface Demo {
  readonly config: PipelineConfig;
  readonly model: string;
  readonly formatted: string;
  readonly fused: string;
  readonly gguf: string;
  readonly mlx: ToolchainInfo;
}

/** The demo as built here, or why it cannot be used. */
export async function builtDemo(): Promise<Demo | string> {
  const models = join(REPO, "models");
  const missing = ["model", "formatted", "fused", "gguf", "mlx-env"].filter((n) => !existsSync(join(models, n)));
  if (missing.length > 0) return `the demo is not built here (${missing.join(", ")} missing): run \`npx tsx pipeline.ts gguf\` first`;
  const config = pipelineSchema.parse(YAML.parse(readFileSync(join(REPO, "pipeline.yaml"), "utf8")));
  return {
    config,
    model: realpathSync(await modelDir(join(models, "model"), REPO)),
    formatted: realpathSync(join(models, "formatted")),
    fused: realpathSync(join(models, "fused")),
    gguf: join(realpathSync(join(models, "gguf")), "model.gguf"),
    mlx: await readToolchain(join(models, "mlx-env")),
  };
}

/**
 * How the compute pools are set up: the tool's way (stages/lib/toolchain/threads.mjs: every core, idle threads
 * asleep at once; llama.cpp the free cores), the free cores everywhere (the tool's way before 2026-12-05, whose
 * count followed the load), or the libraries' defaults (every core, idle threads spinning).
 */
export type Threads = "tool" | "free cores" | "defaults";

/** llama.cpp's threads (`maxThreads`): its pool is sized by the free cores unless the libraries' defaults are asked. */
export async function llamaThreads(threads: Threads): Promise<number> {
  return threads === "defaults" ? availableParallelism() : freeCores();
}

async function poolEnv(threads: Threads): Promise<Record<string, string>> {
  switch (threads) {
    case "tool":
      return threadEnv();
    case "free cores": {
      const n = String(await freeCores());
      return { OPENBLAS_NUM_THREADS: n, OMP_NUM_THREADS: n };
    }
    case "defaults":
      return {};
  }
}

/** The environment the tool gives mlx-lm (PY_ENV, the preloaded OpenBLAS), with the pools of `threads`. */
export async function mlxEnv(demo: Demo, threads: Threads): Promise<NodeJS.ProcessEnv> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...demo.mlx.env, ...(await poolEnv(threads)) };
  for (const [k, v] of Object.entries(PY_ENV)) env[k] = v;
  return env;
}

/** mlx-lm's YAML config for the demo's training: what the adapters node writes (stages/adapters.ts), with `iters`. */
export async function writeLoraConfig(demo: Demo, path: string, adapterPath: string, iters: number): Promise<void> {
  const l = demo.config.lora;
  const yaml = {
    train: true,
    test: false,
    fine_tune_type: l.fine_tune_type,
    optimizer: "adam",
    mask_prompt: l.mask_prompt,
    num_layers: l.num_layers,
    batch_size: l.batch_size,
    iters,
    val_batches: l.val_batches,
    learning_rate: l.learning_rate,
    steps_per_report: Math.min(l.steps_per_report, iters),
    steps_per_eval: Math.min(l.steps_per_eval, iters),
    save_every: Math.min(l.save_every, iters),
    max_seq_length: l.max_seq_length,
    grad_checkpoint: l.grad_checkpoint,
    seed: l.seed,
    lora_parameters: { rank: l.rank, scale: l.scale, dropout: l.dropout, ...(l.keys ? { keys: l.keys } : {}) },
    model: demo.model,
    data: demo.formatted,
    adapter_path: adapterPath,
  };
  await writeFile(path, YAML.stringify(yaml));
}

/** `python -m mlx_lm lora -c CONFIG`, as a user runs it (in the tool's environment). Returns the wall time. */
export async function mlxLora(demo: Demo, config: string, threads: Threads): Promise<number> {
  const r = await timed(demo.mlx.python, ["-m", "mlx_lm", "lora", "-c", config], { env: await mlxEnv(demo, threads) });
  if (r.code !== 0) throw new Error(`mlx_lm lora failed (${r.code}):\n${r.stderr.slice(-2000)}`);
  return r.ms;
}

/** The eval node's prompts: the demo's first `n` test questions, rendered with the model's chat template. */
export async function evalPrompts(demo: Demo, n: number): Promise<string[]> {
  const template = await loadChatTemplate(demo.model);
  if (!template) throw new Error(`${demo.model} has no chat template`);
  const lines = (await readFile(join(REPO, "models", "data", "test.jsonl"), "utf8")).split("\n").filter(Boolean).slice(0, n);
  return lines.map((line) => {
    const { messages } = JSON.parse(line) as { messages: { role: string; content: string }[] };
    const text = template.render(messages.slice(0, messages.map((m) => m.role).lastIndexOf("assistant")), { addGenerationPrompt: true });
    return template.bosToken && text.startsWith(template.bosToken) ? text.slice(template.bosToken.length) : text;
  });
}

export interface Answered {
  readonly ms: number;
  readonly texts: string[];
}

async function answers(path: string): Promise<string[]> {
  return (JSON.parse(await readFile(path, "utf8")) as { answers: { text: string }[] }).answers.map((a) => a.text.trim());
}

/** mlx-lm answers, by the eval node's script (`tool`) or by mlx-lm's batch_generate written by hand. */
export async function mlxAnswers(demo: Demo, dir: string, prompts: readonly string[], maxTokens: number, how: "tool" | "by hand", threads: Threads): Promise<Answered> {
  const request = join(dir, "mlx-request.json");
  const answer = join(dir, `mlx-answer-${how.replace(" ", "-")}.json`);
  await writeFile(request, JSON.stringify({ prompts, max_tokens: maxTokens }));
  const script = how === "tool" ? pyScript("eval_answers.py") : join(REPO, "bench", "py", "batch_decode.py");
  const r = await timed(demo.mlx.python, [script, demo.fused, request, answer], { env: await mlxEnv(demo, threads) });
  if (r.code !== 0) throw new Error(`${script} failed (${r.code}):\n${r.stderr.slice(-2000)}`);
  return { ms: r.ms, texts: await answers(answer) };
}

/** GGUF answers, by the tool's llama.cpp child (stages/lib/llama/worker.mjs, run as child.ts runs it) or by node-llama-cpp in plain node. */
export async function ggufAnswers(demo: Demo, dir: string, prompts: readonly string[], maxTokens: number, how: "tool" | "by hand", threads: Threads): Promise<Answered> {
  const answer = join(dir, `gguf-answer-${how.replace(" ", "-")}.json`);
  let r;
  if (how === "tool") {
    const request = join(dir, "gguf-request-tool.json");
    await writeFile(request, JSON.stringify({ model: demo.gguf, answers: { prompts, maxTokens } }));
    r = await timed(process.execPath, [join(REPO, "stages", "lib", "llama", "worker.mjs"), request, answer]);
  } else {
    const request = join(dir, "gguf-request.json");
    await writeFile(request, JSON.stringify({ prompts, max_tokens: maxTokens }));
    r = await timed(process.execPath, [join(REPO, "bench", "llama-direct.mjs"), demo.gguf, request, answer, String(await llamaThreads(threads))]);
  }
  if (r.code !== 0) throw new Error(`GGUF answers (${how}) failed (${r.code}):\n${r.stderr.slice(-2000)}`);
  return { ms: r.ms, texts: await answers(answer) };
}
