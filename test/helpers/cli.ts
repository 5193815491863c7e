// Running one of this repository's CLIs as a subprocess, the way the tests and benchmarks do: as
// `node --import tsx FILE`, with no tsx wrapper in between, so the child's pid is the engine's own.
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

export const REPO = resolve(import.meta.dirname, "../..");
export const TSX_ARGS = ["--import", pathToFileURL(join(REPO, "node_modules/tsx/dist/loader.mjs")).href] as const;

export interface CliRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout parsed, when it is one JSON document (a --json run); undefined otherwise. */
  readonly json: unknown;
  readonly ms: number;
}

export interface CliOptions {
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
  /** Before tsx's loader, e.g. another `--import` hook. */
  readonly nodeArgs?: readonly string[];
}

export function spawnCli(script: string, args: readonly string[], options: CliOptions): ChildProcess {
  return spawn(process.execPath, [...(options.nodeArgs ?? []), ...TSX_ARGS, script, ...args], { cwd: options.cwd, env: options.env, stdio: ["ignore", "pipe", "pipe"] });
}

/** Waits for a spawned CLI to exit and collects what it printed. */
export function collect(child: ChildProcess): Promise<CliRun> {
  const started = Date.now();
  return new Promise((resolvePromise) => {
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code, signal) => {
      let json: unknown;
      try {
        json = JSON.parse(stdout);
      } catch {
        // Not a --json run, or killed before it printed.
      }
      resolvePromise({ code, signal, stdout, stderr, json, ms: Date.now() - started });
    });
  });
}

/**
 * The --json document a run printed. A run that printed none (a crash, a kill, a stray line on stdout) throws,
 * naming how it ended and what it said: a test must never mistake a crash for an empty build.
 */
export function requireJson(run: Pick<CliRun, "code" | "signal" | "stdout" | "stderr" | "json">): unknown {
  if (run.json !== undefined) return run.json;
  const ended = run.signal ? `was killed by ${run.signal}` : `exited ${run.code}`;
  throw new Error(`the CLI printed no JSON document (it ${ended}).\nstdout: ${run.stdout.slice(-2000) || "(empty)"}\nstderr ends:\n${run.stderr.slice(-4000)}`);
}

/** Resolves once `predicate` holds, polling every 100 ms, or rejects after `ms`. */
export async function waitFor(predicate: () => boolean, ms = 300_000): Promise<void> {
  const start = Date.now();
  while (!predicate()) {
    if (Date.now() - start > ms) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Whether a process runs (a zombie, dead but not yet reaped, does not). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return true; // no /proc (macOS): kill(0) is the answer
  }
}
