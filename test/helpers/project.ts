// A throwaway project for the real pipeline (pipeline.ts with the real tools), and ways to run its CLI as a
// subprocess and read what it built. The Python environments come from the per-user cache (built on first use).
import type { ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import YAML from "yaml";
import { userCacheDir } from "../../stages/lib/toolchain/paths.ts";
import { resolveToolchain, type ToolchainInfo } from "../../stages/lib/toolchain/venv.ts";
import { type CliRun, collect, REPO, requireJson, spawnCli } from "./cli.ts";

export { alive, REPO, waitFor } from "./cli.ts";
export const PIPELINE = join(REPO, "pipeline.ts");

/** The repository's sample data, one JSON line per example. */
export const SAMPLE_LINES: readonly string[] = readFileSync(join(REPO, "data/conversions.jsonl"), "utf8").split("\n").filter(Boolean);

/** The first `n` sample lines as a jsonl file's text. */
export function sample(n: number, from = 0): string {
  return SAMPLE_LINES.slice(from, from + n).join("\n") + "\n";
}

/**
 * A small, fast training setup: enough for mlx-lm to run, report, evaluate and checkpoint. Batches of 2: a tiny
 * model's step is mostly its 128k- to 262k-token output layer, so the batch sets the cost of every test training.
 */
export const FAST_LORA = {
  rank: 4,
  scale: 20,
  num_layers: -1,
  batch_size: 2,
  iters: 6,
  learning_rate: 0.001,
  max_seq_length: 128,
  mask_prompt: true,
  save_every: 3,
  steps_per_report: 3,
  steps_per_eval: 3,
  val_batches: 1,
  seed: 0,
};

export interface ConfigOptions {
  model?: string | Record<string, string>;
  format?: "messages" | "text";
  data?: Record<string, unknown>;
  lora?: Record<string, unknown>;
  gguf?: Record<string, unknown>;
  [key: string]: unknown;
}

/** pipeline.yaml text: a comment line, then the config (small data splits, fast LoRA settings). */
export function pipelineYaml(options: ConfigOptions = {}): string {
  const { model = "tiny:llama", data, lora, gguf, ...rest } = options;
  const config = {
    model,
    ...rest,
    data: { files: ["data/*.jsonl"], valid_fraction: 0.1, test_fraction: 0, seed: 0, ...data },
    lora: { ...FAST_LORA, ...lora },
    gguf: { outtype: "f16", ...gguf },
  };
  return `# an end-to-end test project\n${YAML.stringify(config)}`;
}

export interface NodeReport {
  id: string;
  status: string;
  reason: string;
  ms: number;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The --json document; reading it throws when the run printed none (see requireJson). */
  json: { ok: boolean; nodes: NodeReport[]; error?: string; verdicts?: { node: string; level: string; code: string; message: string }[]; [k: string]: unknown };
  /** node id → status, for the nodes in the report; throws when there is no report of nodes. */
  statuses: Record<string, string>;
  ms: number;
}

export interface LockEntry {
  fingerprint: string;
  params: unknown;
  facts?: Record<string, unknown>;
  output: { digest: string; files: Record<string, string> };
  [k: string]: unknown;
}

export class Project {
  readonly dir: string;

  /** A temp folder with pipeline.yaml and `files` (relative paths → text). */
  constructor(config: string = pipelineYaml(), files: Record<string, string> = { "data/train.jsonl": sample(40) }) {
    this.dir = mkdtempSync(join(tmpdir(), "mlx-pipeline-e2e-"));
    this.write("pipeline.yaml", config);
    for (const [name, text] of Object.entries(files)) this.write(name, text);
  }

  /**
   * A copy of the project in `dir`, as another clone with its outputs, lock and build cache (.store): models/<id>
   * are relative symlinks into models/.builds and stay so; times are kept, so the copy's files are not "racy".
   */
  static copyOf(dir: string): Project {
    const copy = new Project("", {});
    cpSync(dir, copy.dir, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
    return copy;
  }

  path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  write(rel: string, text: string): void {
    mkdirSync(dirname(this.path(rel)), { recursive: true });
    writeFileSync(this.path(rel), text);
  }

  read(rel: string): string {
    return readFileSync(this.path(rel), "utf8");
  }

  readJson<T = Record<string, unknown>>(rel: string): T {
    return JSON.parse(this.read(rel)) as T;
  }

  /** Every line of a jsonl file, parsed. */
  readJsonl<T = Record<string, unknown>>(rel: string): T[] {
    return this.read(rel)
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as T);
  }

  exists(rel: string): boolean {
    return existsSync(this.path(rel));
  }

  sha256(rel: string): string {
    return createHash("sha256").update(readFileSync(this.path(rel))).digest("hex");
  }

  /** pipeline.lock, parsed. */
  lock(): Record<string, LockEntry> {
    return (YAML.parse(this.read("pipeline.lock")) as { nodes: Record<string, LockEntry> }).nodes;
  }

  /** A toolchain node's toolchain.json, its paths resolved as this project's runs resolve them (python, env, source, ...). */
  toolchain(node: "mlx-env" | "llama-cpp"): ToolchainInfo {
    return resolveToolchain(this.readJson(`models/${node}/toolchain.json`), this.env.MLX_PIPELINE_CACHE ?? userCacheDir());
  }

  /** Extra environment for every run of this project (undefined removes a variable). */
  env: Record<string, string | undefined> = {};

  spawn(args: string[], env: Record<string, string | undefined> = {}): ChildProcess {
    // FORCE_COLOR is removed: see the "FORCE_COLOR" test in training.test.ts for what it does to training.
    // Each project its own build cache unless a test shares one: a test expecting a node to run must not find it restored.
    const store = { MLX_PIPELINE_STORE: this.path(".store") };
    return spawnCli(PIPELINE, args, { cwd: this.dir, env: { ...process.env, CI: "true", FORCE_COLOR: undefined, ...store, ...this.env, ...env } });
  }

  /** Runs the CLI and returns its exit code, output and the parsed --json document (when there is one). */
  async run(args: string[], onSpawn?: (child: ChildProcess) => void, env: Record<string, string | undefined> = {}): Promise<RunResult> {
    const child = this.spawn(args, env);
    onSpawn?.(child);
    return runResult(await collect(child));
  }

  /** Builds `target` with --json. */
  build(target: string, ...extra: string[]): Promise<RunResult> {
    return this.run([target, "--json", ...extra]);
  }

  /** Builds `target`, and throws with the output when it fails (for setup steps). */
  async mustBuild(target: string, ...extra: string[]): Promise<RunResult> {
    const result = await this.build(target, ...extra);
    if (result.code !== 0) throw new Error(`building ${target} exited ${result.code}:\n${result.stderr.slice(-4000)}\n${result.stdout.slice(-2000)}`);
    return result;
  }
}

/** What a CLI run returned, its --json document and statuses read on demand. */
export function runResult(r: CliRun): RunResult {
  return {
    code: r.code,
    signal: r.signal,
    stdout: r.stdout,
    stderr: r.stderr,
    ms: r.ms,
    // Read lazily: a killed run has no document, and only a test that reads it must fail.
    get json() {
      return requireJson(r) as RunResult["json"];
    },
    get statuses() {
      const { nodes, error } = this.json;
      if (!nodes) throw new Error(`the CLI reported no nodes: ${error ?? JSON.stringify(this.json)}`);
      return Object.fromEntries(nodes.map((n) => [n.id, n.status]));
    },
  };
}

/** The node ids whose status is "ran", sorted. */
export function ran(result: RunResult): string[] {
  return result.json.nodes
    .filter((n) => n.status === "ran")
    .map((n) => n.id)
    .sort();
}

/** Every key path under `value` whose last key is one of `keys`. */
export function keyPaths(value: unknown, keys: readonly string[], at = ""): string[] {
  if (value === null || typeof value !== "object") return [];
  const out: string[] = [];
  for (const [k, v] of Object.entries(value)) {
    const path = at ? `${at}.${k}` : k;
    if (keys.includes(k)) out.push(path);
    out.push(...keyPaths(v, keys, path));
  }
  return out;
}
