// What a GGUF file holds, read from its header with @huggingface/gguf (not from the pipeline's gguf.json, which
// echoes the config): the file type llama.cpp recorded, and the type each weight matrix is really stored in.
import { gguf, GGMLFileQuantizationType, GGMLQuantizationType } from "@huggingface/gguf";

export interface GgufTypes {
  /** general.file_type by name: F16, Q8_0, Q4_K_M ... */
  readonly fileType: string;
  /** Tensor name → its storage type (F16, Q8_0, Q4_K ...), for the tensors of two or more dimensions. */
  readonly matrices: Readonly<Record<string, string>>;
}

export async function ggufTypes(path: string): Promise<GgufTypes> {
  const { metadata, tensorInfos } = await gguf(path, { allowLocalFile: true });
  const fileType = (metadata as Record<string, unknown>)["general.file_type"];
  return {
    fileType: typeof fileType === "number" ? (GGMLFileQuantizationType[fileType] ?? `unknown ${fileType}`) : "none",
    matrices: Object.fromEntries(tensorInfos.filter((t) => t.n_dims >= 2).map((t) => [t.name, GGMLQuantizationType[t.dtype] ?? `unknown ${t.dtype}`])),
  };
}

/** The share (0..1) of the weight matrices stored in one of `types`. */
export function shareIn(types: GgufTypes, allowed: readonly string[]): number {
  const all = Object.values(types.matrices);
  return all.filter((t) => allowed.includes(t)).length / all.length;
}

/** llama.cpp's K-quant block types: what a K-quant file's matrices are in when the rows allow it. */
export const K_TYPES = ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K"] as const;
