// What data-parallel training across machines requires: the global batch splits evenly across the ranks, rank 0
// is this machine at an address the others reach, every host answers with rsync and the same environment, and
// every host holds the whole model plus its share of the batch's activations. The facts come from
// stages/lib/distributed/probe.ts (ssh); the judgement is here.
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

/** What one host said to the probe (stages/lib/distributed/cluster.ts's probeScript). */
export interface HostFacts {
  readonly os: string;
  readonly totalBytes?: number;
  readonly availableBytes?: number;
  readonly rsync: boolean;
  /** The environment's mlx and mlx-lm versions, absent when it is not there. */
  readonly versions?: { mlx: string; mlx_lm: string };
  readonly venv: string;
}

/** A distributed run as probed before anything is copied or trained. */
export interface ClusterFacts {
  readonly backend: "ring" | "jaccl" | "mpi";
  readonly ranks: readonly { readonly rank: number; readonly ips: readonly string[]; readonly local: boolean }[];
  /** This machine's addresses. */
  readonly here: ReadonlySet<string>;
  /** The local environment's versions (mlx, mlx_lm, python), absent before mlx-env is built. */
  readonly versions?: Readonly<Record<string, string>>;
  /** The hosts reached over ssh, once each. */
  readonly remote: readonly string[];
  /** ssh and rsync, when missing from PATH. */
  readonly missingTools: readonly string[];
  /** Each remote host's answer, or why it gave none; not asked without ssh. */
  readonly answers: readonly ({ readonly host: string; readonly facts: HostFacts } | { readonly host: string; readonly unreachable: string })[];
}

function addressVerdicts(cluster: ClusterFacts): Verdict[] {
  const out: Verdict[] = [];
  if (cluster.backend === "ring") {
    const missing = cluster.ranks.filter((r) => r.ips.length === 0);
    if (missing.length > 0) {
      out.push({
        level: "error",
        code: "distributed.no-ip",
        message: `the ring backend connects the ranks by IP address, and ${missing.map((r) => `rank ${r.rank}`).join(", ")} has none.`,
        fix: "Write the host as {ssh: name, ip: address} in distributed.hosts (or give its \"ips\" in the hostfile).",
      });
    }
  }
  const own = cluster.ranks[0]?.ips ?? [];
  const here = cluster.here;
  if (own.length > 0 && !own.some((ip) => here.has(ip))) {
    out.push({
      level: "error",
      code: "distributed.rank0",
      message: `rank 0 (the first host, ${own.join(", ")}) must be this machine, which writes the adapters, but none of its addresses is.`,
      fix: `Put this machine first in distributed.hosts, with one of its addresses: ${[...here].filter((a) => !a.includes(":")).join(", ")}.`,
    });
  }
  const loopback = (ip: string) => ip === "::1" || ip.startsWith("127.");
  const elsewhere = cluster.ranks.slice(1).some((r) => r.ips.some((ip) => !loopback(ip)));
  if (cluster.backend === "ring" && elsewhere && own.length > 0 && own.every(loopback)) {
    out.push({
      level: "error",
      code: "distributed.rank0",
      message: `rank 0's address ${own.join(", ")} is this machine's loopback: the other hosts cannot connect to it.`,
      fix: `Give this machine's network address first in distributed.hosts: ${[...here].filter((a) => !a.includes(":") && !loopback(a)).join(", ")}.`,
    });
  }
  return out;
}

function hostVerdicts(host: string, facts: HostFacts, versions: Readonly<Record<string, string>> | undefined, peakBytes: number | undefined): Verdict[] {
  const out: Verdict[] = [];
  if (!facts.rsync) out.push({ level: "error", code: "distributed.rsync", message: `${host} has no rsync: the model and data are copied to it with rsync.`, fix: `Install rsync on ${host}.` });
  if (versions) {
    const want = { mlx: versions.mlx ?? "?", mlx_lm: versions.mlx_lm ?? "?" };
    const build = `on ${host}, clone this project and run \`npx tsx pipeline.ts mlx-env\` (with the same Python ${versions.python ?? ""} as here: the environment's name depends on it)`;
    if (!facts.versions) {
      out.push({ level: "error", code: "distributed.no-env", message: `${host} has no pinned mlx environment at ${facts.venv} (mlx ${want.mlx}, mlx-lm ${want.mlx_lm}).`, fix: `Build it: ${build}.` });
    } else if (facts.versions.mlx !== want.mlx || facts.versions.mlx_lm !== want.mlx_lm) {
      out.push({
        level: "error",
        code: "distributed.env-versions",
        message: `${host} has mlx ${facts.versions.mlx} and mlx-lm ${facts.versions.mlx_lm}, this machine mlx ${want.mlx} and mlx-lm ${want.mlx_lm}: the ranks must run the same versions.`,
        fix: `Rebuild it: ${build}.`,
      });
    } else {
      out.push({ level: "ok", code: "distributed.env", message: `${host} has mlx ${want.mlx} and mlx-lm ${want.mlx_lm}` });
    }
  }
  if (peakBytes !== undefined) out.push(hostMemoryVerdict(host, facts.os, facts.totalBytes, facts.availableBytes, peakBytes));
  return out;
}

/**
 * Verdicts for every host. `peakBytes` is one rank's memory estimate, when the model can be read; without the
 * local environment's versions (mlx-env not built yet) the check runs again right before training.
 */
export function judgeCluster(cluster: ClusterFacts, batchSize: number, peakBytes: number | undefined): Verdict[] {
  const out = [...batchVerdicts(batchSize, cluster.ranks.length), ...addressVerdicts(cluster)];
  if (cluster.remote.length === 0) return [...out, { level: "ok", code: "distributed.hosts", message: `${cluster.ranks.length} processes on this machine` }];
  for (const tool of cluster.missingTools) {
    out.push({ level: "error", code: `distributed.${tool}`, message: `${tool} is not on PATH: the other hosts are reached with ssh and rsync.`, fix: `Install ${tool}.` });
  }
  if (cluster.missingTools.includes("ssh")) return out;
  for (const answer of cluster.answers) {
    if ("unreachable" in answer) {
      const { host } = answer;
      out.push({
        level: "error",
        code: "distributed.unreachable",
        message: `${host} does not answer over ssh (without a password prompt, within 8 s): ${answer.unreachable}`,
        fix: `Check \`ssh ${host} true\` works without a prompt (ssh-copy-id ${host}; the name in ~/.ssh/config or distributed.ssh_config), and that the machine is on.`,
      });
      continue;
    }
    out.push(...hostVerdicts(answer.host, answer.facts, cluster.versions, peakBytes));
  }
  const local = cluster.ranks.filter((r) => r.local).length;
  out.push({ level: "ok", code: "distributed.hosts", message: `${cluster.ranks.length} processes: ${local} on this machine, ${cluster.ranks.length - local} on ${cluster.remote.join(", ")}` });
  return out;
}
