// tiny:qwen3 from nothing to an f16 GGUF with the real converter: the GGUF answering like mlx-lm, and the hf folder loading in
// transformers. The project is the one deploy.test.ts starts from (shared-project.ts).
import { describe, expect, it } from "vitest";
import { ALL, checkF16, loadsInTransformers } from "../helpers/export.ts";
import { ran } from "../helpers/project.ts";
import { sharedFamily } from "../helpers/shared-project.ts";

describe("tiny:qwen3 to GGUF", () => {
  it("builds an f16 GGUF that llama.cpp runs like mlx-lm, from an hf folder transformers loads", async () => {
    const { project: p, first } = await sharedFamily("qwen3");
    expect(ran(first)).toEqual([...ALL].sort());
    await checkF16(p, "qwen3");
    loadsInTransformers(p);
  });
});
