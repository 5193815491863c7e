// The memory estimate: sensible verdicts for a 16 GB Mac, monotone in every knob, and
// suggestions that really fit.
import { describe, expect, it } from "vitest";
import { UserError } from "../../engine/types.ts";
import { parseMemorySize } from "../../config/memory-size.ts";
import {
  estimateTrainingMemory,
  suggestFits,
  type TrainingPlan,
  usableMemory,
} from "../../guard/memory.ts";
import { readWeightBytes } from "../../guard/safetensors.ts";
import { configFolders, shapeOf } from "./fixtures.ts";

const GiB = 2 ** 30;
const plan: TrainingPlan = { batchSize: 1, maxSeqLength: 1024, rank: 8, numLayers: 12, gradCheckpoint: false };
const mac16 = usableMemory({ os: "macos", totalBytes: parseMemorySize("16GB") });

describe("usableMemory and parseMemorySize", () => {
  it("treats 16GB as 16 GiB and a 16 GB Mac as two thirds of it", () => {
    expect(parseMemorySize("16GB")).toBe(16 * GiB);
    expect(parseMemorySize("16 GiB")).toBe(16 * GiB);
    expect(parseMemorySize("512m")).toBe(512 * 2 ** 20);
    expect(parseMemorySize("1.5G")).toBe(1.5 * GiB);
    expect(mac16 / GiB).toBeCloseTo(10.67, 2);
    expect(usableMemory({ os: "macos", totalBytes: 64 * GiB }) / GiB).toBe(48);
    expect(usableMemory({ os: "linux", totalBytes: 32 * GiB, availableBytes: 20 * GiB })).toBe(20 * GiB);
  });

  it("rejects sizes it cannot read", () => {
    for (const bad of ["sixteen", "16 XB", "", "-4GB"]) expect(() => parseMemorySize(bad)).toThrow(UserError);
  });
});

describe("estimateTrainingMemory", () => {
  it("gives a breakdown that sums to the peak for every shared config", async () => {
    for (const { folder, shape } of configFolders()) {
      // A folder with only config.json has no headers to measure: the config decides.
      expect(await readWeightBytes(folder)).toBeNull();
      const estimate = estimateTrainingMemory(shape, plan);
      const sum = Object.values(estimate.breakdown).reduce((a, b) => a + b, 0);
      expect(estimate.peakBytes).toBe(sum);
      expect(Object.values(estimate.breakdown).every((v) => v > 0)).toBe(true);
    }
  });

  it("on a 16 GB Mac: Llama 3.2 3B bf16 just fits, 4-bit easily, Gemma 3 4B bf16 does not", () => {
    const llama = estimateTrainingMemory(shapeOf("meta-llama--Llama-3.2-3B-Instruct.json"), plan).peakBytes;
    const llama4 = estimateTrainingMemory(shapeOf("mlx-community--Llama-3.2-3B-Instruct-4bit.json"), plan).peakBytes;
    const gemma = estimateTrainingMemory(shapeOf("google--gemma-3-4b-it.assembled.json"), plan).peakBytes;
    expect(llama).toBeLessThan(mac16);
    expect(llama).toBeGreaterThan(0.8 * mac16);
    expect(llama4).toBeLessThan(0.6 * mac16);
    expect(gemma).toBeGreaterThan(mac16);
  });

  it("logits dominate activations' growth for a 256k vocabulary", () => {
    const gemma = estimateTrainingMemory(shapeOf("google--gemma-3-4b-it.assembled.json"), { ...plan, gradCheckpoint: true });
    expect(gemma.breakdown.logits).toBeGreaterThan(gemma.breakdown.activations);
    // batch × seq × vocab × 4 copies × 2 bytes (bf16)
    expect(gemma.breakdown.logits).toBe(1024 * 262208 * 4 * 2);
  });

  it("rises with batch, sequence length, rank and trained layers; falls with checkpointing", () => {
    for (const { shape } of configFolders()) {
      const peak = (p: Partial<TrainingPlan>) => estimateTrainingMemory(shape, { ...plan, ...p }).peakBytes;
      const base = peak({});
      expect(peak({ batchSize: 2 })).toBeGreaterThan(base);
      expect(peak({ maxSeqLength: 2048 })).toBeGreaterThan(base);
      expect(peak({ rank: 16 })).toBeGreaterThan(base);
      expect(peak({ numLayers: 16 })).toBeGreaterThan(base);
      expect(peak({ numLayers: -1 })).toBeGreaterThan(peak({ numLayers: 16 }));
      expect(peak({ gradCheckpoint: true })).toBeLessThan(base);
    }
  });

  it("pads to the longest example like mlx-lm, and measured weight bytes win", () => {
    const shape = shapeOf("meta-llama--Llama-3.2-3B-Instruct.json");
    expect(estimateTrainingMemory(shape, { ...plan, longestExampleTokens: 300 }).sequenceLength).toBe(321);
    expect(estimateTrainingMemory(shape, { ...plan, longestExampleTokens: 5000 }).sequenceLength).toBe(1024);
    expect(estimateTrainingMemory(shape, plan, { weightBytes: 123 }).breakdown.weights).toBe(123);
  });

  it("counts LoRA on every linear of the trained blocks, experts included, unless keys narrow it", () => {
    const llama = shapeOf("meta-llama--Llama-3.2-3B-Instruct.json");
    // q, k, v, o, gate, up, down: rank × (in + out) each.
    const perLayer = 8 * (3072 + 3072 + 2 * (3072 + 1024) + 3072 + 3072 + 3 * (3072 + 8192));
    expect(estimateTrainingMemory(llama, plan).loraParameters).toBe(12 * perLayer);
    const qv = estimateTrainingMemory(llama, { ...plan, keys: ["self_attn.q_proj", "self_attn.v_proj"] });
    expect(qv.loraParameters).toBe(12 * 8 * (3072 + 3072 + 3072 + 1024));

    const granite = estimateTrainingMemory(shapeOf("ibm-granite--granite-4.0-h-tiny.partial.json"), plan);
    expect(granite.loraParameters).toBeGreaterThan(64 * 12 * 8 * 3 * (1536 + 512));
  });

  it("refuses more trained layers than the model has", () => {
    expect(() => estimateTrainingMemory(shapeOf("meta-llama--Llama-3.2-3B.json"), { ...plan, numLayers: 40 })).toThrow(
      /num_layers is 40, but .*config\.json describes 28 layers/,
    );
    expect(() => estimateTrainingMemory(shapeOf("meta-llama--Llama-3.2-3B.json"), { ...plan, numLayers: 0 })).toThrow(UserError);
  });
});

describe("suggestFits", () => {
  const big: TrainingPlan = { batchSize: 1, maxSeqLength: 2048, rank: 16, numLayers: 16, gradCheckpoint: false };
  const llama = shapeOf("meta-llama--Llama-3.2-3B.json");

  it("offers single changes that each fit, mildest first", () => {
    expect(estimateTrainingMemory(llama, big).peakBytes).toBeGreaterThan(mac16);
    const suggestions = suggestFits(llama, big, mac16);
    expect(suggestions.map((s) => s.change.split(":")[0])).toEqual(["grad_checkpoint", "num_layers", "max_seq_length"]);
    // Each search gives the mildest value that fits: one layer more or one length longer does not.
    const layers = suggestions[1]?.plan.numLayers ?? 0;
    expect(estimateTrainingMemory(llama, { ...big, numLayers: layers + 1 }).peakBytes).toBeGreaterThan(mac16);
    for (const s of suggestions) expect(s.estimate.peakBytes).toBeLessThanOrEqual(mac16);
  });

  it("adds a combination that keeps the result when no single such change fits", () => {
    const suggestions = suggestFits(llama, { ...big, batchSize: 4 }, mac16);
    expect(suggestions[0]?.change).toBe(
      "grad_checkpoint: true; batch_size: 1 with grad_accumulation_steps: 4 (same effective batch)",
    );
    expect(suggestions[0]?.plan).toMatchObject({ batchSize: 1, gradCheckpoint: true, maxSeqLength: 2048 });
    expect(suggestions[0]?.estimate.peakBytes).toBeLessThanOrEqual(mac16);
  });

  it("suggests a 4-bit base model, estimated without the measured bf16 weight bytes", () => {
    const gemma3n = shapeOf("google--gemma-3n-E4B.partial.json");
    const suggestions = suggestFits(gemma3n, { ...big, batchSize: 4 }, mac16, { weightBytes: 14 * GiB });
    const fourBit = suggestions.find((s) => s.change.includes("4-bit"));
    expect(fourBit?.quantization).toEqual({ bits: 4, groupSize: 64 });
    expect(fourBit?.estimate.breakdown.weights).toBeLessThan(5 * GiB);
    for (const s of suggestions) expect(s.estimate.peakBytes).toBeLessThanOrEqual(mac16);
  });

  it("returns nothing when nothing can fit", () => {
    expect(suggestFits(llama, big, 1 * GiB)).toEqual([]);
  });
});
