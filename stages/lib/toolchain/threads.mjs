// How many threads the tools' compute pools get, and how their idle threads wait.
//
// OpenBLAS (mlx's gemm on Linux) and OpenMP (torch, in the converter) get every core this process may use,
// always: OpenBLAS's split of a matmul decides its rounding, so its thread count changes the bytes trained (the
// demo's adapters: b1a091d0… with 1 thread, 05d2de94… with 2, at 60 iterations). Sized by the load of the moment,
// a build started on a busy machine trained other bytes than one on an idle machine. A fixed count trains the
// same bytes on the same machine whatever else runs; the nodes that run mlx record it in pipeline.lock
// (tools.ts, mlxConditions), since a machine with other cores trains other bytes.
//
// What made every core slow on a busy machine was the waiting, not the count: OpenBLAS's idle threads spin for
// 2^28 cycles after each call before they sleep, burning the core that the thread sharing it with another process,
// or Python, needs. OPENBLAS_THREAD_TIMEOUT=4 (2^4 cycles, its minimum) puts them to sleep at once, and
// OMP_WAIT_POLICY=PASSIVE does the same for OpenMP. Measured with `npm run bench -- contention`.
//
// llama.cpp's pool (node-llama-cpp, llama-server) is sized by the cores free when it starts: ggml hands each
// thread whole rows, so the count moves its speed but not its answers (the contention benchmark compares them),
// and its threads spin at ggml's barriers whatever the timeouts. A user's own variables win everywhere.
//
// Plain JavaScript (checked by tsc through its JSDoc): the llama.cpp child runs in plain node, without tsx.
// @ts-check
import { availableParallelism, cpus } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";

/** How long the cores are watched: long enough for the kernel's tick counters (10 ms) to say something. */
const SAMPLE_MS = 250;

function busyTicks() {
  return cpus().map(({ times: t }) => ({ busy: t.user + t.nice + t.sys + t.irq, total: t.user + t.nice + t.sys + t.irq + t.idle }));
}

/**
 * Cores no other process keeps busy right now, at least 1, at most the usable ones. The caller either waits
 * meanwhile, or (`busySelf`) works meanwhile and its own CPU time is not counted as another process's: the
 * llama.cpp child loads node-llama-cpp while it samples, so the sample costs it no time.
 * @param {number} [sampleMs]
 * @param {{ busySelf?: boolean }} [options]
 * @returns {Promise<number>}
 */
export async function freeCores(sampleMs = SAMPLE_MS, options = {}) {
  const before = busyTicks();
  const started = performance.now();
  const self = process.cpuUsage();
  await sleep(sampleMs);
  const after = busyTicks();
  let busy = 0;
  after.forEach((a, i) => {
    const b = before[i];
    const total = b ? a.total - b.total : 0;
    if (b && total > 0) busy += (a.busy - b.busy) / total;
  });
  if (options.busySelf) {
    const own = process.cpuUsage(self);
    busy = Math.max(0, busy - (own.user + own.system) / 1000 / (performance.now() - started));
  }
  return Math.max(1, Math.min(availableParallelism(), Math.round(after.length - busy)));
}

/**
 * The threads of a compute pool that may change bytes: the user's OPENBLAS_NUM_THREADS, else every usable core.
 * @returns {number}
 */
export function blasThreads() {
  const own = Number(process.env.OPENBLAS_NUM_THREADS);
  return Number.isInteger(own) && own > 0 ? own : availableParallelism();
}

/**
 * The variables that size and calm OpenBLAS's and OpenMP's pools for a compute-heavy Python tool, but not over the user's own.
 * @returns {Record<string, string>}
 */
export function threadEnv() {
  const n = String(availableParallelism());
  /** @type {Record<string, string>} */
  const env = {};
  const ours = { OPENBLAS_NUM_THREADS: n, OMP_NUM_THREADS: n, OPENBLAS_THREAD_TIMEOUT: "4", OMP_WAIT_POLICY: "PASSIVE" };
  for (const [key, value] of Object.entries(ours)) if (process.env[key] === undefined) env[key] = value;
  return env;
}
