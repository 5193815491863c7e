// A warm no-op reuses what earlier runs parsed and listed (engine/parse-cache.ts, Digester.glob), and
// those memos never hide a change: each is keyed by what it was made from.
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BASE_CONFIG, FakeProject } from "../helpers/fake-project.ts";
import { COUNT_MODULES, modulesLoaded, packagesLoaded } from "../helpers/modules.ts";
import { Project } from "../helpers/project.ts";


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

/**
 * What a no-op needs of the engine: planning, hashing and reporting; nothing that locks, schedules, runs,
 * restores or stores.
 */
const ENGINE_NOOP = [
  "engine/main.ts",
  "engine/replay/record.ts", // main.ts's, which looks for a no-op record first (none here: MLX_PIPELINE_REPLAY=off)
  "engine/replay/replay.ts",
  "engine/caching/settings.ts",
  "engine/cli.ts",
  "engine/config.ts",
  "engine/digest.ts",
  "engine/durable.ts",
  "engine/engine.ts",
  "engine/fingerprint.ts",
  "engine/graph.ts",
  "engine/lockfile.ts",
  "engine/outputs.ts",
  "engine/packages.ts",
  "engine/parse-cache.ts",
  "engine/plan.ts",
  "engine/reporter.ts",
  "engine/types.ts",
];

/**
 * What a no-op of the real pipeline's `data` node needs besides the engine: the entry point, the registry, the
 * data stage's module and the helpers its inputs read (the interpreter is asked while modules load). No other
 * stage's module: the graph holds only the target and what it depends on (stages/index.ts).
 */
const DATA_NOOP = [
  "pipeline.ts",
  "config/model-ref.ts",
  "config/reserved-paths.ts",
  "stages/data.ts",
  "stages/index.ts",
  "stages/lib/toolchain/paths.ts",
  "stages/lib/toolchain/python.ts",
];

/**
 * What the whole graph loads besides the engine (`graph`, `verify`): every stage's module and the helpers their
 * inputs read (tool versions, script paths, the converter's files, the interpreter). Guards' knowledge, data and
 * template readers, training and llama.cpp helpers are imported where they are used; loading one of them here
 * costs every warm run of a node that needs the stage a round trip to tsx's loader.
 */
const WHOLE_GRAPH = [
  ...DATA_NOOP,
  "stages/adapters.ts",
  "stages/base-gguf.ts",
  "stages/deploy.ts",
  "stages/eval.ts",
  "stages/formatted.ts",
  "stages/fused.ts",
  "stages/gguf.ts",
  "stages/hf.ts",
  "stages/llama-cpp.ts",
  "stages/llama-server.ts",
  "stages/lora-gguf.ts",
  "stages/mlx-env.ts",
  "stages/model.ts",
  "stages/ollama.ts", // no quantizer.ts: only a config with gguf.quantize has that node
  "stages/lib/llama/converter.ts",
  "stages/lib/llama/program.ts", // the llama.cpp programs' inputs (llama-quantize, llama-server)
  "stages/lib/toolchain/json-file.ts",
  "stages/lib/model/model-ref.ts",
  "stages/lib/toolchain/tools.ts",
  "stages/lib/data/training-metrics.ts",
  "stages/lib/toolchain/venv.ts",
  "engine/verdicts.ts", // stages/gguf.ts imports the verdicts' table
];

describe.concurrent("warm runs", () => {
  // These no-ops plan: MLX_PIPELINE_REPLAY=off, so none is answered from a record (the next describe's are).
  it("a no-op loads neither yaml, zod nor fast-glob, and a cold run does", async () => {
    const p = new FakeProject();
    p.env.MLX_PIPELINE_REPLAY = "off";
    const cold = await p.run(["report", "--json"], COUNT_MODULES);
    expect(cold.code).toBe(0);
    expect(packagesLoaded(cold.stderr)).toEqual(expect.arrayContaining(["yaml", "zod", "fast-glob"]));
    settle(p);
    await p.build(); // lists the now-settled input folder once more, and memoizes it
    const warm = await p.run(["report", "--json"], COUNT_MODULES);
    expect(warm.json.nodes.map((n) => n.status)).toEqual(["fresh", "fresh", "fresh"]);
    expect(packagesLoaded(warm.stderr).filter((k) => ["yaml", "zod", "fast-glob"].includes(k))).toEqual([]);
  });

  it("a no-op loads exactly the modules it needs, and no package", async () => {
    const p = new FakeProject();
    p.env.MLX_PIPELINE_REPLAY = "off";
    settle(p);
    await p.build();
    await p.build(); // lists the now-settled input folder once more, and memoizes it
    const warm = modulesLoaded((await p.run(["report", "--json"], COUNT_MODULES)).stderr);
    expect(warm.project).toEqual(["test/fixtures/fake-app.ts", "test/fixtures/fake-pipeline.ts", ...ENGINE_NOOP].sort());
    expect(Object.keys(warm.byPackage).filter((k) => !["tsx", "esbuild", "node:*", "project"].includes(k))).toEqual([]);
  });

  it("a no-op of the real pipeline loads its target's stage modules for their inputs, and none of what their guards and runs use, and starts no Python", async () => {
    // The data node alone: pure TypeScript, and no other stage's module loads.
    const p = new Project();
    p.env.MLX_PIPELINE_REPLAY = "off";
    // A shim in front of python3, as pyenv's: the entry point asks it its version (prefetchPython), once.
    const asked = p.path("python-runs.log");
    p.write("bin/python3", `#!/bin/sh\necho run >> '${asked}'\nexec python3 "$@"\n`);
    chmodSync(p.path("bin/python3"), 0o755);
    p.env.PYTHON = p.path("bin/python3");
    const runs = () => (existsSync(asked) ? readFileSync(asked, "utf8").split("\n").filter(Boolean).length : 0);
    const hourAgo = new Date(Date.now() - 3_600_000);
    expect((await p.build("data")).code).toBe(0);
    utimesSync(p.path("data"), hourAgo, hourAgo);
    await p.build("data"); // memoizes the settled data folder's listing
    expect(runs()).toBeGreaterThan(0);
    const before = runs();
    const warm = await p.run(["data", "--json"], undefined, { NODE_OPTIONS: COUNT_MODULES.join(" ") });
    expect(warm.statuses).toEqual({ data: "fresh" });
    expect(modulesLoaded(warm.stderr).project).toEqual([...DATA_NOOP, ...ENGINE_NOOP].sort());
    expect(runs(), "the shim's answer is remembered (stages/lib/toolchain/python.ts)").toBe(before);
    const whole = await p.run(["graph"], undefined, { NODE_OPTIONS: COUNT_MODULES.join(" ") });
    expect(whole.code).toBe(0);
    expect(modulesLoaded(whole.stderr).project).toEqual([...WHOLE_GRAPH, ...ENGINE_NOOP].sort());
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

/** What a no-op answered from its record loads besides the entry point: main.ts and the record's two modules. */
const REPLAY = ["engine/main.ts", "engine/replay/record.ts", "engine/replay/replay.ts"];

/**
 * Runs a no-op until one writes its record (engine/replay), at most three: the first after a build caches the
 * digests of what the build wrote (a run that changes a file is not recorded). Returns that run.
 */
async function recordedNoop<R extends { code: number | null }>(dir: string, run: () => Promise<R>): Promise<R> {
  for (let i = 0; i < 3; i++) {
    const r = await run();
    expect(r.code).toBe(0);
    if (existsSync(join(dir, "cache", "noop")) && readdirSync(join(dir, "cache", "noop")).length > 0) return r;
  }
  throw new Error(`three no-ops in ${dir} and no record written`);
}

const withoutModuleCount = (stderr: string) => stderr.replace(/@@modules .*\n/, "");

describe.concurrent("no-ops answered from their record", () => {
  it("a fake graph's loads the entry point and the replay modules, and prints what the run it recorded printed", async () => {
    const p = new FakeProject();
    await p.build();
    const recorded = await recordedNoop(p.dir, () => p.run(["report", "--json"], COUNT_MODULES));
    expect(modulesLoaded(recorded.stderr).project).toEqual(expect.arrayContaining(["engine/plan.ts", "engine/replay/trace.ts", "engine/replay/save.ts"]));
    const replayed = await p.run(["report", "--json"], COUNT_MODULES);
    expect(replayed.code).toBe(0);
    // The fixture's own module imports engine/types.ts for assertSuccess.
    expect(modulesLoaded(replayed.stderr).project).toEqual(["test/fixtures/fake-app.ts", "test/fixtures/fake-pipeline.ts", "engine/types.ts", ...REPLAY].sort());
    expect(replayed.stdout).toBe(recorded.stdout);
    expect(withoutModuleCount(replayed.stderr)).toBe(withoutModuleCount(recorded.stderr));
  });

  it("the real pipeline's loads pipeline.ts and the replay modules, no stage and no package, and starts no Python", async () => {
    const p = new Project();
    const asked = p.path("python-runs.log");
    p.write("bin/python3", `#!/bin/sh\necho run >> '${asked}'\nexec python3 "$@"\n`);
    chmodSync(p.path("bin/python3"), 0o755);
    p.env.PYTHON = p.path("bin/python3");
    p.env.NODE_OPTIONS = COUNT_MODULES.join(" ");
    expect((await p.build("data")).code).toBe(0);
    const recorded = await recordedNoop(p.dir, () => p.run(["data", "--json"]));
    const asks = () => (existsSync(asked) ? readFileSync(asked, "utf8") : "");
    const before = asks();
    const replayed = await p.run(["data", "--json"]);
    expect(replayed.statuses).toEqual({ data: "fresh" });
    const loaded = modulesLoaded(replayed.stderr);
    expect(loaded.project).toEqual(["pipeline.ts", ...REPLAY].sort());
    expect(Object.keys(loaded.byPackage).filter((k) => !["tsx", "esbuild", "node:*", "project"].includes(k))).toEqual([]);
    expect(replayed.stdout).toBe(recorded.stdout);
    expect(asks(), "the interpreter is not asked").toBe(before);
  });
});
