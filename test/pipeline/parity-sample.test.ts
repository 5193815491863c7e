// Which training texts the parity check tokenizes on both sides: all of a small set, an evenly spaced sample of a
// large one (by count and by characters), always starting at the first example.
import { describe, expect, it } from "vitest";
import { MAX_CHECKED_CHARS, MAX_CHECKED_TEXTS, sampleTexts } from "../../stages/lib/llama/tokenizer-parity.ts";

const texts = (n: number, length = 20) => Array.from({ length: n }, (_, i) => ({ origin: `data/train.jsonl:${i + 1}`, text: "x".repeat(length) }));

describe("the training texts tokenized for parity", () => {
  it("a small set is checked whole", () => {
    const all = texts(500);
    expect(sampleTexts(all).checked).toBe(all);
  });

  it("a set of many examples: an evenly spaced sample of MAX_CHECKED_TEXTS, from the first to near the last", () => {
    const all = texts(MAX_CHECKED_TEXTS * 3);
    const { checked } = sampleTexts(all);
    expect(checked).toHaveLength(MAX_CHECKED_TEXTS);
    expect(checked[0]!.origin).toBe("data/train.jsonl:1");
    expect(checked[1]!.origin).toBe("data/train.jsonl:4");
    expect(checked.at(-1)!.origin).toBe(`data/train.jsonl:${MAX_CHECKED_TEXTS * 3 - 2}`);
  });

  it("a set of long examples: a sample within MAX_CHECKED_CHARS characters", () => {
    const all = texts(1000, 20_000); // 20 M characters
    const { checked } = sampleTexts(all);
    expect(checked.length).toBe(Math.floor((1000 * MAX_CHECKED_CHARS) / 20_000_000));
    expect(checked.reduce((sum, t) => sum + t.text.length, 0)).toBeLessThanOrEqual(MAX_CHECKED_CHARS);
  });
});
