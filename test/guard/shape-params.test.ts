// Shapes parse from config.json alone, and parameter counts match the published ones.
import { describe, expect, it } from "vitest";
import { UserError } from "../../engine/types.ts";
import { architectureNotes, isHybridMamba, isMoE } from "../../guard/architectures.ts";
import { modelWeightBytes } from "../../guard/memory.ts";
import { readModelShape } from "../../guard/model-shape.ts";
import { countParameters } from "../../guard/parameters.ts";
import { configFolders, shapeOf } from "./fixtures.ts";

const withinPercent = (actual: number, expected: number, percent: number) =>
  expect(Math.abs(actual - expected) / expected).toBeLessThan(percent / 100);

describe("readModelShape", () => {
  it("parses every shared config on its own", () => {
    const folders = configFolders();
    expect(folders.length).toBeGreaterThanOrEqual(10);
    for (const { shape } of folders) {
      expect(shape.hiddenSize).toBeGreaterThan(0);
      expect(shape.intermediateSize).toHaveLength(shape.numLayers);
      expect(countParameters(shape).total).toBeGreaterThan(1e9);
    }
  });

  it("applies Gemma3TextConfig defaults to Gemma 3's sparse text_config", () => {
    const assembled = shapeOf("google--gemma-3-4b-it.assembled.json");
    const resolved = shapeOf("google--gemma-3-4b-it.resolved-text_config.json");
    expect(assembled).toMatchObject({
      modelType: "gemma3",
      textModelType: "gemma3_text",
      numHeads: 8,
      numKvHeads: 4,
      headDim: 256,
      vocabSize: 262208,
      tieWordEmbeddings: true,
      droppedTowers: ["vision_config"],
    });
    const { source: _a, modelType: _b, droppedTowers: _c, ...textPart } = assembled;
    expect(resolved).toMatchObject(textPart);
  });

  it("reads quantization, biases, MoE, Mamba and per-layer embeddings", () => {
    expect(shapeOf("mlx-community--Llama-3.2-3B-Instruct-4bit.json").quantization).toEqual({ bits: 4, groupSize: 64 });
    expect(shapeOf("alexgusevski--gemma-3-text-4b-it-q8-mlx.derived.json").quantization).toEqual({ bits: 8, groupSize: 64 });
    expect(shapeOf("Qwen--Qwen2.5-1.5B-Instruct.json").attentionBias).toEqual({ qkv: true, o: false });
    expect(shapeOf("meta-llama--Llama-3.2-3B.json").attentionBias).toEqual({ qkv: false, o: false });

    const granite = shapeOf("ibm-granite--granite-4.0-h-tiny.partial.json");
    expect(isMoE(granite) && isHybridMamba(granite)).toBe(true);
    expect(granite.moe).toEqual({ numExperts: 64, expertsPerToken: 6, expertIntermediateSize: 512, sharedIntermediateSize: 1024 });
    expect(granite.mamba?.isMambaLayer.filter((m) => !m)).toHaveLength(4);
    expect(architectureNotes(granite).map((n) => n.code)).toEqual(["arch.moe", "arch.hybrid-mamba"]);

    const gemma3n = shapeOf("google--gemma-3n-E4B.partial.json");
    expect(gemma3n.perLayerEmbeddings).toEqual({ vocabSize: 262144, hiddenSizePerLayer: 256 });
    expect(isMoE(gemma3n) || isHybridMamba(gemma3n)).toBe(false);
  });

  it("takes quantization_config when it carries bits and group_size", () => {
    const base = { hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 128, vocab_size: 1000 };
    expect(readModelShape({ ...base, quantization_config: { bits: 4, group_size: 32 } }, "c").quantization).toEqual({ bits: 4, groupSize: 32 });
    expect(readModelShape({ ...base, quantization_config: { quant_method: "gptq" } }, "c").quantization).toBeNull();
  });

  it("names the file, the key and what to do when a field is missing or wrong", () => {
    const config = { model_type: "llama", num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 8, vocab_size: 10 };
    const missing = () => readModelShape(config, "models/x/config.json");
    expect(missing).toThrow(UserError);
    expect(missing).toThrow(
      'models/x/config.json: "hidden_size" is missing (needed to estimate memory). Is this a Hugging Face config.json?',
    );
    expect(() => readModelShape({ text_config: { ...config } }, "c.json")).toThrow(/"text_config\.hidden_size" is missing/);
    expect(() => readModelShape({ ...config, hidden_size: "big" }, "c.json")).toThrow(/c\.json: "hidden_size" is invalid/);
    expect(() => readModelShape([], "c.json")).toThrow(/not a JSON object/);
  });
});

describe("countParameters", () => {
  it("matches published counts within 1%", () => {
    withinPercent(countParameters(shapeOf("meta-llama--Llama-3.2-3B-Instruct.json")).total, 3.21e9, 1);
    withinPercent(countParameters(shapeOf("Qwen--Qwen2.5-1.5B-Instruct.json")).total, 1.54e9, 1);
    withinPercent(countParameters(shapeOf("google--gemma-3-4b-it.assembled.json")).total, 3.88e9, 1);
  });

  it("counts Gemma 3n's per-layer embeddings and Granite's experts roughly", () => {
    const gemma3n = countParameters(shapeOf("google--gemma-3n-E4B.partial.json"));
    withinPercent(gemma3n.perLayerEmbeddings, 2.35e9, 1);
    withinPercent(gemma3n.total, 6.9e9, 5);
    const granite = countParameters(shapeOf("ibm-granite--granite-4.0-h-tiny.partial.json"));
    withinPercent(granite.total, 7e9, 5);
    // Published "~1 B active"; we count 6 of 64 experts + shared expert + Mamba + embeddings ≈ 1.47 B.
    expect(granite.active).toBeGreaterThan(0.9e9);
    expect(granite.active).toBeLessThan(1.6e9);
  });

  it("4-bit and 8-bit MLX models cost about 4.5 and 8.5 bits per weight", () => {
    const bits = (name: string) => (modelWeightBytes(shapeOf(name)) * 8) / countParameters(shapeOf(name)).total;
    expect(bits("mlx-community--Llama-3.2-3B-Instruct-4bit.json")).toBeCloseTo(4.5, 1);
    expect(bits("mlx-community--Qwen2.5-1.5B-Instruct-4bit.derived.json")).toBeCloseTo(4.5, 1);
    expect(bits("alexgusevski--gemma-3-text-4b-it-q8-mlx.derived.json")).toBeCloseTo(8.5, 1);
    expect(bits("meta-llama--Llama-3.2-3B-Instruct.json")).toBeCloseTo(16, 1);
  });
});
