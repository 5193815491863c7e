// One build at a time per project folder (and one creator per shared environment). The lock file says who
// holds it: host, boot, pid and the pid's start time, so a pid handed out again (after a reboot, or by a
// restarted container's pid namespace, which may even hand this very process the holder's pid) is not
// taken for the holder. A dead holder's lock is taken over atomically, and its tools' process groups are
// killed first: the new build must not share a scratch folder with an orphan of the old one.
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { linkSync, mkdirSync, readFileSync, renameSync, rmdirSync, rmSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { hostname, platform, uptime } from "node:os";
import { dirname } from "node:path";
import { fsyncDirSync, running, writeSyncedSync } from "./durable.ts";
import { sha256 } from "./digest.ts";
import { watchChildGroups } from "./exec.ts";
import { UserError } from "./types.ts";

interface Holder {
  readonly pid: number;
  readonly command?: string;
  readonly since?: string;
  readonly host?: string;
  readonly boot?: string;
  readonly start?: string;
  /** Tells this acquisition from every other, even by the same process. */
  readonly nonce?: string;
}

/** A takeover claim left by a build killed while taking over (it holds one for microseconds) is stale after this. */
const STALE_CLAIM_MS = 10_000;

/** This boot: the kernel's boot id on Linux; elsewhere the boot time, to the second. */
function bootId(): string {
  if (platform() === "linux") {
    try {
      return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
    } catch {
      // Fall through to the boot time.
    }
  }
  return `~${Math.round(Date.now() / 1000 - uptime())}`;
}

function sameBoot(a: string, b: string): boolean {
  // Boot times computed as now - uptime may differ by a second between two readings.
  return a.startsWith("~") && b.startsWith("~") ? Math.abs(Number(a.slice(1)) - Number(b.slice(1))) <= 2 : a === b;
}

/**
 * When a process started: on Linux its start time in clock ticks since boot (/proc/<pid>/stat, field 22),
 * exact; elsewhere epoch milliseconds from `ps`, to the second. Undefined when it cannot be read.
 */
function processStart(pid: number): string | undefined {
  try {
    if (platform() === "linux") {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      // The command name (field 2) may hold spaces and parentheses: count fields after its closing one.
      return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
    }
    if (pid === process.pid) return String(Math.round(performance.timeOrigin));
    const started = Date.parse(execFileSync("ps", ["-o", "lstart=", "-p", String(pid)], { encoding: "utf8" }).trim());
    return Number.isNaN(started) ? undefined : String(started);
  } catch {
    return undefined;
  }
}

function sameStart(recorded: string, now: string): boolean {
  return platform() === "linux" ? recorded === now : Math.abs(Number(recorded) - Number(now)) < 2000;
}

/** Whether the holder still runs: "elsewhere" when it ran on another host, which this one cannot ask. */
function holderState(h: Holder): "live" | "dead" | "elsewhere" {
  if (h.host !== undefined && h.host !== hostname()) return "elsewhere";
  if (h.boot !== undefined && !sameBoot(h.boot, bootId())) return "dead";
  if (!running(h.pid)) return "dead";
  // A lock from before start times were recorded: this process's own pid cannot be the holder.
  if (h.start === undefined) return h.pid === process.pid ? "dead" : "live";
  const now = processStart(h.pid);
  return now === undefined || sameStart(h.start, now) ? "live" : "dead";
}

function parseHolder(text: string): Holder | undefined {
  try {
    const h = JSON.parse(text) as Holder;
    return Number.isInteger(h.pid) ? h : undefined;
  } catch {
    return undefined; // empty or torn: written by a tool that did not sync it, and killed
  }
}

const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** A tool's process group, by its leader (the tool's wrapper) and the leader's start time. */
interface Group {
  readonly pgid: number;
  readonly start?: string;
}

/** Kills the process groups of the tools a dead holder was running (recorded beside the lock), and waits for them. */
function killOrphans(path: string, dead: Holder): void {
  if (dead.nonce === undefined || dead.host !== hostname() || dead.boot === undefined || !sameBoot(dead.boot, bootId())) return;
  let recorded: { nonce?: string; groups?: Group[] } = {};
  try {
    recorded = JSON.parse(readFileSync(groupsPath(path), "utf8")) as typeof recorded;
  } catch {
    return;
  }
  if (recorded.nonce !== dead.nonce) return;
  const signal = (g: number, s: NodeJS.Signals | 0) => {
    try {
      process.kill(-g, s);
      return true;
    } catch {
      return false;
    }
  };
  // A group whose leader is gone keeps its id while any member lives, so its id cannot name another group;
  // a live leader must be the same process (its pid not handed out again) for its group to be the tool's.
  const groups = (recorded.groups ?? [])
    .filter((g) => Number.isInteger(g.pgid) && g.pgid > 1)
    .filter((g) => {
      if (!running(g.pgid)) return true;
      const now = processStart(g.pgid);
      return g.start !== undefined && now !== undefined && sameStart(g.start, now);
    })
    .map((g) => g.pgid);
  for (const g of groups) signal(g, "SIGKILL");
  for (let waited = 0; waited < 5000 && groups.some((g) => signal(g, 0)); waited += 20) sleepSync(20);
}

const groupsPath = (path: string) => `${path}.groups`;

export class RunLock {
  private readonly unwatch: () => void;

  private constructor(
    private readonly path: string,
    private readonly nonce: string,
  ) {
    // The process groups of the tools this process runs, so that a build taking over after a kill -9 of
    // this one can make sure they are gone. Not synced: after a power loss they are gone anyway.
    this.unwatch = watchChildGroups((pgids) => {
      const groups: Group[] = pgids.map((pgid) => ({ pgid, start: processStart(pgid) }));
      const tmp = `${groupsPath(path)}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify({ nonce, groups }));
      renameSync(tmp, groupsPath(path));
    });
  }

  static acquire(path: string, what: string): RunLock {
    const dir = dirname(path);
    mkdirSync(dir, { recursive: true });
    const me: Holder = {
      pid: process.pid,
      command: what,
      since: new Date().toISOString(),
      host: hostname(),
      boot: bootId(),
      start: processStart(process.pid),
      nonce: randomUUID(),
    };
    // Written whole and synced under a private name, then linked into place: link() fails when the lock
    // exists, and no reader or power loss ever sees a lock half-written.
    const tmp = `${path}.${process.pid}.${me.nonce}.tmp`;
    writeSyncedSync(tmp, JSON.stringify(me));
    try {
      for (let attempt = 0; attempt < 50; attempt++) {
        try {
          linkSync(tmp, path);
          fsyncDirSync(dir);
          return new RunLock(path, me.nonce!);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
        }
        let text: string;
        try {
          text = readFileSync(path, "utf8");
        } catch {
          continue; // released meanwhile
        }
        const holder = parseHolder(text);
        const state = holder ? holderState(holder) : "dead";
        if (holder && state === "live") {
          throw new UserError(
            `Another build holds ${path} (pid ${holder.pid}: ${holder.command ?? "?"}${holder.since ? `, since ${holder.since}` : ""}). ` +
              `Wait for it to finish, or stop it with \`kill ${holder.pid}\`.`,
          );
        }
        if (holder && state === "elsewhere") {
          throw new UserError(
            `Another build holds ${path} (pid ${holder.pid} on host ${holder.host}, not this one: ${holder.command ?? "?"}). ` +
              `Wait for it to finish; if no build runs there any more, delete ${path}.`,
          );
        }
        if (holder) killOrphans(path, holder);
        RunLock.takeOver(path, text);
      }
      throw new UserError(`Could not take the lock ${path}: other builds kept taking it at the same moment. Try again.`);
    } finally {
      rmSync(tmp, { force: true });
    }
  }

  /**
   * Removes the dead lock whose text is `dead`, unless another build has replaced it meanwhile. Builds that
   * found the same dead lock race for one claim (mkdir succeeds once), so only one of them removes it and
   * none can remove the lock the winner then links in its place.
   */
  private static takeOver(path: string, dead: string): void {
    const claim = `${path}.takeover-${sha256(dead).slice(0, 16)}`;
    try {
      mkdirSync(claim);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const age = Date.now() - (statSync(claim, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > STALE_CLAIM_MS) rmSync(claim, { recursive: true, force: true });
      else sleepSync(20); // another build is taking it over now: see what it left
      return;
    }
    try {
      if (readFileSync(path, "utf8") === dead) unlinkSync(path);
    } catch {
      // Already gone.
    } finally {
      rmdirSync(claim);
    }
  }

  /** Removes the lock if it is still this one's (a lock taken over from this process is the taker's now). */
  release(): void {
    this.unwatch();
    try {
      if (parseHolder(readFileSync(this.path, "utf8"))?.nonce !== this.nonce) return;
      unlinkSync(this.path);
      rmSync(groupsPath(this.path), { force: true });
    } catch {
      // Not there any more.
    }
  }
}
