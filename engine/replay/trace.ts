// What this process reads, changes and starts from now on, through node's fs and fs/promises, child_process
// and worker_threads, and what it prints: with the command line, the environment and the code, everything a
// no-op's answer can depend on. The modules' exports are wrapped and their ES module bindings synced
// (module.syncBuiltinESMExports), so `import { readFile } from "node:fs/promises"` is traced too, whenever the
// importing module was loaded.
import { createRequire, syncBuiltinESMExports } from "node:module";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Stream } from "./record.ts";

const require = createRequire(import.meta.url);

/** Calls whose first argument is a path they read (or look at). */
const READS = [
  "access", "exists", "lstat", "opendir", "readdir", "readFile", "readlink", "realpath", "stat", "statfs", "watch", "watchFile", "createReadStream",
];
/** Calls that change what is at their path (and the second path of a rename, copy or link). */
const CHANGES = [
  "appendFile", "chmod", "chown", "copyFile", "cp", "lchmod", "lchown", "link", "lutimes", "mkdir", "mkdtemp", "rename", "rm", "rmdir",
  "symlink", "truncate", "unlink", "utimes", "writeFile", "createWriteStream",
];
const SPAWNS = ["spawn", "spawnSync", "exec", "execSync", "execFile", "execFileSync", "fork"];

/** Past these, the run is no no-op worth a record (an hour of training prints and reads far more): tracing keeps nothing more. */
const MAX_READS = 100_000;
const MAX_OUTPUT_CHARS = 1 << 20;

export interface TraceOutcome {
  /** Absolute paths read, looked at, or opened. */
  readonly reads: ReadonlySet<string>;
  /** Whether anything on disk was changed through node's fs (by path, or opened for writing). */
  readonly changed: boolean;
  /** Whether a child process or a worker thread was started: what they read is not traced. */
  readonly spawned: boolean;
  /** Whether it read or printed more than a no-op does (MAX_READS, MAX_OUTPUT_CHARS): then `reads` and `output` are incomplete. */
  readonly overflowed: boolean;
  readonly output: readonly (readonly [Stream, string])[];
  /** When tracing started (ms since the epoch): a path changed since may have changed while it was read. */
  readonly startedMs: number;
}

export interface Trace {
  /** Stops tracing (the wrapped functions are put back) and says what happened meanwhile. */
  stop(): TraceOutcome;
}

type Fn = (...args: unknown[]) => unknown;

function pathOf(arg: unknown): string | undefined {
  if (typeof arg === "string") return resolve(arg);
  if (arg instanceof URL) return arg.protocol === "file:" ? fileURLToPath(arg) : undefined;
  if (Buffer.isBuffer(arg)) return resolve(arg.toString());
  return undefined; // a file descriptor: its path was traced when it was opened
}

/** Whether open()'s flags only read: "r", "rs", or numeric flags without write access. */
function readOnly(flags: unknown, constants: { O_WRONLY: number; O_RDWR: number }): boolean {
  if (typeof flags === "number") return (flags & (constants.O_WRONLY | constants.O_RDWR)) === 0;
  return flags === undefined || flags === null || flags === "r" || flags === "rs" || flags === "sr";
}

export function startTrace(): Trace {
  const reads = new Set<string>();
  const output: [Stream, string][] = [];
  let changed = false;
  let spawned = false;
  let overflowed = false;
  let printed = 0;
  const restores: (() => void)[] = [];

  const wrap = (target: Record<string, unknown>, name: string, before: (args: unknown[]) => void) => {
    const original = target[name];
    if (typeof original !== "function") return;
    const wrapped = function (this: unknown, ...args: unknown[]) {
      before(args);
      return (original as Fn).apply(this, args);
    };
    // Keep what hangs off the function: realpathSync.native, util.promisify.custom.
    for (const key of Reflect.ownKeys(original)) if (!(key in wrapped)) Reflect.defineProperty(wrapped, key, Reflect.getOwnPropertyDescriptor(original, key)!);
    target[name] = wrapped;
    restores.push(() => (target[name] = original));
  };
  const read = (args: unknown[]) => {
    const path = pathOf(args[0]);
    if (!path || overflowed) return;
    reads.add(path);
    overflowed = reads.size > MAX_READS;
  };
  const change = () => void (changed = true);

  const fs = require("node:fs") as Record<string, unknown>;
  const promises = require("node:fs/promises") as Record<string, unknown>;
  for (const api of [fs, promises]) {
    for (const name of READS) for (const variant of [name, `${name}Sync`]) wrap(api, variant, read);
    for (const name of CHANGES) for (const variant of [name, `${name}Sync`]) wrap(api, variant, change);
    for (const variant of ["open", "openSync"]) {
      wrap(api, variant, (args) => {
        read(args);
        if (!readOnly(args[1], fs.constants as { O_WRONLY: number; O_RDWR: number })) changed = true;
      });
    }
  }
  const childProcess = require("node:child_process") as Record<string, unknown>;
  for (const name of SPAWNS) wrap(childProcess, name, () => void (spawned = true));
  const threads = require("node:worker_threads") as { Worker: new (...args: never[]) => object };
  const Worker = threads.Worker;
  threads.Worker = class extends Worker {
    constructor(...args: never[]) {
      spawned = true;
      super(...args);
    }
  };
  restores.push(() => (threads.Worker = Worker));
  for (const [stream, out] of [[1, process.stdout], [2, process.stderr]] as const) {
    const write = out.write;
    out.write = function (this: unknown, chunk: unknown, ...rest: unknown[]) {
      if (!overflowed) {
        const text = typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString("utf8");
        output.push([stream, text]);
        printed += text.length;
        overflowed = printed > MAX_OUTPUT_CHARS;
      }
      return (write as Fn).call(this, chunk, ...rest) as boolean;
    } as typeof out.write;
    restores.push(() => (out.write = write));
  }
  syncBuiltinESMExports();
  const startedMs = Date.now();
  return {
    stop() {
      for (const restore of restores.reverse()) restore();
      syncBuiltinESMExports();
      return { reads, changed, spawned, overflowed, output, startedMs };
    },
  };
}
