// tiny:gemma3 from nothing to an f16 GGUF with the real converter: its tokenizer read by llama.cpp like Hugging Face, and the
// GGUF answering like mlx-lm. The project is the one deploy.test.ts starts from (shared-project.ts).
import { describe, expect, it } from "vitest";
import { ALL, checkF16 } from "../helpers/export.ts";
import { ran } from "../helpers/project.ts";
import { sharedFamily } from "../helpers/shared-project.ts";

describe("tiny:gemma3 to GGUF", () => {
  it("builds an f16 GGUF whose tokenizer llama.cpp reads like Hugging Face, and that runs like mlx-lm", async () => {
    const { project: p, first } = await sharedFamily("gemma3");
    expect(ran(first)).toEqual([...ALL].sort());
    await checkF16(p, "gemma3");
  });
});
