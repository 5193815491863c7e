// Worker thread body: hashes one file by streaming it, so several files hash on several cores.
// Plain JavaScript: worker threads do not inherit tsx's loader, and this keeps their start-up instant.
import { createReadStream } from "node:fs";
import { hash } from "hasha";

export default async function hashFileInWorker(path) {
  // 4 MiB reads: fewer syscalls and stream callbacks than the 64 KiB default.
  return hash(createReadStream(path, { highWaterMark: 4 << 20 }), { algorithm: "sha256" });
}
