// Experiments with the real tools on the tiny model: -S for one build (validated, pipeline.lock untouched),
// --save, a 2×2 sweep whose one combination the memory guard refuses before anything trains, Ctrl-C in a sweep
// then the same sweep training only the rest, a sweep to eval scoring each combination, `runs` with each
// training's numbers, and clones seeing them: through a shared store, and through a remote (`runs push`).
import { appendFileSync, cpSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { pipelineYaml, Project, waitFor } from "../helpers/project.ts";
import { readReport } from "../helpers/report.ts";
import { SHARED_EVAL } from "../helpers/shared-project.ts";

// Two iterations: each training takes seconds. A test split of 4 for eval.
const CONFIG = pipelineYaml({ data: { test_fraction: 0.1 }, eval: SHARED_EVAL, lora: { iters: 2, save_every: 2, steps_per_report: 1, steps_per_eval: 2 } }).replace(
  "  rank: 4\n",
  "  rank: 4 # the committed rank\n",
);

interface RunRow {
  id: string;
  params: { rank: number; num_layers: number; learning_rate: number };
  diff: { key: string; then: unknown; now: unknown }[];
  current: boolean;
  trainLoss?: number;
  valLoss?: number;
  tokensPerSecond?: number;
  peakMemoryGB?: number;
  seconds?: number;
  eval?: { examples: number; fineTuned: number; base: number; gguf: number };
  remoteOnly?: boolean;
}

interface SweepJson {
  ok: boolean;
  sweep: { setting: Record<string, unknown>; outcome: string; verdicts?: { code: string; message: string; fix?: string }[] }[];
}

describe("experiments (tiny model)", () => {
  const p = new Project(CONFIG);
  let lock = "";
  let lockAfterSave = "";

  const runs = async (project = p): Promise<RunRow[]> => {
    const r = await project.run(["runs", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    return (JSON.parse(r.stdout) as { runs: RunRow[] }).runs;
  };

  it("-S is validated by the config's schema and builds without rewriting pipeline.lock", async () => {
    await p.mustBuild("adapters");
    lock = p.read("pipeline.lock");
    expect(lock).toMatch(/^project: [0-9a-f]{16}$/m);

    const unknown = await p.run(["adapters", "-S", "lora.rnk=8"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/-S lora\.rnk=8: unknown key lora\.rnk/);
    const bad = await p.run(["status", "-S", "lora.rank=-3"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/-S lora\.rank=-3: lora\.rank: .*>0/);

    const built = await p.build("adapters", "-S", "lora.num_layers=1");
    expect(built.code, built.stderr).toBe(0);
    expect(built.statuses.adapters).toBe("ran");
    expect(built.statuses.formatted).toBe("fresh");
    expect(p.readJson<{ num_layers: number }>("models/adapters/adapter_config.json").num_layers).toBe(1);
    expect(p.read("pipeline.lock")).toBe(lock);
    expect(p.read("pipeline.yaml")).toBe(CONFIG);
    // The committed setting is back from the build cache, the lock's bytes.
    expect((await p.build("adapters")).statuses.adapters).toBe("restored");
    expect(p.read("pipeline.lock")).toBe(lock);
  });

  it("a 2×2 sweep: the combination that will not fit is refused before anything trains, the rest built or restored", async () => {
    // On a "1150MB" linux machine (1.21 GB usable) the memory guard fits rank 8192 on one layer (about 1.04 GB
    // estimated, the data tokenized) but not on both (about 1.31 GB): one combination of rank × num_layers is refused.
    const machine = ["-S", "memory.total=1150MB", "-S", "memory.os=linux"];
    const r = await p.build("adapters", "-S", "lora.rank=4,8192", "-S", "lora.num_layers=1,-1", ...machine);
    expect(r.code).toBe(1);
    const doc = r.json as unknown as SweepJson;
    expect(doc.sweep.map((c) => [c.setting["lora.rank"], c.setting["lora.num_layers"], c.outcome]), r.stderr).toEqual([
      [4, 1, "built"],
      [4, -1, "built"],
      [8192, 1, "built"],
      [8192, -1, "refused"],
    ]);
    expect(doc.sweep[3]!.verdicts![0]!.code).toBe("memory.exceeds");
    expect(doc.sweep[3]!.verdicts![0]!.fix).toMatch(/Changes that fit/);
    // Refused, with its fixes, before the first combination built; then only rank 8192 on one layer trained.
    const refusedAt = r.stderr.indexOf("[4/4] -S lora.rank=8192 -S lora.num_layers=-1 -S memory.total=1150MB -S memory.os=linux: refused");
    expect(refusedAt).toBeGreaterThan(-1);
    expect(refusedAt).toBeLessThan(r.stderr.indexOf("[1/4] -S lora.rank=4 -S lora.num_layers=1 -S memory.total=1150MB -S memory.os=linux: building adapters"));
    expect(r.stderr).toMatch(/1 of 4 combinations refused by their guards before anything ran \(fixes above\); the other 3 build now/);
    expect(r.stderr.match(/adapters: restored/g)).toHaveLength(2);
    expect(r.stderr.match(/adapters: built in/g)).toHaveLength(1);
    expect(p.read("pipeline.lock")).toBe(lock);

    const table = await runs();
    expect(table.map((t) => [t.params.rank, t.params.num_layers]).sort()).toEqual([[4, -1], [4, 1], [8192, 1]].sort());
    for (const t of table) {
      expect(t.trainLoss).toBeGreaterThan(0);
      expect(t.valLoss).toBeGreaterThan(0);
      expect(t.tokensPerSecond).toBeGreaterThan(0);
      expect(t.peakMemoryGB).toBeGreaterThan(0);
      expect(t.seconds).toBeGreaterThan(0);
    }
    const big = table.find((t) => t.params.rank === 8192)!;
    expect(big.diff).toEqual([
      { key: "num_layers", then: 1, now: -1 },
      { key: "rank", then: 8192, now: 4 },
    ]);
    expect(table.find((t) => t.current)!.params).toMatchObject({ rank: 4, num_layers: -1 });
    const text = await p.run(["runs", "--sort", "loss"]);
    expect(text.stdout).toMatch(new RegExp(`^${big.id}\\s+\\S+ \\S+\\s+num_layers=1 rank=8192\\s+\\d+\\.\\d{4}\\s+\\d+\\.\\d{4}`, "m"));

    // `runs show` prints the command that restores a run; it restores in seconds, the lock untouched.
    const show = await p.run(["runs", "show", big.id.slice(0, 6)]);
    expect(show.code, show.stderr).toBe(0);
    const command = /restore it: npx tsx pipeline\.ts (.*)$/m.exec(show.stdout)![1]!;
    expect(command).toBe("adapters -S lora.num_layers=1 -S lora.rank=8192");
    const restored = await p.build(...(command.split(" ") as [string, ...string[]]));
    expect(restored.statuses.adapters).toBe("restored");
    expect(restored.ms).toBeLessThan(60_000);
    const current = table.find((t) => t.current)!;
    const diff = await p.run(["runs", "diff", big.id, current.id]);
    expect(diff.stdout).toMatch(/^lora\.rank\s+8192\s+4$/m);

    // The report overlays the runs it is given, each labelled with its id and the params that differ.
    const report = await p.run(["report", "--runs", `${big.id},${current.id}`]);
    expect(report.code, report.stderr).toBe(0);
    const page = readReport(p.path("models/report/index.html"));
    const dashed = [...page.document.querySelectorAll('figure[data-chart="loss"] g[aria-label="line"][stroke-dasharray] path')];
    expect(dashed.map((path) => path.querySelector("title")?.textContent)).toEqual([
      `earlier 1: ${big.id}: num_layers 1 (now -1), rank 8192 (now 4)`,
      `earlier 2: ${current.id}: pipeline.lock's training`,
    ]);
    const unknownRun = await p.run(["report", "--runs", "ffffffffff"]);
    expect(unknownRun.code).toBe(2);
    expect(unknownRun.stderr).toMatch(/no run ffffffffff in this project's build cache \(runs: /);
  });

  it("Ctrl-C in a sweep keeps what finished: the same sweep again trains only the rest", async () => {
    const args = ["adapters", "-S", "lora.learning_rate=0.0001,0.0002"];
    let stderr = "";
    const interrupted = await p.run(args, (child) => {
      child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
      void waitFor(() => /\[2\/2\][^\n]*building adapters[\s\S]*training 2 iterations/.test(stderr), 300_000).then(() => child.kill("SIGINT"));
    });
    expect(interrupted.code).toBe(130);
    expect(interrupted.stderr).toMatch(/\[1\/2\][\s\S]*adapters: built in[\s\S]*interrupted \(SIGINT\): adapters cancelled/);
    expect(interrupted.stderr).toMatch(/sweep interrupted \(SIGINT\): 1 of 2 combinations finished, kept in the build cache/);

    const again = await p.build(...(args as [string, ...string[]]));
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr.match(/adapters: restored/g)).toHaveLength(1);
    expect(again.stderr.match(/adapters: built in/g)).toHaveLength(1);
    expect((await runs()).map((t) => t.params.learning_rate)).toEqual(expect.arrayContaining([0.0001, 0.0002]));
    expect(p.read("pipeline.lock")).toBe(lock);
  });

  it("--save writes the setting into pipeline.yaml, comments kept, and pipeline.lock", async () => {
    const saved = await p.build("adapters", "-S", "lora.num_layers=1", "--save");
    expect(saved.code, saved.stderr).toBe(0);
    expect(saved.statuses.adapters).toBe("restored");
    expect(p.read("pipeline.yaml")).toBe(CONFIG.replace("num_layers: -1", "num_layers: 1"));
    expect(p.read("pipeline.yaml")).toContain("rank: 4 # the committed rank");
    expect(p.lock().adapters!.params).toMatchObject({ num_layers: 1 });
    const status = await p.run(["status", "adapters", "--json"]);
    expect(status.json.nodes.every((n) => (n as unknown as { stale: boolean }).stale === false)).toBe(true);
    lockAfterSave = p.read("pipeline.lock");
  });

  it("a sweep to eval scores every combination: runs --sort eval ranks them by held-out exact answers", async () => {
    const r = await p.build("eval", "-S", "lora.num_layers=1,-1");
    expect(r.code, r.stderr).toBe(0);
    // Both trainings are kept from before (num_layers 1 is the saved setting's, in models/ already): nothing trains.
    expect(r.stderr).not.toMatch(/adapters: built in/);
    expect(r.stderr.match(/eval: built in/g)).toHaveLength(2);
    expect(p.read("pipeline.lock")).toBe(lockAfterSave);
    const scored = (await runs()).filter((t) => t.eval);
    expect(scored.map((t) => t.params.num_layers).sort()).toEqual([-1, 1]);
    // models/eval holds the last combination's (num_layers -1): the table shows that eval's numbers for it.
    const last = p.readJson<{ examples: number; fineTuned: { exact: number }; base: { exact: number }; gguf: { exact: number } }>("models/eval/eval.json");
    expect(scored.find((t) => t.params.num_layers === -1)!.eval).toEqual({ examples: 4, fineTuned: last.fineTuned.exact, base: last.base.exact, gguf: last.gguf.exact, testLoss: expect.any(Number) });
    const text = await p.run(["runs", "--sort", "eval"]);
    const rows = text.stdout.split("\n").slice(1, 3);
    expect(rows.every((row) => /\s\d\/4\s/.test(row)), text.stdout).toBe(true);
  });

  it("a clone of the project in another folder sees the same runs", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mlx-pipeline-clone-"));
    for (const f of ["pipeline.yaml", "pipeline.lock", "data"]) cpSync(p.path(f), join(dir, f), { recursive: true });
    const clone = Object.assign(Object.create(Project.prototype) as Project, { dir, env: { MLX_PIPELINE_STORE: p.path(".store") } });
    const here = (await runs()).map((t) => t.id).sort();
    expect(here.length).toBeGreaterThanOrEqual(5);
    expect((await runs(clone)).map((t) => t.id).sort()).toEqual(here);
  });

  it("runs push shares them through a remote: a clone with an empty store lists them with --remote, eval scores included, and restores one", async () => {
    const shared = mkdtempSync(join(tmpdir(), "mlx-pipeline-shared-"));
    const remote = `cache:\n  remote: file://${shared}\n`;
    appendFileSync(p.path("pipeline.yaml"), remote);
    const push = await p.run(["runs", "push", "--json"]);
    expect(push.code, push.stderr).toBe(0);
    const pushed = (JSON.parse(push.stdout) as { runs: Record<string, Record<string, string>> }).runs;
    const here = await runs();
    expect(Object.keys(pushed).sort()).toEqual(here.map((t) => t.id).sort());
    for (const t of here) expect(pushed[t.id]!.adapters).toMatch(/^pushed /);
    for (const t of here.filter((t) => t.eval)) expect(Object.keys(pushed[t.id]!)).toEqual(expect.arrayContaining(["fused", "hf", "gguf", "eval"]));

    const dir = mkdtempSync(join(tmpdir(), "mlx-pipeline-clone-"));
    for (const f of ["pipeline.yaml", "pipeline.lock", "data"]) cpSync(p.path(f), join(dir, f), { recursive: true });
    const clone = Object.assign(Object.create(Project.prototype) as Project, { dir, env: { MLX_PIPELINE_STORE: mkdtempSync(join(tmpdir(), "mlx-pipeline-store-")) } });
    expect(await runs(clone)).toEqual([]);
    const listed = await clone.run(["runs", "--remote", "--json"]);
    expect(listed.code, listed.stderr).toBe(0);
    const there = (JSON.parse(listed.stdout) as { runs: RunRow[] }).runs;
    const strip = (t: RunRow) => ({ id: t.id, params: t.params, trainLoss: t.trainLoss, valLoss: t.valLoss, eval: t.eval });
    expect(there.map(strip).sort((a, b) => a.id.localeCompare(b.id))).toEqual(here.map(strip).sort((a, b) => a.id.localeCompare(b.id)));
    expect(there.every((t) => t.remoteOnly)).toBe(true);

    // Its -S restores the run from the remote: the training and everything to eval, no tool run for them.
    const best = there.find((t) => t.params.num_layers === -1 && t.eval)!;
    const restored = await clone.build("eval", "-S", "lora.num_layers=-1");
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.statuses).toMatchObject({ adapters: "restored", fused: "restored", hf: "restored", gguf: "restored", eval: "restored" });
    expect(clone.readJson<{ fineTuned: { exact: number } }>("models/eval/eval.json").fineTuned.exact).toBe(best.eval!.fineTuned);
    writeFileSync(p.path("pipeline.yaml"), p.read("pipeline.yaml").replace(remote, ""));
  });
});
