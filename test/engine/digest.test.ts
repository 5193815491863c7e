// Folder digests: what counts as a file of a folder.
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Digester } from "../../engine/digest.ts";

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
