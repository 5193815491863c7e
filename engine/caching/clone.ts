// Copies that share blocks with their source where the file system can (a copy-on-write clone), full
// copies otherwise. Never links: a user who edits a restored file must not reach into the store.
import { execFile } from "node:child_process";
import { constants } from "node:fs";
import { copyFile } from "node:fs/promises";
import { promisify } from "node:util";

const run = promisify(execFile);

export async function cloneFile(src: string, dst: string): Promise<void> {
  // libuv's FICLONE is a no-op on APFS (it copies in full): `cp -c` calls clonefile(2).
  if (process.platform === "darwin") {
    try {
      await run("cp", ["-c", src, dst]);
      return;
    } catch {
      // Not APFS, or an old cp: the plain copy below.
    }
  }
  // Linux btrfs/XFS clone; ext4 and others fall back to a full copy inside copyFile.
  await copyFile(src, dst, constants.COPYFILE_FICLONE);
}
