// Ways to sha256 one file in Node, measured side by side by bench/hashing.ts. The engine's worker
// (engine/hash-worker.mjs) uses the fastest; the others are kept here so the choice can be re-measured.
import { createHash } from "node:crypto";
import { closeSync, createReadStream, openSync, readSync } from "node:fs";
import { open } from "node:fs/promises";

export interface HashVariant {
  readonly name: string;
  readonly hash: (path: string) => Promise<string>;
}

async function streamed(path: string, highWaterMark?: number): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path, highWaterMark ? { highWaterMark } : {})) h.update(chunk as Buffer);
  return h.digest("hex");
}

/** Synchronous reads into one reused buffer: no allocation, no page faults on fresh memory, no stream machinery. */
function readSyncReused(path: string, size: number): string {
  const buf = Buffer.allocUnsafeSlow(size);
  const h = createHash("sha256");
  const fd = openSync(path, "r");
  try {
    for (let n; (n = readSync(fd, buf, 0, size, null)) > 0; ) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest("hex");
}

/** Two reused buffers: the next chunk is read (on libuv's thread pool) while the current one is hashed. */
async function doubleBuffered(path: string, size: number): Promise<string> {
  const bufs = [Buffer.allocUnsafeSlow(size), Buffer.allocUnsafeSlow(size)] as const;
  const h = createHash("sha256");
  const fh = await open(path, "r");
  try {
    let i = 0;
    let pending = fh.read(bufs[0], 0, size, null);
    for (;;) {
      const { bytesRead } = await pending;
      if (bytesRead === 0) break;
      const current = bufs[i]!;
      i ^= 1;
      pending = fh.read(bufs[i]!, 0, size, null);
      h.update(current.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  return h.digest("hex");
}

const MiB = 1 << 20;

export const variants: readonly HashVariant[] = [
  { name: "stream 64 KiB (Node default)", hash: (p) => streamed(p) },
  {
    name: "hasha stream 4 MiB (worker before)",
    hash: async (p) => {
      const { hash } = await import("hasha");
      return hash(createReadStream(p, { highWaterMark: 4 * MiB }), { algorithm: "sha256" });
    },
  },
  { name: "stream 4 MiB + createHash", hash: (p) => streamed(p, 4 * MiB) },
  { name: "readSync reused 1 MiB", hash: async (p) => readSyncReused(p, MiB) },
  { name: "readSync reused 4 MiB (worker now)", hash: async (p) => readSyncReused(p, 4 * MiB) },
  { name: "double-buffered 1 MiB", hash: (p) => doubleBuffered(p, MiB) },
  { name: "double-buffered 4 MiB", hash: (p) => doubleBuffered(p, 4 * MiB) },
];

/** hash-wasm (WebAssembly sha256), measured only when installed (it is not a dependency). */
export async function hashWasmVariant(): Promise<HashVariant | undefined> {
  try {
    const spec = "hash-wasm";
    const { createSHA256 } = (await import(spec)) as {
      createSHA256(): Promise<{ init(): unknown; update(b: Uint8Array): unknown; digest(enc: "hex"): string }>;
    };
    return {
      name: "hash-wasm readSync 4 MiB",
      hash: async (path) => {
        const h = await createSHA256();
        h.init();
        const buf = Buffer.allocUnsafeSlow(4 * MiB);
        const fd = openSync(path, "r");
        try {
          for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
        } finally {
          closeSync(fd);
        }
        return h.digest("hex");
      },
    };
  } catch {
    return undefined;
  }
}
