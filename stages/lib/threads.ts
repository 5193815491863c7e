// How many threads the tools' compute pools get. OpenBLAS (mlx's gemm on Linux), OpenMP (torch, in the
// converter) and llama.cpp all split each operation across their threads and then busy-wait at a barrier
// for the slowest one. When another process holds a core, the thread that shares it runs in time slices
// and every other thread spins meanwhile, burning the CPU the straggler needs: on 2 cores with one busy,
// training ran 6x slower and eval 12x, where the CPU share explains 2x. Half the cores leaves room for
// what else the machine runs. The count does not change results: the adapters' bytes are the same with
// 1 and 2 OpenBLAS threads (gemm splits rows and columns, never the sum), which `npm run bench --
// contention` checks on every run.
import { availableParallelism } from "node:os";

/** Threads per compute pool: half the cores this process may use, at least 1. */
export function toolThreads(cores = availableParallelism()): number {
  return Math.max(1, Math.floor(cores / 2));
}

/** The variables that size OpenBLAS's and OpenMP's pools, for every Python tool. */
export function threadEnv(threads = toolThreads()): Record<string, string> {
  return { OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads) };
}
