// Writes that survive a power loss: a rename is durable only once its folder is synced, and the renamed
// file's bytes only once the file itself is (ext4, APFS and XFS may otherwise keep the new name and lose
// the contents, leaving a zero-length file).
import { closeSync, fsyncSync, openSync, writeSync } from "node:fs";
import { open, readdir, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** Flushes a folder's entries (a rename, link or unlink in it) to disk. */
export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes a new file whole and synced; no other process may write `path` meanwhile. */
export function writeSyncedSync(path: string, text: string, flags = "wx"): void {
  const fd = openSync(path, flags);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Replaces `path` with `text` atomically and durably: a reader sees the old file or the new one, never part. */
export async function replaceFile(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`; // sweepTemps knows this name
  const handle = await open(tmp, "w");
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, path);
  await fsyncDir(dirname(path));
}

/** Whether a process (or process group leader) of this pid exists: EPERM means it does, owned by another user. */
export function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes the temp files replaceFile left beside `path` when killed between writing and renaming one
 * (`path.<pid>.tmp` of a pid that no longer runs): nothing else ever would, and beside pipeline.lock it
 * shows in `git status`. A live pid's is left alone, being written now or not.
 */
export async function sweepTemps(path: string): Promise<void> {
  await Promise.all((await deadTemps(path)).map((temp) => rm(temp, { force: true })));
}

/** The temp files sweepTemps would remove. */
export async function deadTemps(path: string): Promise<string[]> {
  const dir = dirname(path);
  const prefix = `${basename(path)}.`;
  const names = await readdir(dir).catch(() => [] as string[]);
  return names
    .filter((n) => {
      const pid = n.startsWith(prefix) && n.endsWith(".tmp") ? n.slice(prefix.length, -".tmp".length) : "";
      return /^\d+$/.test(pid) && !running(Number(pid));
    })
    .map((n) => join(dir, n));
}
