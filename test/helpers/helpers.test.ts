// The test helpers themselves: a CLI that dies without printing its --json document must fail the test that
// reads it, not read as a build that ran nothing (which a test expecting no node to run would accept).
import { lstatSync, readlinkSync, statSync, symlinkSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename } from "node:path";
import { describe, expect, it } from "vitest";
import { FakeProject } from "./fake-project.ts";
import { pipelineYaml, Project } from "./project.ts";

/** Preloaded before the CLI: it dies at once, as a crash in native code or an OOM kill would, printing nothing. */
const DIE = "data:text/javascript,process.exit(7)";

describe.concurrent("test helpers", () => {
  it("test files write under the run's own temp root, which the run removes at its end", () => {
    expect(basename(tmpdir())).toMatch(/^mlx-pipeline-tests-/);
  });

  it("FakeProject: no JSON document throws on reading it, with the exit code and stderr", async () => {
    const p = new FakeProject();
    const r = await p.run(["report", "--json"], ["--import", DIE]);
    expect(r.code).toBe(7);
    expect(() => r.json).toThrow(/printed no JSON document \(it exited 7\)/);
  });

  it("FakeProject.build of a crashed run rejects instead of returning no statuses", async () => {
    const p = new FakeProject();
    p.write("pipeline.yaml", "report: [\n"); // a config error: a JSON document with an error and no nodes
    await expect(p.build()).rejects.toThrow(/reported no nodes: .*pipeline\.yaml/);
  });

  it("Project (the real pipeline): no JSON document throws on reading json and statuses", async () => {
    const p = new Project(pipelineYaml());
    const r = await p.run(["gguf", "--json"], undefined, { NODE_OPTIONS: `--import=${DIE}` });
    expect(r.code).toBe(7);
    expect(() => r.json).toThrow(/printed no JSON document \(it exited 7\)/);
    expect(() => r.statuses).toThrow(/printed no JSON document/);
  });

  it("a valid document reads as before", async () => {
    const p = new FakeProject();
    const r = await p.run(["status", "--json"]);
    expect(r.json.nodes.map((n) => n.id)).toEqual(["source", "lower", "report"]);
  });

  it("Project.copyOf: a clone with its outputs, whose models/<id> links stay relative and whose times are kept", () => {
    const p = new Project(pipelineYaml(), { "models/.builds/data-1/train.jsonl": "{}\n" });
    symlinkSync(".builds/data-1", p.path("models/data"));
    const hourAgo = new Date(Date.now() - 3_600_000);
    utimesSync(p.path("models/.builds/data-1/train.jsonl"), hourAgo, hourAgo);
    const copy = Project.copyOf(p.dir);
    expect(copy.dir).not.toBe(p.dir);
    expect(lstatSync(copy.path("models/data")).isSymbolicLink()).toBe(true);
    expect(readlinkSync(copy.path("models/data"))).toBe(".builds/data-1"); // not the original's absolute path
    expect(copy.read("models/data/train.jsonl")).toBe("{}\n");
    expect(statSync(copy.path("models/data/train.jsonl")).mtimeMs).toBe(statSync(p.path("models/data/train.jsonl")).mtimeMs);
    expect(copy.read("pipeline.yaml")).toBe(p.read("pipeline.yaml"));
  });
});
