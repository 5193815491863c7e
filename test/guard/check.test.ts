// `check` on the real model configs: verdicts for a 16 GB Mac from config.json alone (no weights loaded,
// nothing trained), and guard errors that stop a build before any node runs.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { pipelineYaml, Project, sample } from "../helpers/project.ts";
import { CONFIGS_DIR } from "./fixtures.ts";

const sharedConfigs = () => readdirSync(CONFIGS_DIR).filter((f) => f.endsWith(".json"));

/** A project whose model is a folder holding only `config` (as config.json) and, optionally, tokenizer files. */
function projectWith(config: string, options: Record<string, unknown> = {}): Project {
  const p = new Project(
    pipelineYaml({ model: "./m", lora: { batch_size: 1, max_seq_length: 1024, rank: 8, num_layers: 12, grad_checkpoint: false }, ...options }),
    { "data/train.jsonl": sample(40) },
  );
  mkdirSync(p.path("m"), { recursive: true });
  writeFileSync(p.path("m/config.json"), config);
  return p;
}

function configText(name: string): string {
  return readFileSync(join(CONFIGS_DIR, name), "utf8");
}

interface CheckJson {
  ok: boolean;
  verdicts: { node: string; level: string; code: string; message: string; fix?: string }[];
  memory?: { estimatedPeakBytes: number; usableBytes: number; breakdown: Record<string, number> };
}

async function check(p: Project): Promise<{ code: number | null; json: CheckJson; stderr: string }> {
  const r = await p.run(["check", "adapters", "--json", "--memory", "16GB", "--os", "macos"]);
  return { code: r.code, json: r.json as unknown as CheckJson, stderr: r.stderr };
}

describe.concurrent("check on the shared configs, for a 16 GB Mac (batch 1, max_seq_length 1024, rank 8, 12 layers)", () => {
  const expected: Record<string, "memory.fits" | "memory.close" | "memory.exceeds"> = {
    "Qwen--Qwen2.5-1.5B-Instruct.json": "memory.fits",
    "mlx-community--Qwen2.5-1.5B-Instruct-4bit.derived.json": "memory.fits",
    "mlx-community--Llama-3.2-3B-Instruct-4bit.json": "memory.fits",
    "meta-llama--Llama-3.2-3B-Instruct.json": "memory.close",
    "meta-llama--Llama-3.2-3B.json": "memory.close",
    "alexgusevski--gemma-3-text-4b-it-q8-mlx.derived.json": "memory.fits",
    "google--gemma-3-4b-it.resolved-text_config.json": "memory.exceeds",
    "google--gemma-3-4b-it.assembled.json": "memory.exceeds",
    "google--gemma-3n-E4B.partial.json": "memory.exceeds",
    "ibm-granite--granite-4.0-h-tiny.partial.json": "memory.exceeds",
  };
  it("covers every shared config", () => {
    expect(Object.keys(expected).sort()).toEqual(sharedConfigs().sort());
  });
  for (const [name, code] of Object.entries(expected)) {
    it(`${name}: ${code}, from config.json alone`, async () => {
      const p = projectWith(configText(name));
      const { json } = await check(p);
      const memory = json.verdicts.find((v) => v.code.startsWith("memory."));
      expect(memory?.code).toBe(code);
      expect(memory?.message).toMatch(/a 16 GiB macos machine can use 10\.67 GiB/);
      if (code !== "memory.fits") expect(memory?.fix).toMatch(/Changes that fit: .*→ \d+\.\d+ GiB/);
      expect(json.memory!.usableBytes).toBe(Math.round((16 * 2 ** 30 * 2) / 3));
      expect(json.memory!.estimatedPeakBytes).toBeGreaterThan(1e9);
      // Nothing was built: check reads configs and headers only.
      expect(p.exists("models")).toBe(false);
      expect(p.exists("pipeline.lock")).toBe(false);
    });
  }

  it("Granite 4.0 H Tiny is recognised as a mixture of experts with Mamba layers", async () => {
    const { json } = await check(projectWith(configText("ibm-granite--granite-4.0-h-tiny.partial.json")));
    const codes = json.verdicts.map((v) => v.code);
    expect(codes).toContain("arch.moe");
    expect(codes).toContain("arch.hybrid-mamba");
  });
});

describe.concurrent("guard errors stop a build before any node runs", () => {
  it("a config.json with a missing field", async () => {
    const config = JSON.parse(configText("meta-llama--Llama-3.2-3B-Instruct.json")) as Record<string, unknown>;
    delete config.hidden_size;
    const p = projectWith(JSON.stringify(config));
    const r = await p.build("adapters");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/"hidden_size" is missing/);
    expect(r.stderr).toMatch(/Stopped before running anything/);
    expect(p.exists("models")).toBe(false);
  });

  it("a run that does not fit the planned machine", async () => {
    const p = projectWith(configText("google--gemma-3-4b-it.assembled.json"), { memory: { os: "macos", total: "16GB" } });
    const r = await p.build("adapters");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/it will not fit/);
    expect(r.stderr).toMatch(/Changes that fit: a 4-bit base model .*→ 7\.\d+ GiB/);
    expect(p.exists("models")).toBe(false);
  });

  it("an outtype the converter does not write", async () => {
    const p = new Project(pipelineYaml({ gguf: { outtype: "q4_k_m" } }));
    const r = await p.build("gguf");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/gguf.outtype q4_k_m is not a type llama.cpp .* writes/);
    expect(r.stderr).toMatch(/f16, bf16, q8_0/);
    expect(r.stderr).toMatch(/set gguf.quantize instead/);
    expect(p.exists("models")).toBe(false);
  });

  it("a quant type llama.cpp does not know", async () => {
    const p = new Project(pipelineYaml({ gguf: { outtype: "f16", quantize: "Q4_K_Q" } }));
    const r = await p.build("gguf");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/"Q4_K_Q" is not a llama.cpp quant type/);
    expect(r.stderr).toMatch(/Q4_K_M/);
    expect(p.exists("models")).toBe(false);
  });

  it("a model_type the installed mlx-lm lacks, and an architecture the converter does not register", async () => {
    const config = JSON.parse(configText("meta-llama--Llama-3.2-3B-Instruct.json")) as Record<string, unknown>;
    const p = projectWith(JSON.stringify({ ...config, model_type: "foobar_lm", architectures: ["FooBarForCausalLM"] }));
    writeFileSync(p.path("m/tokenizer.json"), "{}");
    await p.mustBuild("mlx-env"); // mlx-lm answers the guard
    const r = await p.build("gguf");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/mlx-lm 0\.\d+\.\d+ has no model for model_type "foobar_lm"/);
    expect(r.stderr).toMatch(/does not support FooBarForCausalLM: the GGUF step would fail after training/);
    expect(r.json.nodes ?? []).toEqual([]);
    expect(p.exists("models/model")).toBe(false);
  });

  it("a memory size that is not one, in pipeline.yaml or on the command line: exit 2", async () => {
    const p = new Project(pipelineYaml({ memory: { total: "sixteen" } }));
    const fromConfig = await p.run(["check"]);
    expect(fromConfig.code).toBe(2);
    expect(fromConfig.stderr).toMatch(/pipeline\.yaml:\d+: memory\.total: not a memory size: write it like 16GB/);
    const fromFlag = await new Project(pipelineYaml({})).run(["check", "--memory", "lots"]);
    expect(fromFlag.code).toBe(2);
    expect(fromFlag.stderr).toMatch(/--memory lots: memory\.total: not a memory size/);
  });

  it("num_layers larger than the model has", async () => {
    const p = projectWith(configText("Qwen--Qwen2.5-1.5B-Instruct.json"), { lora: { num_layers: 40, batch_size: 1 } });
    const r = await p.build("adapters");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/num_layers is 40, but .*config.json describes 28 layers: use 1 to 28, or -1 for all/);
  });
});
