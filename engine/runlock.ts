// One build at a time per project folder. The lock file names its holder's pid; a dead holder's lock is taken over.
import { mkdirSync, openSync, readFileSync, rmSync, writeSync, closeSync } from "node:fs";
import { dirname } from "node:path";
import { UserError } from "./types.ts";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

export class RunLock {
  private constructor(private readonly path: string) {}

  static acquire(path: string, what: string): RunLock {
    mkdirSync(dirname(path), { recursive: true });
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(path, "wx");
        writeSync(fd, JSON.stringify({ pid: process.pid, command: what, since: new Date().toISOString() }));
        closeSync(fd);
        return new RunLock(path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
      let holder: { pid?: number; command?: string } = {};
      try {
        holder = JSON.parse(readFileSync(path, "utf8")) as typeof holder;
      } catch {
        // Half-written by a process killed between open and write: treat as dead.
      }
      if (holder.pid !== undefined && alive(holder.pid)) {
        throw new UserError(
          `Another build holds ${path} (pid ${holder.pid}: ${holder.command ?? "?"}). ` +
            `Wait for it to finish, or stop it with \`kill ${holder.pid}\`.`,
        );
      }
      rmSync(path, { force: true }); // the holder is dead: take the lock over
    }
    throw new UserError(`Could not take the build lock ${path}: another build took it at the same moment.`);
  }

  release(): void {
    rmSync(this.path, { force: true });
  }
}
