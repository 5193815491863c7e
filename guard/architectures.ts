// What a model family means for training and export, stated once so guards can warn early.
// Facts are from mlx-lm 0.32 and llama.cpp's converter (see shared/TOOL-FACTS.md).

import type { ModelShape } from "./model-shape.ts";

export interface ArchitectureNote {
  /** Stable code, e.g. "arch.moe". */
  readonly code: string;
  readonly message: string;
}

export function isMoE(shape: ModelShape): boolean {
  return shape.moe !== null;
}

export function isHybridMamba(shape: ModelShape): boolean {
  return shape.mamba !== null;
}

/** Short facts about this model's family that change how training or export behaves. */
export function architectureNotes(shape: ModelShape): ArchitectureNote[] {
  const notes: ArchitectureNote[] = [];
  const moe = shape.moe;
  if (moe) {
    notes.push({
      code: "arch.moe",
      message:
        `Mixture of experts (${moe.numExperts} experts, ${moe.expertsPerToken} per token): mlx-lm puts LoRA on every ` +
        `expert and on the router, so the adapter is about ${moe.numExperts}× larger per MLP than a dense model's ` +
        `and all experts' weights stay in memory although few run per token. A fused model keeps its experts ` +
        `stacked in switch_mlp tensors; the hf step must unstack them into per-expert tensors before llama.cpp converts it.`,
    });
  }
  const mamba = shape.mamba;
  if (mamba) {
    const mambaLayers = mamba.isMambaLayer.filter(Boolean).length;
    notes.push({
      code: "arch.hybrid-mamba",
      message:
        `Hybrid Mamba-2 (${mambaLayers} of ${shape.numLayers} layers are Mamba, the rest attention): LoRA adapts the ` +
        `Mamba in_proj/out_proj too; the chunked scan costs memory linear in sequence length rather than quadratic, ` +
        `and llama.cpp needs a converter version that knows this architecture ("Model X is not supported" otherwise).`,
    });
  }
  if (shape.perLayerEmbeddings) {
    notes.push({
      code: "arch.per-layer-embeddings",
      message:
        "Gemma 3n: per-layer embeddings hold about a third of the weights and must stay in memory for training; " +
        "AltUp reads .weight of its linears directly, so LoRA needs explicit lora_parameters.keys " +
        "(e.g. the self_attn and mlp projections) instead of mlx-lm's every-linear default.",
    });
  }
  if (shape.droppedTowers.length > 0) {
    notes.push({
      code: "arch.multimodal",
      message:
        `Multimodal checkpoint (${shape.droppedTowers.join(", ")}): mlx-lm loads and trains the text model only; ` +
        `the towers cost nothing in training and are not in the fused model.`,
    });
  }
  return notes;
}
