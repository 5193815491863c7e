// QLoRA: a 4-bit MLX base model (made here with mlx_lm convert) is trained and fused; the fused model is
// de-quantized, its config.json has no quantization key at any depth, and it loads and generates.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { readHeader } from "../../guard/safetensors.ts";
import { keyPaths, pipelineYaml, Project, ran, sample, type RunResult } from "../helpers/project.ts";

const QUANT_KEYS = ["quantization", "quantization_config"];
const LORA = { iters: 2, batch_size: 2, steps_per_report: 1, steps_per_eval: 2, save_every: 2, val_batches: 1 };

/** Tensor names of every safetensors file in a folder (from the headers). */
async function tensorNames(dir: string): Promise<string[]> {
  const files = readdirSync(dir).filter((f) => f.endsWith(".safetensors"));
  return (await Promise.all(files.map((f) => readHeader(join(dir, f))))).flat().map(([name]) => name);
}

describe("a 4-bit base model", () => {
  let p: Project;
  let q4: string;
  let built: RunResult;

  beforeAll(async () => {
    p = new Project(pipelineYaml({ lora: LORA }), { "data/train.jsonl": sample(40) });
    await p.mustBuild("model");
    const tc = p.toolchain("mlx-env");
    q4 = join(mkdtempSync(join(tmpdir(), "mlx-q4-")), "q4");
    execFileSync(tc.python, ["-m", "mlx_lm", "convert", "--hf-path", p.path("models/model/model"), "--mlx-path", q4, "-q", "--q-bits", "4", "--q-group-size", "64"], {
      env: { ...process.env, ...tc.env, HF_HUB_OFFLINE: "1" },
      stdio: "pipe",
    });
    p.write("pipeline.yaml", pipelineYaml({ model: q4, lora: LORA }));
    built = await p.mustBuild("fused");
  });

  it("the base really is quantized", async () => {
    const config = JSON.parse(readFileSync(join(q4, "config.json"), "utf8")) as object;
    expect(keyPaths(config, QUANT_KEYS).length).toBeGreaterThan(0);
    expect((await tensorNames(q4)).some((n) => n.endsWith(".scales"))).toBe(true);
  });

  it("trains, fuses and de-quantizes: no quantization key at any depth, no quantized tensors", async () => {
    expect(ran(built)).toEqual(["adapters", "data", "formatted", "fused", "model"]);
    const config = p.readJson("models/fused/config.json");
    expect(keyPaths(config, QUANT_KEYS)).toEqual([]);
    const names = await tensorNames(p.path("models/fused"));
    expect(names.length).toBeGreaterThan(0);
    expect(names.filter((n) => n.endsWith(".scales") || n.endsWith(".biases"))).toEqual([]);
  });

  it("the fused model loads and generates", () => {
    const smoke = p.readJson<{ prompt_tokens: number[]; tokens: number[]; stop: string; prompt: string }>("models/fused/smoke.json");
    expect(smoke.prompt).toContain("Convert 7 km to m.");
    expect(smoke.prompt_tokens.length).toBeGreaterThan(5);
    // It generated: either tokens, or an end-of-generation token first (the trained tiny model often ends at once).
    expect(smoke.stop === "eos" || smoke.tokens.length > 0).toBe(true);
    expect(["eos", "length"]).toContain(smoke.stop);
  });
});
