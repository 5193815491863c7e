// Subprocesses: own process group (so Ctrl-C can kill a tool and its children), output streamed line by
// line into a log file and a callback, never accumulated in memory. Every tool dies with this process, even
// when it is killed with -9 or by the OOM killer and no handler runs: see WRAPPER.
import { createWriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { stripVTControlCharacters } from "node:util";
import { zxCore } from "./packages.ts";
import type { ExecOptions, ExecResult } from "./types.ts";

const TAIL_LINES = 40;

/** A zx output store that keeps nothing: the log file is the record. */
const discard = () => Object.assign([] as string[], { push: () => 0 });

/**
 * Runs the tool ("$@") under a watcher that reads fd 3, the child's end of a pipe whose other end only this
 * process holds. However this process dies, the kernel closes its end, the read returns, and the watcher
 * kills the whole process group: SIGTERM, then SIGKILL for what is left 2 s later. (Linux's
 * PR_SET_PDEATHSIG is out of reach from Node, and macOS has nothing like it; a pipe works on both.)
 * A cancel closes that pipe too. The watcher ignores SIGTERM, so the SIGKILL comes whatever the group got: a tool
 * that hangs in its SIGTERM handler (llama-server's shutdown can) would keep the build waiting forever.
 * A tool killed by a signal is re-raised, so the caller still sees "killed by SIGKILL" (an OOM kill).
 */
const WRAPPER = `"$@" 3<&- &
child=$!
( trap '' TERM; read -r _ <&3; kill -TERM 0; sleep 2; kill -KILL 0 ) </dev/null >/dev/null 2>&1 &
watcher=$!
exec 3<&-
wait "$child"
status=$?
kill -KILL "$watcher" 2>/dev/null
if [ "$status" -gt 128 ] && [ "$status" -lt 160 ]; then kill -s "$(kill -l "$status")" $$; fi
exit "$status"`;

/** Process groups of the tools running now; the run lock records them (see RunLock). */
const groups = new Set<number>();
const groupWatchers = new Set<(groups: readonly number[]) => void>();

export function watchChildGroups(watcher: (groups: readonly number[]) => void): () => void {
  groupWatchers.add(watcher);
  return () => groupWatchers.delete(watcher);
}

function groupsChanged(): void {
  for (const w of groupWatchers) w([...groups]);
}

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
  const merged: Record<string, string | undefined> = { ...process.env, NO_COLOR: "1", TERM: "dumb", ...options.env };
  const env = Object.fromEntries(Object.entries(merged).filter(([, v]) => v !== undefined));
  // zx is loaded on first use: a no-op build never starts a process and should not pay for it.
  const { $ } = zxCore();
  // An abort before the listeners below exist would never fire: a signal aborted by now (a node cancelled
  // while it prepared, during the awaits above) starts nothing, and reads as a tool killed at once.
  if (signal.aborted || options.signal?.aborted) {
    log.write("# not started: cancelled before it started\n");
    await new Promise<void>((resolve) => log.end(resolve));
    return { exitCode: null, signal: "SIGTERM", logPath, tail: [] };
  }
  const proc = $({
    cwd: options.cwd,
    env: env as NodeJS.ProcessEnv,
    nothrow: true,
    quiet: true,
    verbose: false,
    detached: true, // a session and process group of its own, led by the wrapper
    stdio: ["ignore", "pipe", "pipe", "pipe"], // fd 3: the pipe the wrapper watches
    store: { stdout: discard(), stderr: discard(), stdall: discard() },
  })`sh -c ${WRAPPER} sh ${command} ${args}`;
  const pid = proc.child?.pid;
  if (pid !== undefined) {
    groups.add(pid);
    groupsChanged();
  }
  /** SIGKILL: a tool stuck in native code may not act on SIGTERM. */
  const killGroup = () => {
    if (pid === undefined) return;
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  };
  // A cancel closes the watcher's pipe, as this process's death would (see WRAPPER).
  const onAbort = () => proc.child?.stdio[3]?.destroy();
  signal.addEventListener("abort", onAbort, { once: true });
  options.signal?.addEventListener("abort", onAbort, { once: true });
  let timedOut = false;
  const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => ((timedOut = true), killGroup()), options.timeoutMs);
  proc.stdout.on("data", (d: Buffer) => out.push(d.toString("utf8")));
  proc.stderr.on("data", (d: Buffer) => err.push(d.toString("utf8")));
  const result = await proc.finally(() => {
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort);
    options.signal?.removeEventListener("abort", onAbort);
    if (pid !== undefined) {
      groups.delete(pid);
      groupsChanged();
    }
  });
  out.end();
  err.end();
  log.write(`# exit ${result.exitCode ?? result.signal}${timedOut ? ` (timed out after ${options.timeoutMs} ms)` : ""}\n`);
  await new Promise<void>((resolve) => log.end(resolve));
  return { exitCode: result.exitCode, signal: result.signal, logPath, tail, ...(timedOut ? { timedOut } : {}) };
}
