// Folder digests: what counts as a file of a folder.
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { closeHashWorkers, Digester, hashFile, hashStats, inputPath } from "../../engine/digest.ts";

describe("file digests", () => {
  it("a small file (hashed on the calling thread) and a large one (on the hashing threads) are the sha256 of their bytes", async () => {
    const root = mkdtempSync(join(tmpdir(), "digest-sizes-"));
    const sizes = { empty: 0, small: 1000, edge: 256 << 10, large: (256 << 10) + 1, chunks: (9 << 20) + 7 };
    const expected: Record<string, string> = {};
    for (const [name, size] of Object.entries(sizes)) {
      const bytes = Buffer.alloc(size, name);
      writeFileSync(join(root, name), bytes);
      expected[name] = createHash("sha256").update(bytes).digest("hex");
    }
    const digester = await Digester.open(join(root, "stat-cache.json"));
    expect((await digester.tree(root)).files).toEqual(expected);
    for (const name of Object.keys(sizes)) expect(await hashFile(join(root, name))).toBe(expected[name]);
    await closeHashWorkers();
  });
});

describe("Digester.tree", () => {
  it("counts a link to a file as that file (a Hugging Face snapshot), and does not follow folder links", async () => {
    const root = mkdtempSync(join(tmpdir(), "digest-"));
    mkdirSync(join(root, "blobs"));
    mkdirSync(join(root, "snapshot"));
    writeFileSync(join(root, "blobs", "abc"), '{"hidden_size": 8}');
    symlinkSync(join(root, "blobs", "abc"), join(root, "snapshot", "config.json"));
    symlinkSync(join(root, "blobs"), join(root, "snapshot", "linked-folder"));
    symlinkSync(join(root, "blobs", "gone"), join(root, "snapshot", "dangling"));
    const digester = await Digester.open(join(root, "stat-cache.json"));
    const before = await digester.tree(join(root, "snapshot"));
    expect(Object.keys(before.files)).toEqual(["config.json"]);
    writeFileSync(join(root, "blobs", "abc"), '{"hidden_size": 16}');
    const after = await digester.tree(join(root, "snapshot"));
    expect(after.digest).not.toBe(before.digest);
  });
});

describe("Digester.inputs keys", () => {
  it("a file in the project by its path there, one in the tool's folder by '//' and its path there, any other by its absolute path", async () => {
    const base = mkdtempSync(join(tmpdir(), "digest-keys-"));
    const [tool, project, elsewhere] = [join(base, "tool"), join(base, "project"), join(base, "elsewhere")] as const;
    for (const [dir, file] of [[tool, "stages/data.ts"], [project, "data/a.jsonl"], [elsewhere, "model/config.json"]] as const) {
      mkdirSync(join(dir, file, ".."), { recursive: true });
      writeFileSync(join(dir, file), file);
    }
    const digester = await Digester.open(join(base, "stat-cache.json"));
    const files = [join(tool, "stages"), "data/*.jsonl", join(elsewhere, "model", "config.json")];
    const keys = Object.keys(await digester.inputs(project, files, tool));
    expect(keys.sort()).toEqual(["//stages/data.ts", "data/a.jsonl", join(elsewhere, "model", "config.json")].sort());
    expect(inputPath("//stages/data.ts", project, tool)).toBe(join(tool, "stages", "data.ts"));
    expect(inputPath("data/a.jsonl", project, tool)).toBe(join(project, "data", "a.jsonl"));
    expect(inputPath(join(elsewhere, "model", "config.json"), project, tool)).toBe(join(elsewhere, "model", "config.json"));
    // The project inside the tool's folder (the tool's own demo): its files keep their paths in the project.
    expect(Object.keys(await digester.inputs(tool, ["stages/data.ts"], tool))).toEqual(["stages/data.ts"]);
    await closeHashWorkers();
  });
});

/** Waits until early in a second, so what follows happens within that second; returns it. */
async function startOfASecond(): Promise<number> {
  while (Date.now() % 1000 < 100 || Date.now() % 1000 > 400) await new Promise((r) => setTimeout(r, 20));
  return Math.floor(Date.now() / 1000);
}

// A coarse file system (HFS+, FAT, some network shares) keeps whole seconds; utimes to whole seconds makes one.
describe("racy timestamps at whole-second granularity", () => {
  it("a file whose whole-second mtime is the scan's second is not cached, so a same-size rewrite later in that second is read again", async () => {
    const root = mkdtempSync(join(tmpdir(), "digest-racy-"));
    const file = join(root, "data.jsonl");
    const second = await startOfASecond();
    writeFileSync(file, "aaaa\n");
    utimesSync(file, second, second);
    const first = await Digester.open(join(root, "stat-cache.json"));
    await first.inputs(root, ["data.jsonl"]);
    await first.save();
    // On a coarse file system a same-size rewrite in this second keeps every part of the stat key; the
    // cache must not have kept the entry, so the next scan reads the file again.
    const hashed = hashStats.files;
    const second2 = await Digester.open(join(root, "stat-cache.json"));
    await second2.inputs(root, ["data.jsonl"]);
    expect(hashStats.files).toBe(hashed + 1);
    await closeHashWorkers();
  });

  it("a file added to a globbed folder in the second of the listing is not missed", async () => {
    const root = mkdtempSync(join(tmpdir(), "digest-racy-glob-"));
    mkdirSync(join(root, "data"));
    writeFileSync(join(root, "data", "a.jsonl"), "a\n");
    const second = await startOfASecond();
    utimesSync(join(root, "data"), second, second);
    const digester = await Digester.open(join(root, "stat-cache.json"));
    expect(Object.keys(await digester.inputs(root, ["data/*.jsonl"]))).toEqual(["data/a.jsonl"]);
    writeFileSync(join(root, "data", "b.jsonl"), "b\n");
    utimesSync(join(root, "data"), second, second); // the folder's whole-second mtime does not move
    expect(Object.keys(await digester.inputs(root, ["data/*.jsonl"]))).toEqual(["data/a.jsonl", "data/b.jsonl"]);
    await closeHashWorkers();
  });
});
