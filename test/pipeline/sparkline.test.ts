// The end-of-training sparkline: each loss scaled between the series' min and max.
import { describe, expect, it } from "vitest";
import { sparkline } from "../../stages/lib/data/sparkline.ts";

describe("sparkline", () => {
  it("scales a falling loss from the top block to the bottom one", () => {
    expect(sparkline([7, 4, 0])).toBe("█▅▁");
    // The demo's train losses (models/adapters/metrics.jsonl).
    expect(sparkline([0.7472, 0.1807, 0.1872, 0.235, 0.1901, 0.1416])).toBe("█▁▂▂▂▁");
  });

  it("draws a flat series flat, a missing value as a gap, and nothing for no values", () => {
    expect(sparkline([1, 1, 1])).toBe("▁▁▁");
    expect(sparkline([1, NaN, 0])).toBe("█ ▁");
    expect(sparkline([])).toBe("");
  });
});
