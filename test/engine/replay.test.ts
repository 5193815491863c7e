// A no-op answered from its record (engine/replay) gives the answer planning would give: every change to what
// the recorded run read, ran or was run with makes the next run plan again, and a run that changed a file,
// started a process or may have read a file mid-change is not recorded.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from "node:fs";
import * as fsp from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { identityOf, readRecord, recordPath, signatureOf } from "../../engine/replay/record.ts";
import { replay } from "../../engine/replay/replay.ts";
import { saveRecord } from "../../engine/replay/save.ts";
import { startTrace } from "../../engine/replay/trace.ts";
import { FakeProject } from "../helpers/fake-project.ts";
import { COUNT_MODULES, modulesLoaded } from "../helpers/modules.ts";
import { REPO } from "../helpers/project.ts";


function project(): FakeProject {
  const p = new FakeProject();
  p.env.NODE_OPTIONS = COUNT_MODULES.join(" "); // in the environment: records are made and read alike
  return p;
}

function records(p: FakeProject): string[] {
  return p.exists("cache/noop") ? readdirSync(p.path("cache/noop")) : [];
}

/** Whether the run planned (loaded the engine's planner) rather than answering from a record. */
function planned(stderr: string): boolean {
  return modulesLoaded(stderr).project.includes("engine/plan.ts");
}

/** A built fake project whose `report` no-op is recorded: the next identical run is answered from the record. */
async function recorded(setup?: (p: FakeProject) => void): Promise<FakeProject> {
  const p = project();
  setup?.(p);
  await p.build();
  for (let i = 0; i < 3 && records(p).length === 0; i++) expect((await p.build())._result.code).toBe(0);
  expect(records(p)).toHaveLength(1);
  expect(planned((await p.build())._result.stderr)).toBe(false);
  return p;
}

/** Builds, and checks that the build planned rather than answering from the record. */
async function plannedBuild(p: FakeProject): Promise<Record<string, string>> {
  const result = await p.build();
  expect(planned(result._result.stderr)).toBe(true);
  return result;
}

describe.concurrent("no-op records", () => {
  it("an input rewritten with the same size and mtime is seen (its ctime moved), and the node rebuilds", async () => {
    // A whole second, so that utimes can put it back exactly, as rsync -t or cp -p would.
    const hourAgo = new Date(Math.floor(Date.now() / 1000 - 3600) * 1000);
    const p = await recorded((p) => utimesSync(p.path("input/a.txt"), hourAgo, hourAgo));
    const input = p.path("input/a.txt");
    const before = statSync(input, { bigint: true });
    writeFileSync(input, "Jello World\n");
    utimesSync(input, hourAgo, hourAgo);
    const after = statSync(input, { bigint: true });
    expect([after.size, after.mtimeNs, after.ino]).toEqual([before.size, before.mtimeNs, before.ino]);
    expect(await plannedBuild(p)).toMatchObject({ source: "ran" });
    expect(p.read("models/report/report.txt")).toContain("jello world");
  });

  it("an output edited by hand is seen, and the node's output is put back", async () => {
    const p = await recorded();
    writeFileSync(p.path("models/report/report.txt"), "edited\n");
    expect(await plannedBuild(p)).toMatchObject({ report: "restored" });
    expect(p.read("models/report/report.txt")).toMatch(/^# Weekly/);
  });

  it("a file a node's inputs read by hand is seen, even one that was absent when recorded", async () => {
    const p = await recorded();
    p.write("subtitle.txt", "and more");
    expect(await plannedBuild(p)).toMatchObject({ source: "fresh", lower: "fresh", report: "ran" });
  });

  it("another environment plans, and keeps its own record beside the first", async () => {
    const p = await recorded();
    p.env.SOME_SETTING = "1";
    const other = await p.run(["report", "--json"]);
    expect(other.json.nodes.map((n) => n.status)).toEqual(["fresh", "fresh", "fresh"]);
    expect(planned(other.stderr)).toBe(true);
    expect(records(p)).toHaveLength(2);
    expect(planned((await p.run(["report", "--json"])).stderr)).toBe(false);
    delete p.env.SOME_SETTING;
    expect(planned((await p.run(["report", "--json"])).stderr)).toBe(false);
  });

  it("another command line, or the same one in another folder, has no record", async () => {
    const p = await recorded();
    expect(planned((await p.run(["lower", "--json"])).stderr)).toBe(true);
    // The same build, run from another project's folder.
    const elsewhere = await project().run(["--config", p.path("pipeline.yaml"), "report", "--json"]);
    expect(elsewhere.json.nodes.map((n) => n.status)).toEqual(["fresh", "fresh", "fresh"]);
    expect(planned(elsewhere.stderr)).toBe(true);
  });

  it("a torn or forged record is not trusted: the run plans and records anew", async () => {
    const p = await recorded();
    const [name] = records(p);
    const file = p.path("cache/noop", name!);
    const record = JSON.parse(readFileSync(file, "utf8")) as { paths: [string, string][]; output: [number, string][] };
    writeFileSync(file, JSON.stringify({ ...record, paths: "all fine" }));
    expect(planned((await p.run(["report", "--json"])).stderr)).toBe(true);
    writeFileSync(file, JSON.stringify({ ...record, paths: [["relative/path", "absent"]] }));
    expect(planned((await p.run(["report", "--json"])).stderr)).toBe(true);
    writeFileSync(file, readFileSync(file, "utf8").slice(0, 100));
    const run = await p.run(["report", "--json"]);
    expect(planned(run.stderr)).toBe(true);
    expect(run.json.nodes.map((n) => n.status)).toEqual(["fresh", "fresh", "fresh"]);
    expect(readRecord(file)).toBeDefined(); // written again by that run
  });

  it("a build that runs a node writes no record; MLX_PIPELINE_REPLAY=off neither reads nor writes one", async () => {
    const p = project();
    expect((await p.build())._result.code).toBe(0);
    expect(records(p)).toEqual([]);
    p.env.MLX_PIPELINE_REPLAY = "off";
    for (let i = 0; i < 3; i++) expect(planned((await p.run(["report", "--json"])).stderr)).toBe(true);
    expect(records(p)).toEqual([]);
  });

  it("records the code it ran: the entry point, the engine and the fixture", async () => {
    const p = await recorded();
    const record = readRecord(p.path("cache/noop", records(p)[0]!))!;
    const paths = record.paths.map(([path]) => path);
    for (const file of ["engine/plan.ts", "engine/replay/trace.ts", "test/fixtures/fake-pipeline.ts", "package.json", "node_modules/.package-lock.json"]) {
      expect(paths).toContain(join(REPO, file));
    }
    expect(paths).toContain(p.path("pipeline.yaml"));
    expect(paths).toContain(p.path("subtitle.txt")); // looked for, absent
    expect(paths.some((path) => path.startsWith(p.path("cache/noop")))).toBe(false);
  });
});

describe("tracing a run", () => {
  it("sees reads through named imports, fs/promises and existsSync, and puts every function back", async () => {
    const dir = mkdtempSync(join(tmpdir(), "trace-"));
    writeFileSync(join(dir, "a.txt"), "a");
    const before = readFileSync;
    const trace = startTrace();
    expect(readFileSync).not.toBe(before); // this module's own binding is traced too
    readFileSync(join(dir, "a.txt"));
    await fsp.stat(dir);
    existsSync(join(dir, "absent"));
    process.stdout.write("");
    const outcome = trace.stop();
    expect(readFileSync).toBe(before);
    expect([...outcome.reads]).toEqual(expect.arrayContaining([join(dir, "a.txt"), dir, join(dir, "absent")]));
    expect(outcome).toMatchObject({ changed: false, spawned: false });
  });

  it("sees a file written, a file opened for writing, a process started", async () => {
    const dir = mkdtempSync(join(tmpdir(), "trace-"));
    let trace = startTrace();
    writeFileSync(join(dir, "b.txt"), "b");
    expect(trace.stop()).toMatchObject({ changed: true, spawned: false });
    trace = startTrace();
    await (await fsp.open(join(dir, "c.txt"), "a")).close();
    expect(trace.stop()).toMatchObject({ changed: true });
    trace = startTrace();
    spawnSync("true");
    expect(trace.stop()).toMatchObject({ changed: false, spawned: true });
  });

  it("records nothing for a run that changed files, or that read a file changed since it started", async () => {
    const root = mkdtempSync(join(tmpdir(), "trace-"));
    const file = join(root, "read.txt");
    writeFileSync(file, "old");
    const entry = join(REPO, "test/fixtures/fake-pipeline.ts");
    const outcome = { reads: new Set([file]), changed: false, spawned: false, overflowed: false, output: [[1, "ok\n"]] as const, startedMs: Date.now() - 5_000 };
    expect(await saveRecord("f".repeat(64), { ...outcome, changed: true }, { root, own: [] }, entry)).toBe("it changed files");
    expect(await saveRecord("f".repeat(64), { ...outcome, startedMs: Date.now() }, { root, own: [] }, entry)).toBe(`${file} changed while it ran`);
    expect(existsSync(join(root, "cache"))).toBe(false);
  });

  it("replays a record while every path keeps its signature, and not once one changes", async () => {
    const root = mkdtempSync(join(tmpdir(), "replay-"));
    const file = join(root, "read.txt");
    writeFileSync(file, "old");
    const argv = ["target", "--config", join(root, "pipeline.yaml")];
    const identity = identityOf(argv, process.cwd());
    const outcome = { reads: new Set([file]), changed: false, spawned: false, overflowed: false, output: [[2, ""]] as const, startedMs: Date.now() + 1_000 };
    expect(await saveRecord(identity, outcome, { root, own: [] }, join(REPO, "test/fixtures/fake-pipeline.ts"))).toBeUndefined();
    expect(readRecord(recordPath(root, identity))?.paths).toContainEqual([file, signatureOf(file)]);
    expect(replay(argv, "pipeline.yaml", identity)).toBe(0);
    expect(replay(argv, "pipeline.yaml", identityOf(argv, tmpdir()))).toBeUndefined(); // another folder
    writeFileSync(file, "new");
    expect(replay(argv, "pipeline.yaml", identity)).toBeUndefined();
  });
});
