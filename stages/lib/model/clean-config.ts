// A fused model's config.json must hold no quantization key at any depth: MLX's `quantization_config`
// (no `quant_method`) breaks transformers and llama.cpp's converter, and mlx-lm removes top-level keys only.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Json } from "../../../engine/types.ts";

export const QUANT_KEYS = ["quantization", "quantization_config"] as const;

function withoutQuantization(value: Json): { value: Json; removed: string[] } {
  const removed: string[] = [];
  const walk = (v: Json, path: string): Json => {
    if (Array.isArray(v)) return v.map((x, i) => walk(x, `${path}[${i}]`));
    if (v === null || typeof v !== "object") return v;
    const out: Record<string, Json> = {};
    for (const [k, x] of Object.entries(v)) {
      if ((QUANT_KEYS as readonly string[]).includes(k)) removed.push(path ? `${path}.${k}` : k);
      else out[k] = walk(x, path ? `${path}.${k}` : k);
    }
    return out;
  };
  return { value: walk(value, ""), removed };
}

/** Every quantization key path in a config, for guards and tests. */
export function quantizationKeys(value: Json): string[] {
  return withoutQuantization(value).removed;
}

/** The quantization keys of a model folder's config.json (none for a float model). */
export async function folderQuantizationKeys(dir: string): Promise<string[]> {
  return quantizationKeys(JSON.parse(await readFile(join(dir, "config.json"), "utf8")) as Json);
}

export async function cleanConfigFile(path: string): Promise<string[]> {
  const { value, removed } = withoutQuantization(JSON.parse(await readFile(path, "utf8")) as Json);
  if (removed.length > 0) await writeFile(path, JSON.stringify(value, null, 2) + "\n");
  return removed;
}
