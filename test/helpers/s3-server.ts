// A real S3 server on 127.0.0.1 for the remote-cache tests: moto's server (PyPI `moto[server]`, pinned),
// installed once per user into its own virtual environment beside the toolchains, started and stopped here.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { userCacheDir } from "../../stages/lib/toolchain/paths.ts";

export const MOTO_VERSION = "5.2.5";
// The tests' own S3 client: its notice about future Node requirements is noise here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
const VENV = userCacheDir("venvs", `moto-${MOTO_VERSION}`);
/** moto_server run as `python -m moto.server`: the venv's scripts name the temp folder it was made in. */
const PYTHON = join(VENV, "bin", "python");

/** Installs moto once per user (the temp folder + rename lets concurrent test files race safely). */
function ensureMoto(): string {
  if (existsSync(PYTHON)) return PYTHON;
  const tmp = `${VENV}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(userCacheDir("venvs"), { recursive: true });
  execFileSync(process.env.PYTHON ?? "python3", ["-m", "venv", tmp], { stdio: "ignore" });
  execFileSync(join(tmp, "bin", "python"), ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", `moto[server]==${MOTO_VERSION}`], { stdio: "inherit" });
  try {
    renameSync(tmp, VENV);
  } catch {
    rmSync(tmp, { recursive: true, force: true }); // another test file installed it meanwhile: use theirs
  }
  return PYTHON;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface S3Server {
  readonly endpoint: string;
  /** AWS credentials moto accepts, and nothing from the user's ~/.aws. */
  readonly env: Record<string, string>;
  stop(): Promise<void>;
}

export async function startS3(): Promise<S3Server> {
  const python = ensureMoto();
  const port = await freePort();
  const child: ChildProcess = spawn(python, ["-m", "moto.server", "-H", "127.0.0.1", "-p", String(port)], { stdio: "ignore" });
  const endpoint = `http://127.0.0.1:${port}`;
  const started = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`moto_server exited with ${child.exitCode}`);
    const up = await fetch(`${endpoint}/moto-api/`).then(() => true, () => false);
    if (up) break;
    if (Date.now() - started > 60_000) throw new Error("moto_server did not start within 60 s");
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    endpoint,
    env: {
      AWS_ACCESS_KEY_ID: "testing",
      AWS_SECRET_ACCESS_KEY: "testing",
      AWS_REGION: "us-east-1",
      AWS_CONFIG_FILE: "/nonexistent/aws-config",
      AWS_SHARED_CREDENTIALS_FILE: "/nonexistent/aws-credentials",
    },
    stop: () =>
      new Promise((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}
