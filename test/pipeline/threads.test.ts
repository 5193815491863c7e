// The tools' pools: OpenBLAS and OpenMP every usable core whatever the load (the count changes trained bytes),
// their idle threads asleep at once; llama.cpp the free cores, measured; a user's own setting wins. (What they
// buy under a busy core is measured side by side in `npm run bench -- contention`, not timed here.)
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { afterEach, expect, test } from "vitest";
import { blasThreads, freeCores, threadEnv } from "../../stages/lib/toolchain/threads.mjs";

const KEYS = ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY"] as const;
const saved = Object.fromEntries(KEYS.map((k) => [k, process.env[k]]));
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

test("both pools get every usable core and sleep when idle; a variable the user set is left to them", () => {
  for (const k of KEYS) delete process.env[k];
  const cores = String(availableParallelism());
  const ours = { OPENBLAS_NUM_THREADS: cores, OMP_NUM_THREADS: cores, OPENBLAS_THREAD_TIMEOUT: "4", OMP_WAIT_POLICY: "PASSIVE" };
  expect(threadEnv()).toEqual(ours);
  expect(blasThreads()).toBe(availableParallelism());
  process.env.OMP_NUM_THREADS = "7";
  process.env.OPENBLAS_NUM_THREADS = "3";
  expect(threadEnv()).toEqual({ OPENBLAS_THREAD_TIMEOUT: "4", OMP_WAIT_POLICY: "PASSIVE" });
  expect(blasThreads(), "the count recorded is the one OpenBLAS gets").toBe(3);
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
