// `npm run bench [-- noop|hashing|check|vocab|cache|parallel|train|contention]`: the engine's benchmarks, as ratios measured side by side in one run.
// They are not timed tests: a shared machine moves every number, which is why each contender runs
// interleaved with its reference, several times, and the load average is printed.
//
// Env: BENCH_GIB (size of the big file, default 4), BENCH_NOOP_REPS (default 11), BENCH_HASH_REPS (default 3),
// BENCH_CACHE_REPS (default 2); train.ts and contention.ts name their own.
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { mkdtemp, open } from "node:fs/promises";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fmtBytes, GiB, load, log, printTable, type Row } from "./lib.ts";
import { makeBigProject, noopBench, weightParts } from "./noop.ts";
import { hashingBench } from "./hashing.ts";
import { checkBench } from "./check.ts";
import { vocabBench } from "./vocab-check.ts";
import { cacheBench } from "./cache.ts";
import { parallelBench } from "./parallel.ts";
import { trainBench } from "./train.ts";
import { contentionBench } from "./contention.ts";

const which = new Set(process.argv.slice(2));
const selected = (name: string) => which.size === 0 || which.has(name);
/** Benches too heavy for a plain `npm run bench`: run only when named. */
const named = (name: string) => which.has(name);
const gib = Number(process.env.BENCH_GIB ?? 4);
const noopReps = Number(process.env.BENCH_NOOP_REPS ?? 11);
const hashReps = Number(process.env.BENCH_HASH_REPS ?? 3);

/** `bytes` of incompressible data: one random 64 MiB block, each copy stamped with its index. */
async function writeBigFile(path: string, bytes: number): Promise<void> {
  const block = randomBytes(64 << 20);
  const fh = await open(path, "w");
  try {
    for (let off = 0, i = 0; off < bytes; off += block.length, i++) {
      block.writeUInt32LE(i, 0);
      await fh.write(block, 0, Math.min(block.length, bytes - off));
    }
  } finally {
    await fh.close();
  }
}

const tmp = await mkdtemp(join(tmpdir(), "engine-bench-"));
const cleanup = () => rmSync(tmp, { recursive: true, force: true });
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    cleanup();
    process.exit(130);
  });
}

const started = performance.now();
const loadStart = load();
const rows: Row[] = [];
const notes: string[] = [];
try {
  if (selected("check")) {
    const r = await checkBench(tmp, 3);
    rows.push(...r.rows);
    notes.push(...r.notes);
  }
  if (selected("vocab")) {
    const r = await vocabBench(tmp, 3);
    rows.push(...r.rows);
    notes.push(...r.notes);
  }
  if (named("parallel")) {
    const r = await parallelBench(tmp);
    rows.push(...r.rows);
    notes.push(...r.notes);
  }
  for (const [name, bench] of [["train", trainBench], ["contention", contentionBench]] as const) {
    if (!named(name)) continue;
    const r = await bench(tmp);
    rows.push(...r.rows);
    notes.push(...r.notes);
  }
  if (selected("noop") || selected("hashing") || selected("cache")) await bigFileBenches();
} finally {
  cleanup();
}

async function bigFileBenches(): Promise<void> {
  const bigFile = join(tmp, "big.bin");
  const bytes = Math.round(gib * GiB);
  log(`writing ${fmtBytes(bytes)} to ${bigFile}`);
  await writeBigFile(bigFile, bytes);
  log("building the big project once (its input is that file, hard-linked; its outputs split it in 4)");
  const big = await makeBigProject(tmp, `big-pipeline, ${fmtBytes(bytes)} in + ${fmtBytes(bytes)} out`, { file: bigFile });

  if (selected("noop")) {
    const r = await noopBench(tmp, big, noopReps);
    rows.push(...r.rows);
    notes.push(...r.notes);
  }
  if (selected("hashing")) {
    const r = await hashingBench(tmp, bigFile, await weightParts(big), hashReps);
    rows.push(...r.rows);
    notes.push(...r.notes);
  }
  if (selected("cache")) {
    const r = await cacheBench(tmp, big, bytes, Number(process.env.BENCH_CACHE_REPS ?? 2));
    rows.push(...r.rows);
    notes.push(...r.notes);
  }
}

const cpu = cpus()[0]?.model ?? "?";
process.stdout.write(
  `\nnode ${process.version}, ${availableParallelism()} cores (${cpu}); "node --import tsx" = node --import node_modules/tsx/dist/loader.mjs\n` +
    `load average (1, 5, 15 min): ${loadStart} at the start, ${load()} at the end; ${((performance.now() - started) / 1000).toFixed(0)} s in all\n\n`,
);
printTable(rows);
if (notes.length > 0) process.stdout.write(`\n${notes.map((n) => `- ${n}`).join("\n")}\n`);
