// How many threads the tools' compute pools get. OpenBLAS (mlx's gemm on Linux), OpenMP (torch, in the
// converter) and llama.cpp all split each operation across their threads and then busy-wait at a barrier
// for the slowest one. When another process holds a core, the thread that shares it runs in time slices
// and every other thread spins meanwhile, burning the CPU the straggler needs: on 2 cores with one busy,
// training ran 2 to 6x slower and eval up to 12x, where the CPU share explains 2x. A fixed half of the cores
// fixed that but cost an idle machine a third of its training speed, so the pools get the cores that are
// free when the tool starts, measured. The count does not change results: the adapters' bytes are the same
// with 1 and 2 OpenBLAS threads (gemm splits rows and columns, never the sum), which `npm run bench --
// contention` checks on every run. A user's own OPENBLAS_NUM_THREADS / OMP_NUM_THREADS win.
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
 * The variables that size OpenBLAS's and OpenMP's pools for a compute-heavy Python tool, but not over the user's own.
 * @param {number} [threads]
 * @returns {Promise<Record<string, string>>}
 */
export async function threadEnv(threads) {
  const n = String(threads ?? (await freeCores()));
  /** @type {Record<string, string>} */
  const env = {};
  for (const key of ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"]) if (process.env[key] === undefined) env[key] = n;
  return env;
}
