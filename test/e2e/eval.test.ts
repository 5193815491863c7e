// The eval node on a tiny model (fast): what it writes, when it reruns, and the guards that stop it before
// anything runs. Whether a fine-tune shows in its numbers is measured on the real SmolLM2 (smollm.test.ts).
import { describe, expect, it } from "vitest";
import { pipelineYaml, Project, ran, SAMPLE_LINES, sample } from "../helpers/project.ts";
import { SHARED_EVAL as EVAL, sharedConfig, sharedProject } from "../helpers/shared-project.ts";

interface EvalReport {
  examples: number;
  base: { exact: number; normalized: number; loss: number; ppl: number };
  fineTuned: { exact: number; normalized: number; loss: number; ppl: number };
  gguf: { type: string; exact: number; agreesWithFused: number; agreesWithF16?: number };
  answers: { question: string; reference: string; base: string; fineTuned: string; gguf: string; f16?: string }[];
}

describe("eval on a tiny model", () => {
  it("writes eval.json; reruns when the test split or the GGUF changes, not when the README does", async () => {
    const { project: p, first } = await sharedProject();
    expect(ran(first)).toContain("eval");
    const report = p.readJson<EvalReport>("models/eval/eval.json");
    expect(report.examples).toBe(4); // max_examples caps the 6 test examples
    expect(report.answers.map((a) => a.reference)).toEqual(SAMPLE_LINES.slice(48, 52).map((l) => (JSON.parse(l) as { messages: { content: string }[] }).messages.at(-1)!.content));
    for (const side of [report.base, report.fineTuned]) {
      expect(side.loss).toBeGreaterThan(0);
      expect(Math.log(side.ppl)).toBeCloseTo(side.loss, 2); // mlx-lm prints both rounded
    }
    // A random model's training lowers the test loss even if its answers stay noise.
    expect(report.fineTuned.loss).toBeLessThan(report.base.loss);
    // The f16 GGUF answers the 4 prompts with the fused model's tokens: greedy, the same weights to f16 precision.
    expect(report.gguf.type).toBe("f16");
    expect(report.gguf.agreesWithFused).toBe(4);
    expect(first.stderr).toMatch(/\[eval\] base \d\/4 → fine-tuned \d\/4 exact; GGUF agrees on 4\/4/);

    p.write("README.md", "# my fine-tune\n");
    expect(ran(await p.mustBuild("eval"))).toEqual([]);

    // Another test split: data and eval rerun (formatted's output holds the test split too).
    p.write("data/test.jsonl", sample(6, 60));
    const retest = await p.mustBuild("eval");
    expect(ran(retest)).toContain("eval");
    expect(p.readJson<EvalReport>("models/eval/eval.json").answers[0]!.reference).toBe((JSON.parse(SAMPLE_LINES[60]!) as { messages: { content: string }[] }).messages.at(-1)!.content);

    // Another GGUF from the same training: only gguf and eval rerun. A quantized one is also compared with
    // the f16 conversion.
    p.write("pipeline.yaml", sharedConfig({ gguf: { outtype: "q8_0" } }));
    expect(ran(await p.mustBuild("eval"))).toEqual(["eval", "gguf"]);
    const quantized = p.readJson<EvalReport>("models/eval/eval.json");
    expect(quantized.gguf.type).toBe("q8_0");
    // Deterministic (greedy, seed 0, pinned tools): on this model q8_0 changes no token of the 4 answers.
    expect(quantized.gguf.agreesWithF16).toBe(4);

    // Another base model: eval is stale along with everything trained on it.
    p.write("pipeline.yaml", sharedConfig({ model: "tiny:qwen3", gguf: { outtype: "q8_0" } }));
    const status = await p.run(["status", "eval", "--json"]);
    const nodes = (status.json as unknown as { nodes: { id: string; stale: boolean }[] }).nodes;
    expect(nodes.find((n) => n.id === "eval")?.stale).toBe(true);
    expect(nodes.find((n) => n.id === "data")?.stale).toBe(false);
  }, 1_800_000); // three builds (one trains) after the shared one
});

describe.concurrent("eval's guards stop the build before anything runs", () => {
  const cases = [
    { what: "an empty test split", config: pipelineYaml({ data: { test_fraction: 0 }, eval: EVAL }), files: { "data/train.jsonl": sample(40) }, code: "eval.no-test", message: /test split is empty/ },
    {
      what: "format: text data",
      config: pipelineYaml({ format: "text", lora: { mask_prompt: false }, data: { test_fraction: 0.1 }, eval: EVAL }),
      files: { "data/train.jsonl": SAMPLE_LINES.slice(0, 40).map((_, i) => JSON.stringify({ text: `Example ${i}: 1 km = 1000 m.` })).join("\n") + "\n" },
      code: "eval.text-format",
      message: /cannot tell a prompt from its answer/,
    },
  ];
  for (const c of cases) {
    it(`${c.what}: exit 1 with ${c.code}, nothing built`, async () => {
      const p = new Project(c.config, c.files);
      const result = await p.build("eval");
      expect(result.code, result.stderr).toBe(1);
      expect(result.stderr).toMatch(/Stopped before running anything/);
      expect(result.json.verdicts?.find((v) => v.code === c.code)?.message).toMatch(c.message);
      expect(ran(result)).toEqual([]);
      // The same project builds a GGUF: only eval needs a test split.
      const check = await p.run(["check", "gguf", "--json"]);
      expect(JSON.stringify(check.json)).not.toContain(c.code);
    });
  }
});
