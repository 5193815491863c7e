// What data-parallel training across machines requires: the global batch splits evenly across the ranks, and
// every host holds the whole model plus its share of the batch's activations.
import type { Verdict } from "../engine/types.ts";
import { usableMemory, type OperatingSystem } from "./memory.ts";

const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(2)} GiB`;

/** mlx-lm gives each rank batch_size / world_size examples and refuses a batch that does not divide. */
export function batchVerdicts(batchSize: number, worldSize: number): Verdict[] {
  if (batchSize % worldSize === 0) {
    return [{ level: "ok", code: "distributed.batch", message: `global batch ${batchSize} = ${worldSize} processes × ${batchSize / worldSize}` }];
  }
  const lower = Math.floor(batchSize / worldSize) * worldSize;
  const options = [lower, lower + worldSize].filter((b) => b > 0).join(" or ");
  return [
    {
      level: "error",
      code: "distributed.batch",
      message: `lora.batch_size ${batchSize} does not divide by the ${worldSize} processes of distributed.hosts: mlx-lm splits the global batch evenly and refuses it.`,
      fix: `Set lora.batch_size to a multiple of ${worldSize} (${options}), or change the number of hosts.`,
    },
  ];
}

/** One host's memory against the per-rank estimate (the whole model, 1/world of the batch). */
export function hostMemoryVerdict(host: string, os: string, totalBytes: number | undefined, availableBytes: number | undefined, peakBytes: number): Verdict {
  const system: OperatingSystem | undefined = os === "Darwin" ? "macos" : os === "Linux" ? "linux" : undefined;
  if (system === undefined || totalBytes === undefined) {
    return { level: "warn", code: "distributed.memory-unknown", message: `${host}: could not read its memory (${os}); it needs about ${gib(peakBytes)}.`, fix: "" };
  }
  const usable = usableMemory({ os: system, totalBytes, ...(availableBytes !== undefined ? { availableBytes } : {}) });
  const what = `${host} (${gib(totalBytes)}, ${system}) can use ${gib(usable)}; its rank needs about ${gib(peakBytes)}`;
  if (peakBytes <= usable) return { level: "ok", code: "distributed.memory", message: what };
  return {
    level: "error",
    code: "distributed.memory",
    message: `${what}: it will not fit.`,
    fix: "Every host holds the whole model: drop this host, lower lora.batch_size or max_seq_length, or set lora.grad_checkpoint: true.",
  };
}
