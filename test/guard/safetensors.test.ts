// Weight bytes from safetensors headers, without reading the tensors.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { UserError } from "../../engine/types.ts";
import { isDroppedTower, readHeader, readWeightBytes } from "../../guard/safetensors.ts";

type Tensors = Record<string, { dtype: string; shape: number[] }>;

/** A real safetensors file: 8-byte little-endian header length, JSON header, then the data. */
function writeSafetensors(path: string, tensors: Tensors): void {
  let offset = 0;
  const header: Record<string, unknown> = { __metadata__: { format: "mlx" } };
  for (const [name, t] of Object.entries(tensors)) {
    const size = t.shape.reduce((a, b) => a * b, 1) * (t.dtype === "F32" || t.dtype === "U32" ? 4 : 2);
    header[name] = { ...t, data_offsets: [offset, offset + size] };
    offset += size;
  }
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(path, Buffer.concat([length, json, Buffer.alloc(offset)]));
}

const folder = () => mkdtempSync(join(tmpdir(), "guard-st-"));

describe("safetensors headers", () => {
  it("sums shape × dtype per tensor and sets the towers mlx-lm drops apart", async () => {
    const dir = folder();
    writeSafetensors(join(dir, "model-00001-of-00002.safetensors"), {
      "language_model.model.embed_tokens.weight": { dtype: "BF16", shape: [100, 16] },
      "language_model.model.layers.0.mlp.down_proj.weight": { dtype: "U32", shape: [16, 8] },
      "language_model.model.layers.0.mlp.down_proj.scales": { dtype: "BF16", shape: [16, 1] },
    });
    writeSafetensors(join(dir, "model-00002-of-00002.safetensors"), {
      "vision_tower.vision_model.encoder.layers.0.fc1.weight": { dtype: "F32", shape: [10, 10] },
      "model.audio_tower.conv.weight": { dtype: "BF16", shape: [5] },
      "multi_modal_projector.mm_input_projection_weight": { dtype: "BF16", shape: [4, 4] },
    });
    // The index says more (it counts the towers); headers win when the shards are there.
    writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: 1 }, weight_map: {} }));
    expect(await readWeightBytes(dir)).toEqual({
      bytes: 100 * 16 * 2 + 16 * 8 * 4 + 16 * 2,
      tensorCount: 3,
      droppedBytes: 10 * 10 * 4 + 5 * 2 + 16 * 2,
    });
  });

  it("counts only the files mlx-lm loads (model*.safetensors), not a consolidated copy beside them", async () => {
    const dir = folder();
    const tensors = { "model.layers.0.mlp.down_proj.weight": { dtype: "BF16", shape: [16, 8] } };
    writeSafetensors(join(dir, "model.safetensors"), tensors);
    writeSafetensors(join(dir, "consolidated.safetensors"), tensors);
    expect(await readWeightBytes(dir)).toMatchObject({ bytes: 16 * 8 * 2, tensorCount: 1 });
  });

  it("falls back to the index's total_size, and to null for a config-only folder", async () => {
    const dir = folder();
    expect(await readWeightBytes(dir)).toBeNull();
    writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: 6_425_499_648 } }));
    expect(await readWeightBytes(dir)).toEqual({ bytes: 6_425_499_648, tensorCount: 0, droppedBytes: 0 });
    writeFileSync(join(dir, "model.safetensors.index.json"), "{}");
    await expect(readWeightBytes(dir)).rejects.toThrow(/"metadata\.total_size" is missing/);
  });

  it("rejects a file that is not safetensors, naming it", async () => {
    const path = join(folder(), "model.safetensors");
    writeFileSync(path, "not a safetensors file at all");
    await expect(readHeader(path)).rejects.toThrow(UserError);
    await expect(readHeader(path)).rejects.toThrow(/model\.safetensors: not a safetensors file/);
  });

  it("knows which names are towers", () => {
    expect(isDroppedTower("vision_tower.x")).toBe(true);
    expect(isDroppedTower("model.embed_vision.embedding.weight")).toBe(true);
    expect(isDroppedTower("model.language_model.embed_tokens.weight")).toBe(false);
    expect(isDroppedTower("model.vision_towers_are_not_this")).toBe(false);
  });
});
