// The shared-folder remote (file://) on its own: the one-line errors of a bad setup, and a folder that others
// write to: links planted where blobs and folders should be, a manifest too big to read, a path out of the
// output. Nothing outside the folder is read or written through it. (Its common scenarios: remote.test.ts.)
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync, lstatSync, renameSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { digestOf, fingerprintOf, folderRemote, outputs, team } from "../helpers/remotes.ts";
import { files } from "../helpers/store.ts";

const folder = folderRemote();
afterAll(() => folder.stop());

/** A file outside the shared folder: what a planted link points at. */
function outside(name: string, text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), "outside-")), name);
  writeFileSync(path, text);
  return path;
}

/** Every blob in the shared folder holds the bytes its name says. */
function folderIsSound(prefix: string): void {
  for (const b of files(join(folder.root, prefix, "blobs"))) expect(createHash("sha256").update(readFileSync(b)).digest("hex")).toBe(b.split("/").at(-1));
}

describe.concurrent("remote build cache (shared folder)", () => {
  it("a bad setup fails in one line naming the key: the URL, a missing folder, endpoint or region on file://, push: false", async () => {
    const t = team(folder);
    const p = t.clone();
    const yaml = p.read("pipeline.yaml");
    const withCache = (edit: (y: string) => string) => p.write("pipeline.yaml", edit(yaml));

    withCache((y) => y.replace(/remote: .*/, "remote: file://server/share"));
    let r = await p.run(["pull"]);
    expect([r.code, r.stderr]).toEqual([2, expect.stringMatching(/pipeline\.yaml:\d+: cache\.remote: must be file:\/\/\/absolute\/path/)]);

    withCache((y) => y.replace(/remote: .*/, "remote: ftp://host/x"));
    r = await p.run(["pull"]);
    expect([r.code, r.stderr]).toEqual([2, expect.stringMatching(/cache\.remote: must be s3:\/\/bucket\/prefix or file:\/\/\/absolute\/path \(no remote backend for ftp:\/\/\)/)]);

    withCache((y) => `${y}  endpoint: http://127.0.0.1:9000\n  region: eu-west-1\n`);
    r = await p.run(["pull"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/pipeline\.yaml:\d+: cache\.endpoint: only s3:\/\/ remotes take it, and cache\.remote is file:\/\/.*: remove it/);
    expect(r.stderr).toMatch(/pipeline\.yaml:\d+: cache\.region: only s3:\/\/ remotes take it/);

    const gone = join(folder.root, `${t.prefix}-not-mounted`);
    withCache((y) => y.replace(/remote: .*/, `remote: file://${gone}`));
    r = await p.run(["pull"]);
    expect([r.code, r.stderr]).toEqual([2, expect.stringMatching(new RegExp(`cache\\.remote: folder ${gone} does not exist \\(a share that is not mounted\\?\\)`))]);
    r = await p.run(["report"]); // a build warns once and goes on with the local store
    expect([r.code, p.calls()]).toEqual([0, ["source", "lower", "report"]]);
    expect(r.stderr.match(/warning: cache\.remote: folder .* does not exist.*Building with the local build cache only/g)).toHaveLength(1);

    withCache((y) => `${y}  push: false\n`);
    r = await p.run(["push"]);
    expect([r.code, r.stderr]).toEqual([2, expect.stringMatching(/cache\.push is false: this clone reads the remote cache but does not write it/)]);
    expect(files(join(folder.root, t.prefix))).toEqual([]);
  });

  it("a linked blob is refused, not followed, though it points at the right bytes; a push replaces the link and leaves its target alone", async () => {
    const t = team(folder);
    const ci = t.clone();
    await ci.build();
    expect((await ci.run(["push"])).code).toBe(0);
    const blob = join(folder.root, t.prefix, "blobs", digestOf(ci, "out.txt"));
    const target = outside("out.txt", readFileSync(blob, "utf8"));
    rmSync(blob);
    symlinkSync(target, blob);

    const clone = t.clone({ lockFrom: ci });
    const pull = await clone.run(["pull", "--json"]);
    expect(pull.json).toMatchObject({ ok: false, results: { lower: `FAILED: remote cache: ${blob} is a link, not a blob: refused. Delete it (rm ${blob}) and push the entry again from a trusted machine` } });
    expect(await clone.build()).toMatchObject({ source: "restored", lower: "ran", report: "restored" });
    expect(outputs(clone)).toEqual(outputs(ci));

    const push = await ci.run(["push", "--json"]);
    expect(push.json).toMatchObject({ ok: true, results: { lower: "already on the remote; uploaded 1 missing file" } });
    expect(lstatSync(blob).isFile()).toBe(true);
    expect(readFileSync(target, "utf8")).toBe("hello world\n");
    folderIsSound(t.prefix);
  });

  it("a linked manifests folder is refused: an entry outside the shared folder is never read", async () => {
    const t = team(folder);
    const ci = t.clone();
    await ci.build();
    expect((await ci.run(["push"])).code).toBe(0);
    // The report node's manifests moved out, and a link left in their place: a valid entry, but outside.
    const dir = join(folder.root, t.prefix, "manifests", "report");
    const moved = join(mkdtempSync(join(tmpdir(), "outside-")), "report");
    renameSync(dir, moved);
    symlinkSync(moved, dir);
    const clone = t.clone({ lockFrom: ci });
    const r = await clone.build();
    expect(r).toMatchObject({ source: "restored", lower: "restored", report: "ran" });
    expect(r._result.stderr).toContain(`remote cache: ${dir} is a link or a file, not a folder of the cache: refused. Delete it (rm ${dir})`);
  });

  it("a 2 GB manifest is refused unread, by its size, and the node runs; a path out of the output is refused", async () => {
    const t = team(folder);
    const ci = t.clone();
    await ci.build();
    expect((await ci.run(["push"])).code).toBe(0);
    const manifest = (node: string) => join(folder.root, t.prefix, "manifests", node, `${fingerprintOf(ci, node)}.json`);
    truncateSync(manifest("source"), 2 ** 31); // sparse: no disk used, and reading it would fill memory
    const valid = JSON.parse(readFileSync(manifest("report"), "utf8")) as { output: { files: Record<string, string> }; sizes: Record<string, number> };
    const digest = Object.values(valid.output.files)[0]!;
    writeFileSync(manifest("report"), JSON.stringify({ ...valid, output: { ...valid.output, files: { "../x": digest } }, sizes: { "../x": 1 } }));
    const clone = t.clone({ lockFrom: ci });
    mkdirSync(clone.path("models"));
    const r = await clone.build();
    expect(r).toMatchObject({ source: "ran", lower: "restored", report: "ran" });
    expect(r._result.stderr).toContain(`build cache: ${manifest("source")} is 2147483648 bytes, more than a manifest can be`);
    expect(r._result.stderr).toMatch(/manifests\/report\/[0-9a-f]{64}\.json is not a valid manifest \(output\.files\.\.\.\/x: not a normalized relative path inside the output\): refused/);
    expect(clone.exists("models/x")).toBe(false);
    expect(outputs(clone)).toEqual(outputs(ci));
  });
});
