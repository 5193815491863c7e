// The run lock tells a live holder from a recycled pid, takes a dead holder's lock over exactly once, and
// makes sure the dead holder's tools are gone first.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { RunLock } from "../../engine/runlock.ts";
import { UserError } from "../../engine/types.ts";
import { alive, collect, REPO, TSX_ARGS, waitFor } from "../helpers/cli.ts";

const BOOT = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();

function lockPath(): string {
  return join(mkdtempSync(join(tmpdir(), "runlock-")), "build.lock");
}


/** A pid no process has now. */
function deadPid(): number {
  return spawnSync("true").pid!;
}

describe.concurrent("RunLock", () => {
  it("a lock naming this very process (a restarted container's pid namespace) is not taken for a live holder", () => {
    const path = lockPath();
    writeFileSync(path, JSON.stringify({ pid: process.pid, command: "before the restart", host: hostname(), boot: BOOT, start: "1", nonce: "x" }));
    const lock = RunLock.acquire(path, "test");
    expect(JSON.parse(readFileSync(path, "utf8"))).toMatchObject({ pid: process.pid, command: "test", host: hostname(), boot: BOOT });
    lock.release();
    expect(existsSync(path)).toBe(false);
    // The same with a lock written before start times were recorded.
    writeFileSync(path, JSON.stringify({ pid: process.pid, command: "old" }));
    RunLock.acquire(path, "test").release();
  });

  it("a recycled pid (a live, unrelated process) is not taken for the holder, and is left alone", async () => {
    const path = lockPath();
    const unrelated = spawn("sleep", ["30"], { stdio: "ignore" });
    try {
      writeFileSync(path, JSON.stringify({ pid: unrelated.pid, command: "long ago", host: hostname(), boot: BOOT, start: "1", nonce: "x" }));
      RunLock.acquire(path, "test").release();
      // Recorded in another boot: dead whatever runs under that pid now.
      writeFileSync(path, JSON.stringify({ pid: unrelated.pid, command: "before a reboot", host: hostname(), boot: "another-boot", start: "1", nonce: "y" }));
      RunLock.acquire(path, "test").release();
      expect(alive(unrelated.pid!)).toBe(true);
    } finally {
      unrelated.kill();
    }
  });

  it("a live holder is refused, naming its pid", () => {
    const path = lockPath();
    const lock = RunLock.acquire(path, "first");
    try {
      expect(() => RunLock.acquire(path, "second")).toThrow(UserError);
      expect(() => RunLock.acquire(path, "second")).toThrow(new RegExp(`pid ${process.pid}: first`));
    } finally {
      lock.release();
    }
  });

  it("builds taking over the same dead lock at the same moment: exactly one holds it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "runlock-race-"));
    const RACES = 100;
    const GAP_MS = 25;
    for (let i = 0; i < RACES; i++) {
      writeFileSync(join(dir, `${i}.lock`), JSON.stringify({ pid: deadPid(), command: "killed", host: hostname(), boot: BOOT, start: "1", nonce: `dead-${i}` }));
    }
    // Each taker races the others for every lock in turn, all starting each race at the same instant. The
    // start is set once every taker is ready, and each stays alive until every taker is done (a lock whose
    // holder exited may rightly be taken over again), so a loaded machine's slow start changes nothing.
    const script = join(dir, "taker.mts");
    writeFileSync(
      script,
      `import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { RunLock } from ${JSON.stringify(join(REPO, "engine/runlock.ts"))};
const [dir] = process.argv.slice(2);
const wait = new Int32Array(new SharedArrayBuffer(4));
const until = (file: string) => { while (!existsSync(file)) Atomics.wait(wait, 0, 0, 10); };
writeFileSync(dir + "/ready-" + process.pid, "");
until(dir + "/go");
const at = Number(readFileSync(dir + "/go", "utf8"));
let held = "";
for (let i = 0; i < ${RACES}; i++) {
  const start = at + i * ${GAP_MS};
  if (start - Date.now() > 2) Atomics.wait(wait, 0, 0, start - Date.now() - 2);
  while (Date.now() < start) {}
  try {
    RunLock.acquire(dir + "/" + i + ".lock", "taker"); // held until this process exits
    held += i + " ";
  } catch {}
}
writeFileSync(dir + "/done-" + process.pid, "");
until(dir + "/exit");
process.stdout.write(held);
`,
    );
    const procs = Array.from({ length: 3 }, () => spawn(process.execPath, [...TSX_ARGS, script, dir], { stdio: ["ignore", "pipe", "pipe"] }));
    const takers = procs.map((p) => collect(p));
    const count = (prefix: string) => readdirSync(dir).filter((n) => n.startsWith(prefix)).length;
    await waitFor(() => count("ready-") === 3, 60_000);
    writeFileSync(join(dir, "go"), String(Date.now() + 500));
    await waitFor(() => count("done-") === 3, 60_000);
    writeFileSync(join(dir, "exit"), "");
    const held = (await Promise.all(takers)).flatMap((r) => r.stdout.trim().split(" ").filter(Boolean).map(Number));
    const holders = Array.from({ length: RACES }, (_, i) => held.filter((h) => h === i).length);
    expect(holders.filter((n) => n !== 1), `holders per lock: ${holders.join("")}`).toEqual([]);
  }, 180_000);

  it("taking over a dead holder's lock kills the process groups of the tools it left running", async () => {
    const path = lockPath();
    // An orphaned tool: its group's leader (the dead build's wrapper) is gone, the tool lives on.
    const leader = spawn("sh", ["-c", "sleep 60 >/dev/null 2>&1 & echo $!"], { detached: true, stdio: ["ignore", "pipe", "pipe"] });
    const orphan = Number((await collect(leader)).stdout.trim());
    expect(alive(orphan)).toBe(true);
    writeFileSync(path, JSON.stringify({ pid: deadPid(), command: "killed -9", host: hostname(), boot: BOOT, start: "1", nonce: "n1" }));
    // Beside it, a group whose leader lives but is another process than the one recorded: left alone.
    const unrelated = spawn("sleep", ["30"], { detached: true, stdio: "ignore" });
    try {
      writeFileSync(`${path}.groups`, JSON.stringify({ nonce: "n1", groups: [{ pgid: leader.pid }, { pgid: unrelated.pid, start: "1" }] }));
      const lock = RunLock.acquire(path, "test");
      expect(alive(orphan)).toBe(false);
      expect(alive(unrelated.pid!)).toBe(true);
      lock.release();
    } finally {
      unrelated.kill();
    }
  });
});
