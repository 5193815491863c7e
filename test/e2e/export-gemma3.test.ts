// tiny:gemma3 from nothing to an f16 GGUF with the real converter: its tokenizer read by llama.cpp like Hugging Face, and the
// GGUF answering like mlx-lm.
import { describe, expect, it } from "vitest";
import { ALL, checkF16, LORA } from "../helpers/export.ts";
import { pipelineYaml, Project, ran, sample } from "../helpers/project.ts";

describe("tiny:gemma3 to GGUF", () => {
  it("builds an f16 GGUF whose tokenizer llama.cpp reads like Hugging Face, and that runs like mlx-lm", async () => {
    const p = new Project(pipelineYaml({ model: "tiny:gemma3", lora: LORA }), { "data/train.jsonl": sample(40) });
    const result = await p.mustBuild("gguf");
    expect(ran(result)).toEqual([...ALL].sort());
    await checkF16(p, "gemma3");
  });
});
