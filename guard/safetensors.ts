// Weight bytes of a model folder read from safetensors headers, never from the weights: a
// header is a few kilobytes at the start of a multi-gigabyte file. What the folder holds is more
// accurate than the config (untied lm_head, mixed-precision quantization, extra tensors).

import { open, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { zod } from "../engine/packages.ts";
import { UserError } from "../engine/types.ts";

const { z } = zod();

export interface WeightBytes {
  /** Bytes of the tensors mlx-lm keeps (language model only). */
  readonly bytes: number;
  /** Tensors counted in `bytes`; 0 when only the index's total_size was available. */
  readonly tensorCount: number;
  /** Bytes of vision/audio towers mlx-lm drops when it loads the text model. */
  readonly droppedBytes: number;
}

/** Top-level modules (optionally under "model.", as Gemma 3n nests them) that mlx-lm drops. */
const DROPPED_TOWERS = ["vision_tower", "multi_modal_projector", "audio_tower", "embed_audio", "embed_vision"];

const DTYPE_BYTES: Readonly<Record<string, number>> = {
  F64: 8, I64: 8, U64: 8,
  F32: 4, I32: 4, U32: 4,
  F16: 2, BF16: 2, I16: 2, U16: 2,
  F8_E4M3: 1, F8_E5M2: 1, I8: 1, U8: 1, BOOL: 1,
};

const tensorSchema = z.object({ dtype: z.string(), shape: z.array(z.number().int().nonnegative()) });
const indexSchema = z.object({ metadata: z.object({ total_size: z.number().nonnegative() }) });

/** Headers larger than this are not safetensors headers (the format caps them at 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

export function isDroppedTower(tensorName: string): boolean {
  const name = tensorName.replace(/^model\./, "");
  return DROPPED_TOWERS.some((tower) => name === tower || name.startsWith(`${tower}.`));
}

/**
 * Sums the headers of the weight files mlx-lm loads (`model*.safetensors`: a repo may also ship a
 * `consolidated.safetensors` copy, which must not count twice). Falls back to the index's
 * metadata.total_size only when no shard is present (a folder with just the index cannot
 * tell towers apart, so droppedBytes is then 0). Returns null for a folder with neither.
 */
export async function readWeightBytes(folder: string): Promise<WeightBytes | null> {
  const files = (await readdir(folder)).filter((f) => /^model.*\.safetensors$/.test(f)).sort();
  if (files.length > 0) {
    let bytes = 0;
    let droppedBytes = 0;
    let tensorCount = 0;
    for (const file of files) {
      for (const [name, size] of await readHeader(join(folder, file))) {
        if (isDroppedTower(name)) droppedBytes += size;
        else {
          bytes += size;
          tensorCount++;
        }
      }
    }
    return { bytes, tensorCount, droppedBytes };
  }
  const indexPath = join(folder, "model.safetensors.index.json");
  const text = await readFile(indexPath, "utf8").catch(() => null);
  if (text === null) return null;
  const index = indexSchema.safeParse(safeJson(text));
  if (!index.success) {
    throw new UserError(`${indexPath}: "metadata.total_size" is missing or not a number. Re-download the model.`);
  }
  return { bytes: index.data.metadata.total_size, tensorCount: 0, droppedBytes: 0 };
}

/** [tensor name, bytes] for every tensor in one file (8-byte little-endian length, then JSON). */
export async function readHeader(path: string): Promise<[string, number][]> {
  const handle = await open(path, "r");
  try {
    const lengthBuffer = Buffer.alloc(8);
    const { bytesRead } = await handle.read(lengthBuffer, 0, 8, 0);
    const length = bytesRead === 8 ? Number(lengthBuffer.readBigUInt64LE(0)) : -1;
    if (length <= 0 || length > MAX_HEADER_BYTES) {
      throw new UserError(`${path}: not a safetensors file (bad header length). Re-download or re-convert the model.`);
    }
    const json = Buffer.alloc(length);
    await handle.read(json, 0, length, 8);
    const header = safeJson(json.toString("utf8"));
    if (typeof header !== "object" || header === null || Array.isArray(header)) {
      throw new UserError(`${path}: the safetensors header is not a JSON object. Re-download or re-convert the model.`);
    }
    const tensors: [string, number][] = [];
    for (const [name, value] of Object.entries(header)) {
      if (name === "__metadata__") continue;
      const tensor = tensorSchema.safeParse(value);
      const width = tensor.success ? DTYPE_BYTES[tensor.data.dtype] : undefined;
      if (!tensor.success || width === undefined) {
        throw new UserError(`${path}: tensor "${name}" has an unreadable dtype or shape. Re-download or re-convert the model.`);
      }
      tensors.push([name, tensor.data.shape.reduce((a, b) => a * b, 1) * width]);
    }
    return tensors;
  } finally {
    await handle.close();
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
