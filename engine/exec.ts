// Subprocesses: own process group (so Ctrl-C can kill a tool and its children), output streamed line by
// line into a log file and a callback, never accumulated in memory.
import { createWriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { stripVTControlCharacters } from "node:util";
import type { ExecOptions, ExecResult } from "./types.ts";
import { UserError } from "./types.ts";

const TAIL_LINES = 40;

/** A zx output store that keeps nothing: the log file is the record. */
const discard = () => {
  const sink = Object.assign([] as string[], { push: () => 0 });
  return sink;
};

/** Splits a byte stream into lines on \n and \r (progress bars redraw with \r). */
class LineSplitter {
  private rest = "";
  constructor(private readonly emit: (line: string) => void) {}
  push(chunk: string): void {
    const parts = (this.rest + chunk).split(/\r\n|\r|\n/);
    this.rest = parts.pop() ?? "";
    for (const p of parts) this.emit(p);
  }
  end(): void {
    if (this.rest) this.emit(this.rest);
    this.rest = "";
  }
}

export async function execLogged(
  command: string,
  args: readonly string[],
  logPath: string,
  signal: AbortSignal,
  options: ExecOptions = {},
): Promise<ExecResult> {
  await mkdir(dirname(logPath), { recursive: true });
  const log = createWriteStream(logPath, { flags: "a" });
  log.write(`$ ${command} ${args.join(" ")}\n`);
  const tail: string[] = [];
  const onLine = (raw: string) => {
    const line = stripVTControlCharacters(raw);
    log.write(line + "\n");
    tail.push(line);
    if (tail.length > TAIL_LINES) tail.shift();
    options.onLine?.(line);
  };
  const out = new LineSplitter(onLine);
  const err = new LineSplitter(onLine);
  // An undefined value removes a variable the parent has (e.g. HF_HUB_OFFLINE for a download).
  const merged: Record<string, string | undefined> = { ...process.env, PYTHONUNBUFFERED: "1", NO_COLOR: "1", TERM: "dumb", ...options.env };
  const env = Object.fromEntries(Object.entries(merged).filter(([, v]) => v !== undefined));
  // zx is loaded on first use: a no-op build never starts a process and should not pay for it.
  const { $ } = await import("zx");
  const proc = $({
    cwd: options.cwd,
    env: env as NodeJS.ProcessEnv,
    nothrow: true,
    quiet: true,
    verbose: false,
    detached: true,
    store: { stdout: discard(), stderr: discard(), stdall: discard() },
  })`${command} ${args}`;
  const killGroup = () => {
    const pid = proc.child?.pid;
    if (pid !== undefined) {
      try {
        process.kill(-pid, "SIGTERM");
      } catch {
        // Already gone.
      }
    }
  };
  signal.addEventListener("abort", killGroup, { once: true });
  options.signal?.addEventListener("abort", killGroup, { once: true });
  proc.stdout.on("data", (d: Buffer) => out.push(d.toString("utf8")));
  proc.stderr.on("data", (d: Buffer) => err.push(d.toString("utf8")));
  const result = await proc;
  signal.removeEventListener("abort", killGroup);
  options.signal?.removeEventListener("abort", killGroup);
  out.end();
  err.end();
  log.write(`# exit ${result.exitCode ?? result.signal}\n`);
  await new Promise<void>((resolve) => log.end(resolve));
  return { exitCode: result.exitCode, signal: result.signal, logPath, tail };
}

/** Throws a UserError with the tool's last output lines and the log path unless it exited 0. */
export function assertSuccess(result: ExecResult, what: string, lines = 15): void {
  if (result.exitCode === 0) return;
  const how = result.signal ? `was killed by ${result.signal}` : `exited with code ${result.exitCode}`;
  const tail = result.tail.slice(-lines).map((l) => `    ${l}`).join("\n");
  throw new UserError(`${what} ${how}. Last lines of ${result.logPath}:\n${tail}`);
}
