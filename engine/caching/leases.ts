// Who is using a local store, in its locks/ folder: a build holds a lease file (use-<pid>-<12 hex>) while it
// reads or writes; gc holds the one `gc` file and runs alone. Each side writes its own file first, then looks
// for the other's, so at least one of the two sees the other. A holder killed with -9 is seen dead by its pid.
import { randomBytes } from "node:crypto";
import { readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { running } from "../durable.ts";
import { UserError } from "../types.ts";

const LEASE = /^use-(\d+)-[0-9a-f]{12}$/;

/** The pid of a live gc, if one runs. */
async function gcHolder(locks: string): Promise<number | undefined> {
  const text = await readFile(join(locks, "gc"), "utf8").catch(() => undefined);
  const pid = Number(text);
  return text !== undefined && Number.isInteger(pid) && running(pid) ? pid : undefined;
}

/** Runs `work` holding a lease in `locks` (of the store `dir`, for messages), once no gc runs. */
export async function leased<T>(locks: string, dir: string, work: () => Promise<T>): Promise<T> {
  const lease = join(locks, `use-${process.pid}-${randomBytes(6).toString("hex")}`);
  for (let told = false; ; told = true) {
    await writeFile(lease, "");
    const gc = await gcHolder(locks);
    if (gc === undefined) break;
    await rm(lease, { force: true });
    if (!told) process.stderr.write(`build cache: waiting for gc (pid ${gc}) to finish with ${dir}\n`);
    await sleep(50);
  }
  try {
    return await work();
  } finally {
    await rm(lease, { force: true });
  }
}

/** Runs `work` as the store's one gc, once no live process holds a lease (`waiting` is told once, with their pids). */
export async function exclusively<T>(locks: string, dir: string, work: () => Promise<T>, waiting: (pids: number[]) => void): Promise<T> {
  const path = join(locks, "gc");
  for (;;) {
    try {
      await writeFile(path, String(process.pid), { flag: "wx" });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const holder = await gcHolder(locks);
      if (holder !== undefined) throw new UserError(`gc: another gc (pid ${holder}) is collecting ${dir}: let it finish.`);
      await rm(path, { force: true }); // its gc died
    }
  }
  try {
    let told = false;
    for (;;) {
      const live: number[] = [];
      for (const name of await readdir(locks)) {
        const m = LEASE.exec(name);
        if (!m) continue;
        if (running(Number(m[1]))) live.push(Number(m[1]));
        else await rm(join(locks, name), { force: true }); // a user killed with -9
      }
      if (live.length === 0) break;
      if (!told) waiting([...new Set(live)]);
      told = true;
      await sleep(100);
    }
    return await work();
  } finally {
    await rm(path, { force: true });
  }
}
