// What a user does to models/ (links it elsewhere, keeps a folder there, deletes .builds to free space)
// never costs them data and never wedges the build.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO } from "../helpers/cli.ts";
import { FakeProject } from "../helpers/fake-project.ts";

function reasonOf(result: { json: { nodes: { id: string; reason: string }[] } }, id: string): string {
  return result.json.nodes.find((n) => n.id === id)?.reason ?? "";
}

describe.concurrent("outputs a user touched", () => {
  it("models/<id> linked to a folder elsewhere: --force refuses to publish over it and the folder survives", async () => {
    const p = new FakeProject();
    await p.build();
    const precious = mkdtempSync(join(tmpdir(), "precious-"));
    writeFileSync(join(precious, "keep.txt"), "mine\n");
    rmSync(p.path("models/lower"));
    symlinkSync(relative(p.path("models"), precious), p.path("models/lower")); // as `ln -s ../../precious models/lower`
    const result = await p.build("--force", "lower");
    expect(result._result.code).toBe(1);
    expect(result).toMatchObject({ source: "fresh", lower: "failed", report: "skipped" });
    expect(reasonOf(result._result, "lower")).toMatch(/models\/lower is a link to .*precious.*which this tool did not make/);
    expect(reasonOf(result._result, "lower")).toContain(`rm ${p.path("models/lower")}`);
    expect(readFileSync(join(precious, "keep.txt"), "utf8")).toBe("mine\n");
    expect(p.calls().filter((c) => c === "lower")).toHaveLength(1); // refused before running, not after
  });

  it("a real folder at models/<id> is refused, never deleted, and the build says what to do", async () => {
    const p = new FakeProject();
    mkdirSync(p.path("models/lower"), { recursive: true });
    writeFileSync(p.path("models/lower/notes.txt"), "my notes\n");
    const result = await p.build();
    expect(result._result.code).toBe(1);
    expect(result).toMatchObject({ source: "ran", lower: "failed", report: "skipped" });
    expect(reasonOf(result._result, "lower")).toMatch(/models\/lower is a folder this tool did not make.*Move it out of models\//);
    expect(p.read("models/lower/notes.txt")).toBe("my notes\n");
  });

  it("rm -rf models/.builds: status says the outputs are missing, the build restores them from the build cache, --force works", async () => {
    const p = new FakeProject();
    await p.build();
    rmSync(p.path("models/.builds"), { recursive: true });
    const status = await p.run(["status", "--json"]);
    expect(status.code).toBe(0);
    for (const id of ["source", "lower", "report"]) {
      const node = status.json.nodes.find((n) => n.id === id);
      expect(node?.stale).toBe(true);
      expect(node?.reasons?.join("; ")).toMatch(new RegExp(`output .*models/${id} is missing \\(it links to \\.builds/${id}-.*which is gone\\)`));
    }
    expect(await p.build()).toMatchObject({ source: "restored", lower: "restored", report: "restored" });
    expect(p.read("models/report/report.txt")).toBe("# Weekly\nhello world\n");
    rmSync(p.path("models/.builds"), { recursive: true });
    const forced = await p.build("--force", "lower");
    expect(forced._result.code, forced._result.stderr).toBe(0);
    expect(forced).toMatchObject({ source: "restored", lower: "ran", report: "restored" });
  });

  it("the run lock, each publish and pipeline.lock are synced to disk, files before the folders that name them", async () => {
    const p = new FakeProject();
    const result = await p.run(["report", "--json"], ["--import", join(REPO, "test/helpers/fsync-spy.mjs")]);
    expect(result.code, result.stderr).toBe(0);
    const synced = p.read("fsync.log").split("\n").filter(Boolean).map((l) => l.slice("fsync ".length));
    const at = (pattern: RegExp) => synced.findIndex((path) => pattern.test(path));
    const dir = p.dir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    // The run lock: written whole and synced, then linked in and its folder synced.
    expect(at(new RegExp(`^${dir}/cache/build\\.lock\\..*\\.tmp$`))).toBeGreaterThanOrEqual(0);
    expect(at(new RegExp(`^${dir}/cache$`))).toBeGreaterThan(at(new RegExp(`^${dir}/cache/build\\.lock\\..*\\.tmp$`)));
    // Each publish: the build folder's new name, then the link's rename.
    expect(synced.filter((s) => s === p.path("models/.builds"))).toHaveLength(3);
    expect(synced.filter((s) => s === p.path("models"))).toHaveLength(3);
    // pipeline.lock: the new file's bytes, then its rename.
    const lockTmp = at(new RegExp(`^${dir}/pipeline\\.lock\\.\\d+\\.tmp$`));
    expect(lockTmp).toBeGreaterThanOrEqual(0);
    expect(synced.indexOf(p.dir, lockTmp)).toBeGreaterThan(lockTmp);
    // A build with nothing to run changes nothing: it takes no run lock, so it syncs nothing.
    rmSync(p.path("fsync.log"));
    const noop = await p.run(["report", "--json"], ["--import", join(REPO, "test/helpers/fsync-spy.mjs")]);
    expect(noop.json.nodes.map((n) => n.status)).toEqual(["fresh", "fresh", "fresh"]);
    expect(p.exists("fsync.log") ? p.read("fsync.log") : "").toBe("");
  });

  it("a link left by a publish killed before its rename is swept, with the build it kept alive", async () => {
    const p = new FakeProject();
    await p.build();
    mkdirSync(p.path("models/.builds/lower-99999-1"));
    writeFileSync(p.path("models/.builds/lower-99999-1/out.txt"), "half\n");
    symlinkSync(".builds/lower-99999-1", p.path("models/lower.link-99999"));
    expect(await p.build()).toMatchObject({ source: "fresh", lower: "fresh", report: "fresh" });
    expect(readdirSync(p.path("models")).sort()).toEqual([".builds", "lower", "report", "source"]);
    expect(existsSync(p.path("models/.builds/lower-99999-1"))).toBe(false);
    expect(p.read("models/lower/out.txt")).toBe("hello world\n");
  });
});
