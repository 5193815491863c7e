// How heavy each stage's run is, for the engine's scheduler: two heavy nodes never run at once (see
// NodeSpec.weight). Kept apart from the stage modules: a stage's module is an input of its output (see
// code.ts), and how a node is scheduled does not change what it builds, so declaring it there would make
// every built output stale.
import type { NodeSpec, NodeWeight } from "../../engine/types.ts";
import type { PipelineConfig } from "../../config/schema.ts";
import { parseModelRef } from "./model-ref.ts";

/** Heavy: fills the memory with a whole model or keeps every core busy. Any stage not named here is light. */
const HEAVY: ReadonlySet<string> = new Set([
  "adapters", // training takes the memory and every core
  "quantizer", // compiling llama.cpp keeps every core busy
  "fused", // holds the whole model in memory, dequantized
  "hf", // loads the model in transformers to prove it loads
  "gguf", // converts the whole model, and quantizes it on every core
  "eval", // loads and runs three models
  "base-gguf", // converts the whole base model
  "llama-server", // compiling llama.cpp keeps every core busy
]);
// Light: mlx-env and llama-cpp (pip installs, a git clone), data and formatted (small files), model when
// it is a download or a copy.

export function withWeight(node: NodeSpec<PipelineConfig>, config: PipelineConfig, root: string): NodeSpec<PipelineConfig> {
  let weight: NodeWeight = HEAVY.has(node.id) ? "heavy" : "light";
  // A GGUF dequantized into a Hugging Face folder holds the whole model in memory.
  if (node.id === "model" && ["gguf", "pypi"].includes(parseModelRef(config.model, root).kind)) weight = "heavy";
  return { ...node, weight };
}
