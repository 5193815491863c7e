// A warm no-op reuses what earlier runs parsed and listed (engine/parse-cache.ts, Digester.glob), and
// those memos never hide a change: each is keyed by what it was made from.
import { mkdirSync, readdirSync, renameSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BASE_CONFIG, FakeProject } from "../helpers/fake-project.ts";

const COUNT_MODULES = ["--import", join(import.meta.dirname, "../helpers/count-modules.mjs")];

/** Dates the input folder an hour back: a listing is memoized only once its folder has stopped changing. */
function settle(p: FakeProject): void {
  const hourAgo = new Date(Date.now() - 3_600_000);
  utimesSync(p.path("input"), hourAgo, hourAgo);
}

/** A built project whose input folder was last changed an hour ago, so its glob listing is memoized. */
async function builtWithSettledInputs(): Promise<FakeProject> {
  const p = new FakeProject();
  settle(p);
  expect((await p.build())._result.code).toBe(0);
  return p;
}

function packagesLoaded(stderr: string): string[] {
  const m = /@@modules (.*)/.exec(stderr);
  if (!m) throw new Error(`no module count in:\n${stderr}`);
  return Object.keys((JSON.parse(m[1]!) as { byPackage: Record<string, number> }).byPackage);
}

describe.concurrent("warm runs", () => {
  it("a no-op loads neither yaml, zod nor fast-glob, and a cold run does", async () => {
    const p = new FakeProject();
    const cold = await p.run(["report", "--json"], COUNT_MODULES);
    expect(cold.code).toBe(0);
    expect(packagesLoaded(cold.stderr)).toEqual(expect.arrayContaining(["yaml", "zod", "fast-glob"]));
    settle(p);
    await p.build(); // lists the now-settled input folder once more, and memoizes it
    const warm = await p.run(["report", "--json"], COUNT_MODULES);
    expect(warm.json.nodes.map((n) => n.status)).toEqual(["fresh", "fresh", "fresh"]);
    expect(packagesLoaded(warm.stderr).filter((k) => ["yaml", "zod", "fast-glob"].includes(k))).toEqual([]);
  });

  it("with a remote cache configured, a no-op loads no S3 client: the remote is asked only about stale nodes", async () => {
    // An endpoint nothing listens on: any request would fail the build.
    const p = new FakeProject(`${BASE_CONFIG}cache:\n  remote: s3://team-cache/x\n  endpoint: http://127.0.0.1:9\n`);
    expect((await p.build("--no-remote"))._result.code).toBe(0);
    settle(p);
    await p.build("--no-remote");
    const warm = await p.run(["report", "--json"], COUNT_MODULES);
    expect(warm.json.nodes.map((n) => n.status)).toEqual(["fresh", "fresh", "fresh"]);
    expect(packagesLoaded(warm.stderr).filter((k) => k.startsWith("@aws-sdk/") || k.startsWith("@smithy/"))).toEqual([]);
  });

  it("a memoized glob still sees a file added, removed or renamed", async () => {
    const p = await builtWithSettledInputs();
    expect(await p.build()).toMatchObject({ source: "fresh", lower: "fresh", report: "fresh" });
    p.write("input/b.txt", "More\n");
    expect(await p.build()).toMatchObject({ source: "ran" });
    expect(p.read("models/source/all.txt")).toContain("More");
    rmSync(p.path("input/b.txt"));
    expect(await p.build()).toMatchObject({ source: "restored" }); // the first build's output, from the build cache
    expect(p.read("models/source/all.txt")).not.toContain("More");
    renameSync(p.path("input/a.txt"), p.path("input/d.txt"));
    expect(await p.build()).toMatchObject({ source: "ran" });
    expect((await p.run(["status", "--json"])).json.nodes[0]).toMatchObject({ stale: false });
    mkdirSync(p.path("input/sub"));
    writeFileSync(p.path("input/sub/c.txt"), "Not matched by input/*.txt\n");
    expect(await p.build()).toMatchObject({ source: "fresh" });
  });

  it("a config edited after a warm run is parsed and validated again", async () => {
    const p = await builtWithSettledInputs();
    p.write("pipeline.yaml", BASE_CONFIG.replace("Weekly", "Monthly"));
    expect(await p.build()).toMatchObject({ source: "fresh", lower: "fresh", report: "ran" });
    expect(p.read("models/report/report.txt")).toMatch(/^# Monthly/);
    p.write("pipeline.yaml", BASE_CONFIG.replace("Weekly", "''"));
    const bad = await p.run(["report"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/pipeline\.yaml:3: report\.title/);
  });

  it("a torn parse memo is parsed again, not trusted", async () => {
    const p = await builtWithSettledInputs();
    const parsed = p.path("cache", "parsed");
    for (const name of ["config", "lock"]) {
      const slot = readdirSync(parsed).find((f) => f.startsWith(name))!;
      writeFileSync(join(parsed, slot), '{"key": "');
    }
    expect(await p.build()).toMatchObject({ source: "fresh", lower: "fresh", report: "fresh" });
  });
});
