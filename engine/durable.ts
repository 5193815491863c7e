// Writes that survive a power loss: a rename is durable only once its folder is synced, and the renamed
// file's bytes only once the file itself is (ext4, APFS and XFS may otherwise keep the new name and lose
// the contents, leaving a zero-length file).
import { closeSync, fsyncSync, openSync, writeSync } from "node:fs";
import { open, rename } from "node:fs/promises";
import { dirname } from "node:path";

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
  const tmp = `${path}.${process.pid}.tmp`;
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
