// A real OpenSSH server for the distributed tests, on a free 127.0.0.1 port with keys generated for the test,
// and an ssh_config naming the hosts the tests reach through it. Needs Debian's openssh-server (.ci/run
// installs it).
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const SSHD = ["/usr/sbin/sshd", "/usr/bin/sshd"].find(existsSync);

/** A port nothing listens on right now (the kernel's pick). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

/** `count` consecutive free ports (the ring backend listens on port + rank). */
export async function freePorts(count: number): Promise<number> {
  for (;;) {
    const base = 20000 + Math.floor(Math.random() * 30000);
    const free = await Promise.all(
      Array.from({ length: count }, (_, i) => new Promise<boolean>((resolve) => {
        const server = createServer();
        server.once("error", () => resolve(false));
        server.listen(base + i, "127.0.0.1", () => server.close(() => resolve(true)));
      })),
    );
    if (free.every(Boolean)) return base;
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => (socket.destroy(), resolve(true)));
    socket.once("error", () => resolve(false));
  });
}

export interface TestSshd {
  readonly dir: string;
  /** ssh_config with hosts `rank1` (this sshd), `noenv` (this sshd, with an empty tool cache) and `closed` (a closed port). */
  readonly sshConfig: string;
  /** How many logins the server accepted so far. */
  logins(): number;
  stop(): void;
}

export async function startSshd(): Promise<TestSshd> {
  if (!SSHD) throw new Error("sshd not found: install Debian's openssh-server (apt-get install openssh-server; .ci/run does it).");
  const dir = mkdtempSync(join(tmpdir(), "mlx-pipeline-sshd-"));
  for (const key of ["host", "user"]) execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, key)]);
  writeFileSync(join(dir, "authorized_keys"), readFileSync(join(dir, "user.pub")), { mode: 0o600 });
  // sshd started as root checks its privilege separation directory, which a container may not have.
  if (process.getuid?.() === 0) mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  const port = await freePort();
  const closed = await freePort();
  const empty = join(dir, "empty-cache");
  mkdirSync(empty);
  writeFileSync(
    join(dir, "sshd_config"),
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${join(dir, "host")}`,
      `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      "StrictModes no",
      "LogLevel VERBOSE",
      `PidFile ${join(dir, "sshd.pid")}`,
      // Lets the `noenv` host stand for a machine whose per-user cache has no environment.
      "AcceptEnv MLX_PIPELINE_CACHE",
    ].join("\n") + "\n",
  );
  const client = (name: string, p: number, extra: string[] = []) =>
    [`Host ${name}`, "  HostName 127.0.0.1", `  Port ${p}`, `  IdentityFile ${join(dir, "user")}`, "  IdentitiesOnly yes", "  StrictHostKeyChecking no", "  UserKnownHostsFile /dev/null", "  LogLevel ERROR", ...extra.map((l) => `  ${l}`)].join("\n");
  const sshConfig = join(dir, "ssh_config");
  writeFileSync(sshConfig, [client("rank1", port), client("noenv", port, [`SetEnv MLX_PIPELINE_CACHE=${empty}`]), client("closed", closed)].join("\n") + "\n");
  const log = join(dir, "sshd.log");
  const server: ChildProcess = spawn(SSHD, ["-D", "-f", join(dir, "sshd_config"), "-E", log], { stdio: "ignore" });
  const started = Date.now();
  while (!(await accepts(port))) {
    if (server.exitCode !== null || Date.now() - started > 15_000) {
      throw new Error(`sshd did not start (exit ${server.exitCode}): ${existsSync(log) ? readFileSync(log, "utf8") : ""}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    dir,
    sshConfig,
    logins: () => (existsSync(log) ? readFileSync(log, "utf8").match(/Accepted publickey/g)?.length ?? 0 : 0),
    stop: () => server.kill("SIGTERM"),
  };
}
