// The guard of a distributed run, before anything is copied or trained: the batch divides, every host answers
// over ssh, has rsync and the pinned environment, and has the memory for its rank.
import type { Verdict } from "../../../engine/types.ts";
import { batchVerdicts, hostMemoryVerdict } from "../../../guard/distributed.ts";
import { isLocal, localAddresses, parseProbe, probeScript, remoteHosts, sshScript, type Cluster } from "./cluster.ts";
import { onPath } from "../toolchain/paths.ts";
import type { ToolchainInfo } from "../toolchain/venv.ts";

function addressVerdicts(cluster: Cluster): Verdict[] {
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
  const here = localAddresses();
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

function hostVerdicts(host: string, stdout: string, info: ToolchainInfo | undefined, peakBytes: number | undefined): Verdict[] {
  const facts = parseProbe(stdout);
  const out: Verdict[] = [];
  if (!facts.rsync) out.push({ level: "error", code: "distributed.rsync", message: `${host} has no rsync: the model and data are copied to it with rsync.`, fix: `Install rsync on ${host}.` });
  if (info) {
    const want = { mlx: info.versions.mlx ?? "?", mlx_lm: info.versions.mlx_lm ?? "?" };
    const build = `on ${host}, clone this project and run \`npx tsx pipeline.ts mlx-env\` (with the same Python ${info.versions.python ?? ""} as here: the environment's name depends on it)`;
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
 * Verdicts for every host. `info` is the local environment (absent before mlx-env is built: the check then
 * runs again right before training); `peakBytes` is one rank's memory estimate, when the model can be read.
 */
export async function clusterVerdicts(cluster: Cluster, batchSize: number, info: ToolchainInfo | undefined, peakBytes: number | undefined): Promise<Verdict[]> {
  const out = [...batchVerdicts(batchSize, cluster.ranks.length), ...addressVerdicts(cluster)];
  const hosts = [...remoteHosts(cluster).keys()];
  if (hosts.length === 0) return [...out, { level: "ok", code: "distributed.hosts", message: `${cluster.ranks.length} processes on this machine` }];
  for (const tool of ["ssh", "rsync"]) {
    if (!onPath(tool)) out.push({ level: "error", code: `distributed.${tool}`, message: `${tool} is not on PATH: the other hosts are reached with ssh and rsync.`, fix: `Install ${tool}.` });
  }
  if (!onPath("ssh")) return out;
  const answers = await Promise.all(hosts.map(async (host) => ({ host, answer: await sshScript(cluster, host, probeScript(info)) })));
  for (const { host, answer } of answers) {
    if (answer.code !== 0) {
      const why = answer.stderr.trim().split("\n").at(-1) || `ssh exited with ${answer.code}`;
      out.push({
        level: "error",
        code: "distributed.unreachable",
        message: `${host} does not answer over ssh (without a password prompt, within 8 s): ${why}`,
        fix: `Check \`ssh ${host} true\` works without a prompt (ssh-copy-id ${host}; the name in ~/.ssh/config or distributed.ssh_config), and that the machine is on.`,
      });
      continue;
    }
    out.push(...hostVerdicts(host, answer.stdout, info, peakBytes));
  }
  const local = cluster.ranks.filter(isLocal).length;
  out.push({ level: "ok", code: "distributed.hosts", message: `${cluster.ranks.length} processes: ${local} on this machine, ${cluster.ranks.length - local} on ${hosts.join(", ")}` });
  return out;
}
