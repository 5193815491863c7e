// The facts the guard of a distributed run judges (guard/distributed.ts), gathered before anything is copied or
// trained: this machine's addresses, ssh and rsync on PATH, and every other host's answer over ssh.
import type { ClusterFacts } from "../../../guard/distributed.ts";
import { isLocal, localAddresses, parseProbe, probeScript, remoteHosts, sshScript, type Cluster } from "./cluster.ts";
import { onPath } from "../toolchain/paths.ts";
import type { ToolchainInfo } from "../toolchain/venv.ts";

/** `info` is the local environment, absent before mlx-env is built (its versions are then not compared). */
export async function probeCluster(cluster: Cluster, info: ToolchainInfo | undefined): Promise<ClusterFacts> {
  const remote = [...remoteHosts(cluster).keys()];
  const missingTools = remote.length === 0 ? [] : ["ssh", "rsync"].filter((tool) => !onPath(tool));
  const ask = remote.length > 0 && !missingTools.includes("ssh");
  const answers = ask
    ? await Promise.all(
        remote.map(async (host) => {
          const answer = await sshScript(cluster, host, probeScript(info));
          if (answer.code === 0) return { host, facts: parseProbe(answer.stdout) };
          return { host, unreachable: answer.stderr.trim().split("\n").at(-1) || `ssh exited with ${answer.code}` };
        }),
      )
    : [];
  return {
    backend: cluster.backend,
    ranks: cluster.ranks.map((r) => ({ rank: r.rank, ips: r.ips, local: isLocal(r) })),
    here: localAddresses(),
    ...(info ? { versions: info.versions } : {}),
    remote,
    missingTools,
    answers,
  };
}
