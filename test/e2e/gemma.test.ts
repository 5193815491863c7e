// tiny:gemma3 with system prompts in the data: the formatted node folds them into the first user turn (Gemma 3's
// template has no system role), and training runs on the result, in `messages` and in pre-rendered `text` form.
// It starts from the shared tiny:gemma3 project (sample(40), built through gguf): its first build's report is
// this file's first build.
import { beforeAll, describe, expect, it } from "vitest";
import { LORA } from "../helpers/export.ts";
import { pipelineYaml, Project, ran, SAMPLE_LINES, type RunResult } from "../helpers/project.ts";
import { sharedFamily } from "../helpers/shared-project.ts";

interface Stats {
  format: string;
  changed: number;
  examples: Record<string, number>;
}

describe("tiny:gemma3 with system prompts", () => {
  let p: Project;
  let first: RunResult;

  beforeAll(async () => {
    // The sample data must hold system prompts for this test to mean anything.
    expect(SAMPLE_LINES.slice(0, 40).filter((l) => l.includes('"role":"system"')).length).toBeGreaterThan(0);
    ({ project: p, first } = await sharedFamily("gemma3"));
  });

  it("format messages: folds system prompts, and trains", () => {
    expect(ran(first)).toEqual(expect.arrayContaining(["adapters", "data", "formatted", "mlx-env", "model"]));
    const stats = p.readJson<Stats>("models/formatted/stats.json");
    expect(stats.format).toBe("messages");
    expect(stats.changed).toBeGreaterThan(0);
    const train = p.readJsonl<{ messages: { role: string; content: string }[] }>("models/formatted/train.jsonl");
    expect(train.length).toBe(stats.examples.train);
    for (const ex of train) {
      expect(ex.messages.map((m) => m.role)).not.toContain("system");
      // Strictly alternating user/assistant, starting with the user.
      ex.messages.forEach((m, i) => expect(m.role).toBe(i % 2 === 0 ? "user" : "assistant"));
    }
    // The system text was kept, folded into the first user turn.
    const systemText = "You are a precise unit converter.";
    expect(SAMPLE_LINES.slice(0, 40).some((l) => l.includes(systemText))).toBe(true);
    expect(train.some((ex) => ex.messages[0]!.content.includes(systemText))).toBe(true);
    const metrics = p.readJsonl<{ type: string }>("models/adapters/metrics.jsonl");
    expect(metrics.some((m) => m.type === "train")).toBe(true);
    expect(p.exists("models/adapters/adapters.safetensors")).toBe(true);
  });

  it("format text (mask_prompt false): Gemma turns, no literal <bos>, and trains", async () => {
    p.write("pipeline.yaml", pipelineYaml({ model: "tiny:gemma3", format: "text", lora: { ...LORA, mask_prompt: false } }));
    const result = await p.build("adapters");
    expect(result.code, result.stderr.slice(-3000)).toBe(0);
    // data's params include neither format nor mask_prompt; the model is unchanged.
    expect(ran(result)).toEqual(["adapters", "formatted"]);
    const stats = p.readJson<Stats>("models/formatted/stats.json");
    expect(stats.format).toBe("text");
    expect(stats.changed).toBeGreaterThan(0);
    for (const split of ["train", "valid"]) {
      const lines = p.readJsonl<{ text: string; messages?: unknown }>(`models/formatted/${split}.jsonl`);
      expect(lines.length).toBeGreaterThan(0);
      for (const { text, messages } of lines) {
        expect(messages).toBeUndefined();
        expect(text.startsWith("<start_of_turn>user"), text.slice(0, 60)).toBe(true);
        expect(text).not.toContain("<bos>");
        expect(text).toContain("<start_of_turn>model");
        expect(text).not.toMatch(/<start_of_turn>system/);
      }
    }
    expect(p.readJsonl<{ type: string }>("models/adapters/metrics.jsonl").some((m) => m.type === "train")).toBe(true);
  });

  // Checked by the adapters guard: a mask_prompt change leaves formatted fresh, so its guard would not run.
  it("format text with mask_prompt true is refused before anything runs", async () => {
    p.write("pipeline.yaml", pipelineYaml({ model: "tiny:gemma3", format: "text", lora: { ...LORA, mask_prompt: true } }));
    const result = await p.build("adapters");
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/mask_prompt/);
    expect(result.json.nodes).toEqual([]);
    expect(result.json.verdicts?.filter((v) => v.level === "error").map((v) => v.message).join("\n")).toMatch(/mask_prompt/);
  });
});
