// tiny:llama from nothing to `fused` with the real tools, then the incremental rebuilds: a no-op, one edited data
// line, a changed LoRA param, a comment-only config edit. Each asserts exactly which nodes ran.
import { availableParallelism, cpus } from "node:os";
import { beforeAll, describe, expect, it } from "vitest";
import { keyPaths, pipelineYaml, Project, ran, sample, type RunResult } from "../helpers/project.ts";
import { sharedTraining } from "../helpers/shared-project.ts";

const UPSTREAM = ["mlx-env", "model", "data", "formatted", "adapters", "fused"];

describe("training tiny:llama to fused, then incremental rebuilds", () => {
  let p: Project;
  let first: RunResult;

  beforeAll(async () => {
    // The defaults train 6 iterations; distributed.test.ts starts from the same build (shared-project.ts).
    ({ project: p, first } = await sharedTraining());
  }, 1_800_000);

  it("builds every node on the way to fused from nothing", () => {
    expect(first.json.ok).toBe(true);
    expect(ran(first)).toEqual([...UPSTREAM].sort());
    for (const node of UPSTREAM) expect(p.exists(`models/${node}`), node).toBe(true);
    // The converter is not on the way to fused.
    expect(p.exists("models/llama-cpp")).toBe(false);
    expect(p.exists("models/gguf")).toBe(false);
  });

  it("writes metrics.jsonl with train and validation reports", () => {
    const metrics = p.readJsonl<{ type: string; iteration: number; train_loss?: number; val_loss?: number }>("models/adapters/metrics.jsonl");
    const train = metrics.filter((m) => m.type === "train");
    const val = metrics.filter((m) => m.type === "val");
    expect(train.length).toBeGreaterThan(0);
    expect(val.length).toBeGreaterThan(0);
    expect(train.map((m) => m.iteration)).toEqual([3, 6]);
    for (const m of train) expect(Number.isFinite(m.train_loss)).toBe(true);
    for (const m of val) expect(Number.isFinite(m.val_loss)).toBe(true);
    expect(p.exists("models/adapters/adapters.safetensors")).toBe(true);
    expect(p.readJson<{ iters: number }>("models/adapters/adapter_config.json").iters).toBe(6);
  });

  it("fuses into a model whose config.json has no quantization key, and which generates", () => {
    const config = p.readJson("models/fused/config.json");
    expect(keyPaths(config, ["quantization", "quantization_config"])).toEqual([]);
    const smoke = p.readJson<{ tokens: number[]; prompt: string }>("models/fused/smoke.json");
    expect(smoke.tokens.length).toBeGreaterThan(0);
    expect(smoke.prompt).toContain("Convert 7 km to m.");
  });

  it("a second run is a no-op", async () => {
    const before = p.read("pipeline.lock");
    const again = await p.build("fused");
    expect(again.code, again.stderr).toBe(0);
    expect(again.statuses).toEqual(Object.fromEntries(UPSTREAM.map((id) => [id, "fresh"])));
    expect(p.read("pipeline.lock")).toBe(before);
  });

  it("one edited data line reruns data, formatted, adapters and fused, and nothing else", async () => {
    const lines = p.read("data/train.jsonl").split("\n");
    // An example the training sees: its 6 batches of 2 hold 12 of the 36 training examples, and an edit to one it
    // never sees leaves the adapters byte-identical (the cascade then stops there, as it should).
    lines[4] = JSON.stringify({ messages: [{ role: "user", content: "Convert 3 km to m." }, { role: "assistant", content: "3 km = 3000 m." }] });
    p.write("data/train.jsonl", lines.join("\n"));
    const result = await p.build("fused");
    expect(result.code, result.stderr).toBe(0);
    expect(ran(result)).toEqual(["adapters", "data", "formatted", "fused"]);
    expect(result.statuses["mlx-env"]).toBe("fresh");
    expect(result.statuses.model).toBe("fresh");
  });

  it("a changed lora.iters reruns adapters and fused only", async () => {
    p.write("pipeline.yaml", pipelineYaml({ lora: { iters: 9 } }));
    const result = await p.build("fused");
    expect(result.code, result.stderr).toBe(0);
    expect(ran(result)).toEqual(["adapters", "fused"]);
    for (const id of ["mlx-env", "model", "data", "formatted"]) expect(result.statuses[id], id).toBe("fresh");
    expect(p.readJsonl<{ type: string; iteration: number }>("models/adapters/metrics.jsonl").filter((m) => m.type === "train").at(-1)?.iteration).toBe(9);
    expect(p.lock().adapters!.params).toMatchObject({ iters: 9 });
  });

  it("a comment-only edit of pipeline.yaml reruns nothing", async () => {
    p.write("pipeline.yaml", `# a new comment at the top\n${pipelineYaml({ lora: { iters: 9 } }).replace("num_layers: -1", "num_layers: -1 # every layer")}`);
    const result = await p.build("fused");
    expect(result.code, result.stderr).toBe(0);
    expect(ran(result)).toEqual([]);
    expect(result.statuses).toEqual(Object.fromEntries(UPSTREAM.map((id) => [id, "fresh"])));
  });
});

describe("training with FORCE_COLOR in the environment", () => {
  // FORCE_COLOR (set by many CI systems) once made rich wrap mlx-lm's output and the metrics lines with it;
  // the metrics now go to stderr and FORCE_COLOR is removed from the tools' environment.
  it("trains and reports metrics with FORCE_COLOR set, and the memory estimate beside the measured peak", async () => {
    const p = new Project(pipelineYaml({ lora: { iters: 3, steps_per_report: 3, steps_per_eval: 3, save_every: 3 } }), { "data/train.jsonl": sample(40) });
    const result = await p.run(["adapters", "--json"], undefined, { FORCE_COLOR: "1" });
    expect(result.stderr).not.toMatch(/SyntaxError/);
    expect(result.code, result.stderr.slice(-2000)).toBe(0);
    expect(p.readJsonl("models/adapters/metrics.jsonl").length).toBeGreaterThan(0);
    // The memory estimate is kept beside the peak mlx-lm measured.
    const memory = p.readJson<{ measuredPeakGB: number; estimatedPeakGB: number }>("models/adapters/memory.json");
    expect(memory.measuredPeakGB).toBeGreaterThan(0.05);
    // The estimate may err high (it carries a fixed runtime overhead), never below what was measured.
    expect(memory.estimatedPeakGB).toBeGreaterThanOrEqual(memory.measuredPeakGB);
    expect(memory.estimatedPeakGB).toBeLessThan(memory.measuredPeakGB * 3);
    expect(p.lock().adapters?.facts).toMatchObject({ peak_memory_gb: memory.measuredPeakGB, estimated_peak_gb: memory.estimatedPeakGB });
    // How it trained, which the bytes depend on: OpenBLAS's threads (every core; Linux, where mlx uses OpenBLAS) and the CPU.
    expect(p.lock().adapters?.facts).toMatchObject({ cpu: cpus()[0]!.model.trim(), ...(process.platform === "linux" ? { openblas_threads: availableParallelism() } : {}) });
  });
});
