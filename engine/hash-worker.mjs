// Worker thread body: hashes one file, so several files hash on several cores.
// Plain JavaScript: worker threads do not inherit tsx's loader, and this keeps their start-up instant.
//
// Synchronous reads into one reused 4 MiB buffer (a worker runs one task at a time, and blocking its own
// thread is its job): no stream machinery, no fresh 4 MiB allocation and page faults per chunk. Measured by
// `npm run bench` against a hasha/createReadStream pipe and the other variants in bench/hash-variants.ts.
import { createHash } from "node:crypto";
import { closeSync, openSync, readSync } from "node:fs";

const CHUNK = 4 << 20;
let buffer;

export default function hashFileInWorker(path) {
  buffer ??= Buffer.allocUnsafeSlow(CHUNK);
  const hash = createHash("sha256");
  const fd = openSync(path, "r");
  try {
    for (let n; (n = readSync(fd, buffer, 0, CHUNK, null)) > 0; ) hash.update(buffer.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return hash.digest("hex");
}
