// Benchmark `contention`: training, eval's mlx-lm answers and the GGUF answers with half the cores kept busy by
// another process (a shell busy loop per core, as a browser or a test run would), against the machine as it
// is, in one run, each with the tool's pools (stages/lib/toolchain/threads.mjs), with the free cores (the tool's
// way before, whose count followed the load) and with the libraries' defaults. Goal: busy/idle no worse than
// the CPU share explains (≤ 2.2x with half the cores busy). Also checks, for each way, that the load leaves the
// adapters' bytes and the answers unchanged. Needs the demo built here (`npx tsx pipeline.ts gguf`).
//
// Env: BENCH_CONTENTION_REPS (rounds, default 2), BENCH_TRAIN_ITERS (default 10), BENCH_EVAL_PROMPTS (default 16).
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { load, log, median, rotated, type Row } from "./lib.ts";
import { builtDemo, evalPrompts, ggufAnswers, mlxAnswers, mlxLora, writeLoraConfig, type Demo, type Threads } from "./workloads.ts";

const WAYS: Readonly<Record<Threads, string>> = {
  tool: "the tool's pools (now)",
  "free cores": "the free cores (before 2026-12-05)",
  defaults: "the libraries' defaults (before the issue)",
};

type Load = "idle" | "busy";

/** `n` shell busy loops, each keeping one core busy until stopped. */
function busyLoops(n: number): ChildProcess[] {
  return Array.from({ length: n }, () => spawn("sh", ["-c", "while :; do :; done"], { stdio: "ignore" }));
}

interface Workload {
  readonly name: string;
  readonly command: (threads: Threads) => string;
  /** Runs once; returns the wall time and what must not depend on the thread count. */
  readonly run: (threads: Threads) => Promise<{ ms: number; result: string }>;
}

function workloads(demo: Demo, tmp: string, iters: number, prompts: readonly string[]): Workload[] {
  const digest = (data: string | Buffer) => createHash("sha256").update(data).digest("hex").slice(0, 12);
  const maxTokens = demo.config.eval.max_tokens;
  const dir = join(tmp, "contention");
  mkdirSync(dir, { recursive: true });
  const cores = String(availableParallelism());
  const env = (t: Threads) =>
    t === "tool" ? `OPENBLAS_NUM_THREADS=${cores} OPENBLAS_THREAD_TIMEOUT=4 OMP_WAIT_POLICY=PASSIVE` : t === "free cores" ? "OPENBLAS_NUM_THREADS=<free cores>" : "(no variable)";
  const count = (t: Threads) => (t === "defaults" ? cores : "<free cores>");
  return [
    {
      name: `training (${iters} iters)`,
      command: (t) => `${env(t)} python -m mlx_lm lora -c lora.yaml`,
      run: async (t) => {
        const adapters = join(dir, `adapters-${t.replace(" ", "-")}`);
        const config = join(dir, `lora-${t.replace(" ", "-")}.yaml`);
        await writeLoraConfig(demo, config, adapters, iters);
        const ms = await mlxLora(demo, config, t);
        return { ms, result: `adapters ${digest(readFileSync(join(adapters, "adapters.safetensors")))}` };
      },
    },
    {
      name: `eval, mlx-lm answers (${prompts.length} prompts)`,
      command: (t) => `${env(t)} python stages/py/eval_answers.py`,
      run: async (t) => {
        const r = await mlxAnswers(demo, dir, prompts, maxTokens, "tool", t);
        return { ms: r.ms, result: `answers ${digest(JSON.stringify(r.texts))}` };
      },
    },
    {
      name: `eval, GGUF answers (${prompts.length} prompts)`,
      command: (t) => `node bench/llama-direct.mjs (maxThreads ${count(t)})`,
      run: async (t) => {
        const r = await ggufAnswers(demo, dir, prompts, maxTokens, "by hand", t);
        return { ms: r.ms, result: `answers ${digest(JSON.stringify(r.texts))}` };
      },
    },
  ];
}

export async function contentionBench(tmp: string): Promise<{ rows: Row[]; notes: string[] }> {
  const demo = await builtDemo();
  if (typeof demo === "string") return { rows: [], notes: [`contention: ${demo}`] };
  const reps = Number(process.env.BENCH_CONTENTION_REPS ?? 2);
  const iters = Number(process.env.BENCH_TRAIN_ITERS ?? 10);
  const prompts = await evalPrompts(demo, Number(process.env.BENCH_EVAL_PROMPTS ?? 16));
  const busy = Math.max(1, Math.floor(availableParallelism() / 2));
  const rows: Row[] = [];
  const notes: string[] = [];
  for (const w of workloads(demo, tmp, iters, prompts)) {
    const ways = Object.keys(WAYS) as Threads[];
    const cases = ways.flatMap((threads) => (["idle", "busy"] as const).map((load) => ({ threads, load })));
    const samples = new Map(cases.map((c) => [c, [] as number[]]));
    const results = new Map(ways.map((t) => [t, new Set<string>()]));
    // Not counted: the first run reads the model from disk (eval's answers took 6.9 s cold, 4.1 s warm).
    results.get("tool")!.add((await w.run("tool")).result);
    log(`contention: ${w.name}, a warm-up run`);
    for (let i = 0; i < reps; i++) {
      for (const c of rotated(cases, i)) {
        const loops = c.load === "busy" ? busyLoops(busy) : [];
        try {
          const r = await w.run(c.threads);
          samples.get(c)!.push(r.ms);
          results.get(c.threads)!.add(r.result);
        } finally {
          for (const loop of loops) loop.kill("SIGKILL");
        }
        log(`contention: ${w.name}, ${c.threads} threads, ${c.load}: ${(samples.get(c)!.at(-1)! / 1000).toFixed(1)} s (load ${load()})`);
      }
    }
    const at = (threads: Threads, l: Load) => median(samples.get(cases.find((c) => c.threads === threads && c.load === l)!)!);
    for (const threads of ways) {
      const ratio = at(threads, "busy") / at(threads, "idle");
      const seen = [...results.get(threads)!];
      rows.push({
        bench: `contention: ${w.name}, ${WAYS[threads]}`,
        command: w.command(threads),
        numbers:
          `idle ${(at(threads, "idle") / 1000).toFixed(1)} s, ${busy} of ${availableParallelism()} cores busy ${(at(threads, "busy") / 1000).toFixed(1)} s` +
          (threads === "tool" ? "" : `; the tool's pools take ${(at("tool", "idle") / at(threads, "idle")).toFixed(2)}x the time idle, ${(at("tool", "busy") / at(threads, "busy")).toFixed(2)}x busy`),
        ratio: `${ratio.toFixed(2)}x slower when busy (goal ≤ 2.2x); ${seen.length === 1 ? `the same result idle and busy (${seen[0]})` : `RESULTS DIFFER idle and busy: ${seen.join(", ")}`}`,
      });
    }
  }
  notes.push(`contention: "busy" = ${busy} shell busy loop(s) (sh -c 'while :; do :; done'); "idle" = the machine as it is (load ${load()} at the end)`);
  return { rows, notes };
}
