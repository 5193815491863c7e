// The tools' pool sizes: the free cores, measured; a user's own setting wins. (What they buy under a busy
// core is measured side by side in `npm run bench -- contention`, not timed here.)
import { availableParallelism } from "node:os";
import { afterEach, expect, test } from "vitest";
import { freeCores, threadEnv } from "../../stages/lib/toolchain/threads.ts";

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
