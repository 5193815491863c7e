// Benchmark: a first build on a fresh machine, one node at a time (-j 1) against the default -j, side by side.
// Each build gets its own empty tool cache (MLX_PIPELINE_CACHE: no Python environments, no llama.cpp checkout,
// no build cache) and a copy of the demo project without its pipeline.lock or models/, so every node runs.
// The default runs first: whatever a second run gains from warm OS and pip caches goes to -j 1.
//
// Heavy (two Python environments and a training, each time): run it alone, `npm run bench -- parallel`.
// BENCH_PARALLEL_TARGET (default gguf) and BENCH_PARALLEL_MODEL (e.g. tiny:llama, default the demo's model).
import { cpSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { defaultJobs } from "../engine/cli.ts";
import { log, REPO, timed, TSX_ARGS, type Row } from "./lib.ts";

interface NodeTiming {
  readonly id: string;
  readonly status: string;
  readonly startedMs: number;
  readonly ms: number;
}

/** Pairs of nodes whose runs overlapped, and by how long (at least 1 s, so a fresh node's instant does not count). */
function overlaps(nodes: readonly NodeTiming[]): string[] {
  const worked = nodes.filter((n) => n.status === "ran" || n.status === "restored");
  const out: string[] = [];
  for (const [i, a] of worked.entries()) {
    for (const b of worked.slice(i + 1)) {
      const shared = Math.min(a.startedMs + a.ms, b.startedMs + b.ms) - Math.max(a.startedMs, b.startedMs);
      if (shared >= 1000) out.push(`${a.id} ‖ ${b.id} ${(shared / 1000).toFixed(0)} s`);
    }
  }
  return out;
}

const timeline = (nodes: readonly NodeTiming[]) =>
  nodes.map((n) => `${n.id} ${n.status} ${(n.startedMs / 1000).toFixed(0)}–${((n.startedMs + n.ms) / 1000).toFixed(0)} s`).join(", ");

export async function parallelBench(tmp: string): Promise<{ rows: Row[]; notes: string[] }> {
  const target = process.env.BENCH_PARALLEL_TARGET ?? "gguf";
  const model = process.env.BENCH_PARALLEL_MODEL;
  const jobs = defaultJobs();
  const results: { label: string; ms: number; nodes: NodeTiming[] }[] = [];
  for (const [label, j] of [[`-j ${jobs} (default)`, jobs], ["-j 1", 1]] as const) {
    const dir = join(tmp, `parallel-j${j}`);
    mkdirSync(dir, { recursive: true });
    cpSync(join(REPO, "data"), join(dir, "data"), { recursive: true });
    const config = readFileSync(join(REPO, "pipeline.yaml"), "utf8");
    // The demo's model is three lines (pypi, sha256, file); another one replaces them.
    writeFileSync(join(dir, "pipeline.yaml"), model ? config.replace(/^model:\n(?: {2}.*\n)+/m, `model: ${model}\n`) : config);
    const toolCache = join(tmp, `tool-cache-j${j}`);
    log(`parallel: ${target} ${label}, from an empty tool cache ${toolCache}`);
    const r = await timed(process.execPath, [...TSX_ARGS, join(REPO, "pipeline.ts"), target, "--json", "-j", String(j)], {
      cwd: dir,
      env: { ...process.env, CI: "true", MLX_PIPELINE_CACHE: toolCache },
    });
    if (r.code !== 0) throw new Error(`${target} ${label} failed (exit ${r.code}):\n${r.stderr.slice(-3000)}`);
    const nodes = (JSON.parse(r.stdout) as { nodes: NodeTiming[] }).nodes;
    results.push({ label, ms: r.ms, nodes });
    log(`  ${(r.ms / 1000).toFixed(0)} s: ${timeline(nodes)}`);
  }
  const [parallel, serial] = results as [(typeof results)[0], (typeof results)[0]];
  const what = `${target}${model ? ` (model: ${model})` : " (the demo)"}, empty tool cache`;
  const rows: Row[] = [
    { bench: "parallel", command: `${what}, -j 1`, numbers: `${(serial.ms / 1000).toFixed(0)} s`, ratio: "1.00" },
    {
      bench: "parallel",
      command: `${what}, ${parallel.label}`,
      numbers: `${(parallel.ms / 1000).toFixed(0)} s`,
      ratio: `${(parallel.ms / serial.ms).toFixed(2)} of -j 1`,
    },
  ];
  // The whole build's time also holds the training's, which a shared machine moves by tens of seconds between two
  // runs; how much earlier each node could start is what running nodes at once changes.
  const earlier = parallel.nodes.map((n) => {
    const s = serial.nodes.find((m) => m.id === n.id)!;
    return `${n.id} ${((s.startedMs - n.startedMs) / 1000).toFixed(0)} s`;
  });
  const notes = [
    `parallel ${parallel.label}: overlapping nodes: ${overlaps(parallel.nodes).join(", ") || "none"}`,
    `parallel: how much earlier each node started with ${parallel.label} than with -j 1: ${earlier.join(", ")}`,
    `parallel ${parallel.label} timeline: ${timeline(parallel.nodes)}`,
    `parallel -j 1 timeline: ${timeline(serial.nodes)} (overlaps: ${overlaps(serial.nodes).join(", ") || "none"})`,
  ];
  return { rows, notes };
}
