// Each staleness trigger reruns exactly the nodes it should, counted through the fake commands' call log.
import { rmSync, writeFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { BASE_CONFIG, FakeProject } from "../helpers/fake-project.ts";

async function built(): Promise<FakeProject> {
  const p = new FakeProject();
  const first = await p.build();
  expect(first._result.code).toBe(0);
  expect(p.calls()).toEqual(["source", "lower", "report"]);
  return p;
}

describe.concurrent("staleness", () => {
  it("a second build runs nothing and reads no file contents", async () => {
    const p = await built();
    const second = await p.build();
    expect(second).toMatchObject({ source: "fresh", lower: "fresh", report: "fresh" });
    expect(p.calls()).toHaveLength(3);
    expect(second._result.json.hashed).toEqual({ files: 0, bytes: 0 });
    expect(p.read("models/report/report.txt")).toBe("# Weekly\nhello world\n");
  });

  it("an input file edit reruns the chain", async () => {
    const p = await built();
    p.write("input/a.txt", "Goodbye\n");
    const status = await p.run(["status", "--json"]);
    expect(status.json.nodes[0]).toMatchObject({ id: "source", stale: true, reasons: ["file input/a.txt changed"] });
    expect(await p.build()).toMatchObject({ source: "ran", lower: "ran", report: "ran" });
    expect(p.read("models/report/report.txt")).toBe("# Weekly\ngoodbye\n");
  });

  it("a new file matching the input glob reruns the chain", async () => {
    const p = await built();
    p.write("input/b.txt", "More\n");
    expect(await p.build()).toMatchObject({ source: "ran", lower: "ran", report: "ran" });
  });

  it("a param edit reruns that node and its dependents only, and status names the param", async () => {
    const p = await built();
    p.write("pipeline.yaml", BASE_CONFIG + "lower:\n  mode: upper\n");
    const status = await p.run(["status", "--json"]);
    const lower = status.json.nodes.find((n) => n.id === "lower");
    expect(lower?.reasons).toEqual(['param mode changed: "lower" → "upper"']);
    expect(await p.build()).toMatchObject({ source: "fresh", lower: "ran", report: "ran" });
    expect(p.calls()).toEqual(["source", "lower", "report", "lower", "report"]);
  });

  it("a byte-identical upstream rebuild cuts the cascade off", async () => {
    const p = await built();
    p.write("input/a.txt", "HELLO world\n"); // lowercases to the same bytes
    expect(await p.build()).toMatchObject({ source: "ran", lower: "ran", report: "cutoff" });
    expect(p.calls()).toEqual(["source", "lower", "report", "source", "lower"]);
  });

  it("a tool version change reruns the node that uses the tool", async () => {
    const p = await built();
    p.write("pipeline.yaml", BASE_CONFIG.replace('fake: "1.0"', 'fake: "1.1"'));
    const status = await p.run(["status", "--json"]);
    expect(status.json.nodes.find((n) => n.id === "lower")?.reasons).toEqual(["tool fake changed: 1.0 → 1.1"]);
    expect(await p.build()).toMatchObject({ source: "fresh", lower: "ran", report: "cutoff" });
  });

  it("a deleted output is restored from the build cache, or without one reruns its node only", async () => {
    const p = await built();
    rmSync(p.path("models/lower"), { recursive: true });
    const status = await p.run(["status", "--json"]);
    expect(status.json.nodes.find((n) => n.id === "lower")?.reasons?.[0]).toMatch(/output .*lower is missing/);
    expect(await p.build()).toMatchObject({ source: "fresh", lower: "restored", report: "cutoff" });
    rmSync(p.path("models/lower"), { recursive: true });
    rmSync(p.path("cache/store"), { recursive: true });
    expect(await p.build()).toMatchObject({ source: "fresh", lower: "ran", report: "cutoff" });
  });

  it("a hand-edited output is rebuilt (here: restored), and verify names the file", async () => {
    const p = await built();
    writeFileSync(p.path("models/report/report.txt"), "tampered\n");
    const verify = await p.run(["verify", "--json"]);
    expect(verify.code).toBe(1);
    expect(verify.json.nodes.find((n) => n.id === "report")?.reasons).toEqual(["output file report.txt was modified"]);
    expect(await p.build()).toMatchObject({ source: "fresh", lower: "fresh", report: "restored" });
    expect(p.read("models/report/report.txt")).toBe("# Weekly\nhello world\n");
    expect((await p.run(["verify"])).code).toBe(0);
  });

  it("a comment or whitespace edit of the config reruns nothing", async () => {
    const p = await built();
    p.write("pipeline.yaml", "# edited\n\n" + BASE_CONFIG.replace("# the title", "# another comment").replace("title:", "title:  "));
    expect(await p.build()).toMatchObject({ source: "fresh", lower: "fresh", report: "fresh" });
    expect(p.calls()).toHaveLength(3);
  });

  it("--force reruns a fresh node", async () => {
    const p = await built();
    expect(await p.build("--force", "lower")).toMatchObject({ source: "fresh", lower: "ran", report: "cutoff" });
  });

  it("--frozen fails on a stale graph and passes on a fresh one", async () => {
    const p = await built();
    expect((await p.run(["report", "--frozen"])).code).toBe(0);
    p.write("input/a.txt", "changed\n");
    const frozen = await p.run(["report", "--frozen", "--json"]);
    expect(frozen.code).toBe(1);
    expect(frozen.stderr).toMatch(/--frozen: source, lower, report would rebuild/);
    expect(p.calls()).toHaveLength(3);
  });

  it("--dry-run reports what would run and runs nothing", async () => {
    const p = await built();
    p.write("input/a.txt", "changed\n");
    const dry = await p.run(["report", "--dry-run", "--json"]);
    expect(dry.code).toBe(0);
    expect(dry.json.nodes.map((n) => n.status)).toEqual(["skipped", "skipped", "skipped"]);
    expect(p.calls()).toHaveLength(3);
  });

  it("only the nodes that ran are rewritten in pipeline.lock", async () => {
    const p = await built();
    const before = p.read("pipeline.lock");
    p.write("pipeline.yaml", BASE_CONFIG.replace("Weekly", "Daily"));
    await p.build();
    const after = p.read("pipeline.lock");
    const section = (text: string, id: string) => text.split(`\n  ${id}:\n`)[1]!.split(/\n  \w+:\n/)[0];
    expect(section(after, "source")).toBe(section(before, "source"));
    expect(section(after, "lower")).toBe(section(before, "lower"));
    expect(section(after, "report")).not.toBe(section(before, "report"));
  });
});
