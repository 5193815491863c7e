// The tools' pool sizes: the free cores, measured; a user's own setting wins. (What they buy under a busy
// core is measured side by side in `npm run bench -- contention`, not timed here.)
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { afterEach, expect, test } from "vitest";
import { freeCores, threadEnv } from "../../stages/lib/toolchain/threads.mjs";

const saved = { OPENBLAS_NUM_THREADS: process.env.OPENBLAS_NUM_THREADS, OMP_NUM_THREADS: process.env.OMP_NUM_THREADS };
afterEach(() => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

test("free cores are a whole number between 1 and the cores this process may use", async () => {
  const n = await freeCores(50);
  expect(Number.isInteger(n)).toBe(true);
  expect(n).toBeGreaterThanOrEqual(1);
  expect(n).toBeLessThanOrEqual(availableParallelism());
});

test("both pools get the count; a variable the user set is left to them", async () => {
  delete process.env.OPENBLAS_NUM_THREADS;
  delete process.env.OMP_NUM_THREADS;
  expect(await threadEnv(3)).toEqual({ OPENBLAS_NUM_THREADS: "3", OMP_NUM_THREADS: "3" });
  process.env.OMP_NUM_THREADS = "7";
  expect(await threadEnv(3)).toEqual({ OPENBLAS_NUM_THREADS: "3" });
});

test("a sample taken while this process works does not count its own work as another process's", async () => {
  // One core kept busy by this process (a worker thread spinning), both samples over the same window.
  const spin = new Worker("const end = Date.now() + 600; while (Date.now() < end);", { eval: true });
  try {
    const [others, self] = await Promise.all([freeCores(300), freeCores(300, { busySelf: true })]);
    expect(others, "the spinning core is busy to a sample that counts it").toBeLessThanOrEqual(Math.max(1, availableParallelism() - 1));
    // Not counting it frees that core, unless other processes hold it all the same.
    expect(self).toBeGreaterThanOrEqual(others);
    if (others > 1 || self < availableParallelism()) expect(self).toBeLessThanOrEqual(Math.min(availableParallelism(), others + 1));
  } finally {
    await spin.terminate();
  }
});
