// The runs table's pure parts: sorting, naming a run by an id prefix, and the -S command that restores a run.
import { describe, expect, it } from "vitest";
import { restoreCommand } from "../../experiments/command.ts";
import { findRun, sortRuns, type Run } from "../../experiments/runs.ts";
import { UserError } from "../../engine/types.ts";

const run = (fingerprint: string, more: Partial<Run>): Run => ({
  id: fingerprint.slice(0, 8),
  fingerprint,
  used: 0,
  params: null,
  diff: [],
  current: false,
  metrics: { train: [], val: [] },
  ...more,
});

const a = run("aaaa1111".padEnd(64, "0"), { built: "2026-12-01T10:00:00.000Z", valLoss: 0.5, eval: { examples: 40, fineTuned: 20, base: 0, gguf: 20, testLoss: 1 } });
const b = run("aaaa2222".padEnd(64, "0"), { built: "2026-12-02T10:00:00.000Z", trainLoss: 0.3 });
const c = run("bbbb3333".padEnd(64, "0"), { built: "2026-12-03T10:00:00.000Z", valLoss: 0.9, eval: { examples: 40, fineTuned: 28, base: 0, gguf: 27, testLoss: 1 } });

describe("runs", () => {
  it("sorts newest first, by loss (validation, else train) and by eval score, runs without the number last", () => {
    expect(sortRuns([a, b, c], "when").map((r) => r.id)).toEqual([c.id, b.id, a.id]);
    expect(sortRuns([a, b, c], "loss").map((r) => r.id)).toEqual([b.id, a.id, c.id]);
    expect(sortRuns([a, b, c], "eval").map((r) => r.id)).toEqual([c.id, a.id, b.id]);
  });

  it("names a run by any unique prefix of its fingerprint; none or several is exit 2 naming the choices", () => {
    expect(findRun([a, b, c], "BBBB").id).toBe(c.id);
    expect(findRun([a, b, c], "aaaa2").id).toBe(b.id);
    expect(() => findRun([a, b, c], "aaaa")).toThrow(/aaaa names 2 runs \(aaaa1111, aaaa2222\): give more of its id/);
    expect(() => findRun([a, b, c], "cc")).toThrow(/no run cc in this project's build cache \(runs: aaaa1111, aaaa2222, bbbb3333\)/);
    let refused: unknown;
    try {
      findRun([], "x");
    } catch (e) {
      refused = e;
    }
    expect(refused).toBeInstanceOf(UserError);
    expect((refused as UserError).exitCode).toBe(2);
  });

  it("restores a run with the -S arguments of the params that differ, nested keys under lora", () => {
    const r = run("c".repeat(64), { diff: [{ key: "learning_rate", then: 0.0001, now: 0.0003 }, { key: "keys", then: ["self_attn.q_proj"], now: undefined }] });
    expect(restoreCommand("npx tsx pipeline.ts", r)).toBe('npx tsx pipeline.ts adapters -S lora.learning_rate=0.0001 -S lora.keys=["self_attn.q_proj"]');
  });
});
