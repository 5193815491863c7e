// Every test run gets its own temp root, removed at the end: e2e projects hold models and GGUFs
// (gigabytes per run), and a run must not fill the disk of the machine it runs on. A run that was killed
// never reaches its teardown, so each run first removes the roots of runs whose process is gone.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { alive } from "./helpers/cli.ts";

const PREFIX = "mlx-pipeline-tests-";
const OWNER = "owner.pid";

/** Roots of earlier runs whose vitest process has exited; a root without an owner file is left alone. */
function removeAbandonedRoots(parent: string): void {
  for (const name of readdirSync(parent)) {
    if (!name.startsWith(PREFIX)) continue;
    let pid: number;
    try {
      pid = Number(readFileSync(join(parent, name, OWNER), "utf8"));
    } catch {
      continue;
    }
    if (Number.isSafeInteger(pid) && pid > 0 && !alive(pid)) rmSync(join(parent, name), { recursive: true, force: true });
  }
}

export default function setup(): () => void {
  const parent = tmpdir();
  removeAbandonedRoots(parent);
  const root = mkdtempSync(join(parent, PREFIX));
  writeFileSync(join(root, OWNER), String(process.pid));
  // MLX compiles its fused CPU kernels with the system's C++ compiler and caches the libraries in $TMPDIR/mlx,
  // keyed by its version and the kernel: that cache is the machine's, as it is for a user's builds. A fresh one
  // per run cost ~80 compiler runs (~40 core-seconds) in every run.
  mkdirSync(join(parent, "mlx"), { recursive: true });
  symlinkSync(join(parent, "mlx"), join(root, "mlx"));
  // Workers, the CLI and the Python tools they start all take their temp folder from TMPDIR.
  process.env.TMPDIR = root;
  // The node processes the tests start (workers, each CLI run, llama.cpp's child) talk to loopback only. A machine
  // whose NODE_EXTRA_CA_CERTS names the system bundle (as the machines here do) makes each of them parse ~140 certificates at
  // start: 0.4 G instructions, a quarter of a warm no-op's, per process.
  delete process.env.NODE_EXTRA_CA_CERTS;
  return () => rmSync(root, { recursive: true, force: true });
}
