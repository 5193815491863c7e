// tiny:qwen3 from nothing to an f16 GGUF with the real converter: the GGUF answering like mlx-lm, and the hf folder loading in
// transformers.
import { describe, expect, it } from "vitest";
import { ALL, checkF16, LORA, loadsInTransformers } from "../helpers/export.ts";
import { pipelineYaml, Project, ran, sample } from "../helpers/project.ts";

describe("tiny:qwen3 to GGUF", () => {
  it("builds an f16 GGUF that llama.cpp runs like mlx-lm, from an hf folder transformers loads", async () => {
    const p = new Project(pipelineYaml({ model: "tiny:qwen3", lora: LORA }), { "data/train.jsonl": sample(40) });
    const result = await p.mustBuild("gguf");
    expect(ran(result)).toEqual([...ALL].sort());
    await checkF16(p, "qwen3");
    loadsInTransformers(p);
  });
});
