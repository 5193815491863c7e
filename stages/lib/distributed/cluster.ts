// Training on several machines with `mlx.launch`: who the ranks are, reaching the other hosts over ssh,
// copying the inputs there at the same paths, and the launch command. Rank 0 is always this machine, so the
// adapters (which only rank 0 writes) land in the node's own folders.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { networkInterfaces } from "node:os";
import { basename, join, resolve } from "node:path";
import type { DistributedConfig } from "../../../config/schema.ts";
import type { ExecResult, RunCtx } from "../../../engine/types.ts";
import { UserError } from "../../../engine/types.ts";
import type { HostFacts } from "../../../guard/distributed.ts";
import { onPath } from "../toolchain/paths.ts";
import { venvPython, type ToolchainInfo } from "../toolchain/venv.ts";

/** mlx.launch runs a host named exactly this as a local process instead of over ssh. */
const LOCAL = "127.0.0.1";

export type Backend = "ring" | "jaccl" | "mpi";

export interface Rank {
  readonly rank: number;
  /** What ssh connects to; LOCAL for a process on this machine. */
  readonly ssh: string;
  readonly ips: readonly string[];
  /** jaccl's RDMA devices, passed through from a hostfile. */
  readonly rdma?: readonly unknown[];
}

export interface Cluster {
  readonly backend: Backend;
  readonly envs: readonly string[];
  readonly ranks: readonly Rank[];
  readonly sshConfig?: string;
  readonly port: number;
  readonly watchdogSeconds: number;
}

const BACKENDS: readonly Backend[] = ["ring", "jaccl", "mpi"];

function isIp(text: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(text) || text.includes(":");
}

/** The hosts of an mlx.launch hostfile: a list of {ssh, ips, rdma}, or {backend, envs, hosts}. */
function readHostfile(path: string): { backend?: Backend; envs: string[]; hosts: { ssh: string; ips: string[]; rdma?: unknown[] }[] } {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new UserError(`distributed.hostfile ${path} is unreadable: ${(e as Error).message}. Write it as mlx.launch expects, e.g. [{"ssh": "mac2", "ips": ["10.0.0.2"]}].`, 2);
  }
  const top = Array.isArray(data) ? { hosts: data } : (data as { backend?: unknown; envs?: unknown; hosts?: unknown });
  const hosts = top.hosts;
  if (!Array.isArray(hosts) || hosts.length === 0 || !hosts.every((h) => typeof (h as { ssh?: unknown }).ssh === "string")) {
    throw new UserError(`distributed.hostfile ${path}: "hosts" must be a non-empty list of {"ssh": name, "ips": [address]}.`, 2);
  }
  const backend = typeof top.backend === "string" && top.backend !== "" ? top.backend : undefined;
  if (backend !== undefined && !BACKENDS.includes(backend as Backend)) {
    throw new UserError(`distributed.hostfile ${path}: backend "${backend}" is not one of ${BACKENDS.join(", ")}.`, 2);
  }
  return {
    ...(backend ? { backend: backend as Backend } : {}),
    envs: Array.isArray(top.envs) ? top.envs.map(String) : [],
    hosts: hosts.map((h: { ssh: string; ips?: unknown; rdma?: unknown }) => ({
      ssh: h.ssh,
      ips: Array.isArray(h.ips) ? h.ips.map(String) : [],
      ...(Array.isArray(h.rdma) ? { rdma: h.rdma as unknown[] } : {}),
    })),
  };
}

/** The ranks and settings of `distributed:` in pipeline.yaml (paths relative to the project root). */
export function resolveCluster(config: DistributedConfig, root: string): Cluster {
  const file = config.hostfile !== undefined ? readHostfile(resolve(root, config.hostfile)) : undefined;
  const hosts = file?.hosts ?? (config.hosts ?? []).map((h) => (typeof h === "string" ? { ssh: h, ips: isIp(h) ? [h] : [] } : { ssh: h.ssh, ips: [h.ip] }));
  return {
    backend: config.backend ?? file?.backend ?? "ring",
    envs: file?.envs ?? [],
    // Rank 0 is this machine: mlx.launch starts it locally when its ssh name is LOCAL.
    ranks: hosts.map((h, rank) => ({ ...h, rank, ssh: rank === 0 ? LOCAL : h.ssh })),
    ...(config.ssh_config !== undefined ? { sshConfig: resolve(root, config.ssh_config) } : {}),
    port: config.port,
    watchdogSeconds: config.watchdog,
  };
}

export function isLocal(rank: Rank): boolean {
  return rank.ssh === LOCAL;
}

/** Every host reached over ssh, once each, with the ranks it runs. */
export function remoteHosts(cluster: Cluster): Map<string, Rank[]> {
  const hosts = new Map<string, Rank[]>();
  for (const r of cluster.ranks.filter((r) => !isLocal(r))) hosts.set(r.ssh, [...(hosts.get(r.ssh) ?? []), r]);
  return hosts;
}

/** This machine's addresses, to check that rank 0's address is one of them. */
export function localAddresses(): Set<string> {
  const out = new Set<string>(["127.0.0.1", "::1"]);
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.add(a.address);
  return out;
}

/** Options for every ssh the pipeline runs: never prompt (a prompt would hang the build), give up quickly, notice a dead peer. */
function sshOptions(cluster: Cluster): string[] {
  return [
    ...(cluster.sshConfig ? ["-F", cluster.sshConfig] : []),
    ...["-o", "BatchMode=yes", "-o", "ConnectTimeout=8", "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"],
  ];
}

function realSsh(): string {
  const ssh = onPath("ssh");
  if (!ssh) throw new UserError("ssh is not on PATH: distributed training reaches the other hosts with it. Install OpenSSH's client.");
  return ssh;
}

export function shQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** Runs a POSIX sh script on a host (sent on stdin, so the login shell's dialect does not matter). */
export function sshScript(cluster: Cluster, host: string, script: string, timeoutMs = 20_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = execFile(realSsh(), [...sshOptions(cluster), host, "sh -s"], { timeout: timeoutMs, encoding: "utf8" }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : 255) : 0;
      done({ code, stdout, stderr: error?.killed ? `${stderr}(no answer within ${timeoutMs / 1000} s)` : stderr });
    });
    // ssh to an unreachable host exits before it reads the script; its exit code says so, so the broken pipe is no news.
    child.stdin?.on("error", () => {});
    child.stdin?.end(script);
  });
}

/** The per-user cache root on whichever host runs this (the rule of userCacheDir in paths.ts). */
const REMOTE_CACHE = '"${MLX_PIPELINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mlx-lora-pipeline}"';

/**
 * The environment lives in each host's own per-user cache, under the same name as here (the name is the digest
 * of the pinned requirements, the Python version and the platform), so the homes may differ between machines.
 */
function remoteVenv(info: ToolchainInfo): string {
  return `${REMOTE_CACHE}/venvs/${shQuote(basename(info.venv))}`;
}

/** What the guard asks each host in one ssh round trip: OS, memory, rsync, and the environment's versions. */
export function probeScript(info: ToolchainInfo | undefined): string {
  const env = info
    ? [
        `V=${remoteVenv(info)}`,
        'echo "venv=$V"',
        'if [ -f "$V/.complete" ] && [ -x "$V/bin/python" ]; then',
        `  "$V/bin/python" -c 'import importlib.metadata as m; print("versions=" + m.version("mlx") + " " + m.version("mlx-lm"))' 2>/dev/null`,
        "fi",
      ]
    : [];
  return [
    'echo "os=$(uname -s)"',
    "if [ -r /proc/meminfo ]; then",
    "  awk '/^MemTotal:/ {printf \"total=%.0f\\n\", $2 * 1024} /^MemAvailable:/ {printf \"available=%.0f\\n\", $2 * 1024}' /proc/meminfo",
    "else",
    '  echo "total=$(sysctl -n hw.memsize 2>/dev/null)"',
    "fi",
    'command -v rsync >/dev/null 2>&1 && echo "rsync=yes"',
    ...env,
    "exit 0",
  ].join("\n");
}

export function parseProbe(stdout: string): HostFacts {
  const kv = new Map(stdout.split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1).trim()] as const));
  const num = (k: string) => (Number(kv.get(k)) > 0 ? Number(kv.get(k)) : undefined);
  const [mlx, mlxLm] = (kv.get("versions") ?? "").split(" ");
  const total = num("total");
  const available = num("available");
  return {
    os: kv.get("os") ?? "unknown",
    ...(total !== undefined ? { totalBytes: total } : {}),
    ...(available !== undefined ? { availableBytes: available } : {}),
    rsync: kv.get("rsync") === "yes",
    ...(mlx && mlxLm ? { versions: { mlx, mlx_lm: mlxLm } } : {}),
    venv: kv.get("venv") ?? "",
  };
}

/** A folder with an `ssh` that adds the pipeline's options, put first on mlx.launch's PATH (it runs plain `ssh`). */
async function sshWrapper(cluster: Cluster, dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, "ssh");
  await writeFile(path, `#!/bin/sh\nexec ${[realSsh(), ...sshOptions(cluster)].map(shQuote).join(" ")} "$@"\n`);
  await chmod(path, 0o755);
  return dir;
}

/**
 * Copies files and folders to every other host at the same absolute paths (mlx.launch starts every rank with
 * the same command). rsync sends only what changed; folders are mirrored (--delete) so a shard removed here
 * is not loaded there.
 */
export async function syncToHosts<C>(ctx: RunCtx<C>, cluster: Cluster, binDir: string, folders: readonly string[], files: readonly string[]): Promise<void> {
  const hosts = [...remoteHosts(cluster).keys()];
  if (hosts.length === 0) return;
  const ssh = join(await sshWrapper(cluster, binDir), "ssh");
  await Promise.all(
    hosts.map(async (host) => {
      ctx.progress(`copying the model, data and scripts to ${host}`);
      for (const [paths, extra] of [
        [folders, ["--delete"]],
        [files, []],
      ] as const) {
        if (paths.length === 0) continue;
        const result = await ctx.exec("rsync", ["-aRL", ...extra, "-e", ssh, ...paths, `${host}:/`]);
        if (result.exitCode !== 0) throw new UserError(`copying to ${host} with rsync failed (${result.exitCode ?? result.signal}): ${result.tail.slice(-3).join(" / ")} (log: ${result.logPath})`);
      }
    }),
  );
}

/** Where each rank writes its pid (on its own host), so every rank can be found and stopped. */
export function pidDir(scratch: string): string {
  return join(scratch, "ranks");
}

/**
 * The program mlx.launch starts on every host: the environment's Python from that host's cache, with the
 * toolchain's variables (OpenBLAS preload) pointed into it, running the given arguments.
 */
function rankLauncher(info: ToolchainInfo): string {
  const exports = Object.entries(info.env).map(([k, v]) => `export ${k}=${v.split(info.venv).map(shQuote).join('"$V"')}`);
  return [`V=${remoteVenv(info)}`, ...exports, 'exec "$V/bin/python" "$@"'].join("; ");
}

export interface Launch {
  readonly command: string;
  readonly args: string[];
  readonly env: Record<string, string>;
}

/**
 * The mlx.launch command line for `args` (a script and its flags) on every rank, and its environment. `launcher`
 * is stages/py/mlx_launch.py: mlx.launch's own code without its busy wait.
 */
export async function launchCommand(cluster: Cluster, info: ToolchainInfo, scratch: string, rankEnv: Record<string, string>, launcher: string, args: readonly string[]): Promise<Launch> {
  const hostfile = join(scratch, "hosts.json");
  const hosts = cluster.ranks.map((r) => ({ ssh: r.ssh, ips: r.ips, ...(r.rdma ? { rdma: r.rdma } : {}) }));
  await writeFile(hostfile, JSON.stringify({ backend: cluster.backend, envs: cluster.envs, hosts }, null, 2) + "\n");
  const bin = remoteHosts(cluster).size > 0 ? await sshWrapper(cluster, join(scratch, "bin")) : undefined;
  return {
    command: venvPython(info.venv),
    args: [
      launcher,
      "--hostfile",
      hostfile,
      "--backend",
      cluster.backend,
      "--starting-port",
      String(cluster.port),
      // Remote ranks get only what --env passes; local ones inherit mlx.launch's environment as well.
      ...Object.entries(rankEnv).flatMap(([k, v]) => ["--env", `${k}=${v}`]),
      "--",
      "/bin/sh",
      "-c",
      rankLauncher(info),
      "sh",
      ...args,
    ],
    env: { ...rankEnv, ...(bin ? { PATH: `${bin}:${process.env.PATH ?? ""}` } : {}) },
  };
}

/** "[WARN] Node with rank 1 exited with code 1": what mlx.launch says of a rank that failed (it exits 0 itself). */
export function failedRanks(lines: readonly string[]): string[] {
  return lines.map((l) => /Node with rank (\d+) (exited with code -?\d+|was killed)/.exec(l)).filter((m): m is RegExpExecArray => m !== null).map((m) => `rank ${m[1]} ${m[2]}`);
}

/**
 * Stops every rank that outlived the launcher, on every host, by the pid it wrote (checked to still be the
 * training script, so a reused pid is left alone). Returns the ranks it had to stop.
 */
export async function stopStrayRanks(cluster: Cluster, scratch: string, script: string): Promise<string[]> {
  const dir = pidDir(scratch);
  const stopScript = (ranks: readonly Rank[]) =>
    [
      ...ranks.map(
        (r) =>
          `f=${shQuote(join(dir, `rank-${r.rank}.pid`))}; if [ -f "$f" ]; then p=$(cat "$f"); ` +
          `if ps -p "$p" -o command= 2>/dev/null | grep -qF ${shQuote(basename(script))}; then kill -9 "$p" && echo "stopped=${r.rank}"; fi; rm -f "$f"; fi`,
      ),
      "exit 0",
    ].join("\n");
  const local = cluster.ranks.filter(isLocal);
  const answers = await Promise.all([
    new Promise<string>((done) => {
      const child = execFile("sh", ["-s"], { encoding: "utf8", timeout: 20_000 }, (_e, stdout) => done(stdout ?? ""));
      child.stdin?.on("error", () => {}); // a shell that died unread stopped nothing: its empty answer says so
      child.stdin?.end(stopScript(local));
    }),
    ...[...remoteHosts(cluster)].map(async ([host, ranks]) => (await sshScript(cluster, host, stopScript(ranks))).stdout),
  ]);
  return answers.flatMap((out) => [...out.matchAll(/^stopped=(\d+)$/gm)].map((m) => `rank ${m[1]} (${cluster.ranks[Number(m[1])]?.ssh ?? "?"})`));
}

/** The last lines of a launch, for a failure message. */
export function tailOf(result: ExecResult, lines = 12): string {
  return result.tail.slice(-lines).map((l) => `    ${l}`).join("\n");
}
