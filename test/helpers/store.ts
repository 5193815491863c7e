// Reading a build-cache store (engine/caching/local.ts) from tests.
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "vitest";

/** Every file under a folder, recursively. */
export function files(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

export const blobs = (store: string): string[] => files(join(store, "blobs"));
export const manifests = (store: string): string[] => files(join(store, "manifests"));
const sha = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

/** Every blob holds the bytes its name says, and every manifest's blobs (records included) are there. */
export function storeIsSound(store: string): void {
  for (const b of blobs(store)) expect(sha(b)).toBe(b.split("/").at(-1));
  for (const m of manifests(store)) {
    const manifest = JSON.parse(readFileSync(m, "utf8")) as { output: { files: Record<string, string>; records?: Record<string, string> } };
    for (const d of [...Object.values(manifest.output.files), ...Object.values(manifest.output.records ?? {})]) expect(existsSync(join(store, "blobs", d.slice(0, 2), d))).toBe(true);
  }
}
