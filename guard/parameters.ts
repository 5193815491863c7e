// Parameter counts from a ModelShape, built from one description of every weight matrix.
// The same matrices drive the parameter count, the quantized weight bytes (memory.ts) and the
// LoRA adapter size, so the three can never disagree about what a model contains.
//
// What is counted (the language model only; mlx-lm drops vision and audio towers):
// - token embeddings; Gemma 3n's per-layer embeddings (vocab_size_per_layer_input ×
//   num_layers × hidden_size_per_layer_input) and its AltUp / per-layer projections;
// - per block: attention (q, k, v, o with GQA widths and biases) or a Mamba-2 mixer
//   (in_proj, depthwise conv, A_log/D/dt_bias, gated norm, out_proj); then a gated MLP
//   (gate, up, down) or an MoE block (router + stacked experts + optional shared expert);
//   Gemma 3n's LAuReL, per-layer gate/projection and AltUp coefficient layers; RMS norms;
// - the final norm and lm_head (only when untied).
// Norm counts are approximate (a few thousand parameters per layer): they never move a total
// by anything near 1%.

import type { MambaInfo, ModelShape, MoeInfo } from "./model-shape.ts";

/** One weight matrix (a Linear, an Embedding table, or experts stacked in a SwitchLinear). */
export interface Matrix {
  /** mlx-lm's module path: inside a block this is what LoRA `keys` match. */
  readonly key: string;
  /** Input width: the axis MLX quantizes along (for an embedding table, its hidden size). */
  readonly inDim: number;
  readonly outDim: number;
  /** Experts stacked in this tensor; 1 for an ordinary linear. */
  readonly experts: number;
  readonly bias: boolean;
}

/** The weights of a block (or of the model outside its blocks). */
export interface Block {
  readonly matrices: readonly Matrix[];
  /** Weights that are not matrices (norms, conv kernels, SSM vectors): never quantized. */
  readonly floatParams: number;
}

export interface ParameterCounts {
  readonly embeddings: number;
  readonly perLayerEmbeddings: number;
  /** All transformer / Mamba blocks together. */
  readonly blocks: number;
  /** 0 when the output projection is tied to the embeddings. */
  readonly lmHead: number;
  /** Final norm and model-level projections (Gemma 3n AltUp, per-layer projection). */
  readonly other: number;
  readonly total: number;
  /** Parameters used per token: MoE blocks count only the routed experts and the shared one. */
  readonly active: number;
}

export function matrixParams(m: Matrix): number {
  return m.experts * (m.inDim * m.outDim + (m.bias ? m.outDim : 0));
}

function blockParams(block: Block): number {
  return block.matrices.reduce((sum, m) => sum + matrixParams(m), block.floatParams);
}

/** The weights of block `layer` (0-based). */
export function layerBlock(shape: ModelShape, layer: number): Block {
  const h = shape.hiddenSize;
  const parts: Block[] = [
    shape.mamba?.isMambaLayer[layer] === true ? mambaMixer(shape.mamba, h) : attention(shape),
    shape.moe ? moe(shape.moe, h) : denseMlp("mlp", h, shape.intermediateSize[layer] ?? 0, shape.mlpBias),
    { matrices: [], floatParams: normParams(shape) },
  ];
  if (shape.perLayerEmbeddings) parts.push(gemma3nExtras(shape));
  return {
    matrices: parts.flatMap((part) => part.matrices),
    floatParams: parts.reduce((sum, part) => sum + part.floatParams, 0),
  };
}

/** The weights outside the blocks. */
export function modelLevel(shape: ModelShape): Block {
  const h = shape.hiddenSize;
  const matrices: Matrix[] = [linear("embed_tokens", h, shape.vocabSize)];
  let floatParams = h; // final norm
  const ple = shape.perLayerEmbeddings;
  if (ple) {
    const perLayerWidth = shape.numLayers * ple.hiddenSizePerLayer;
    matrices.push(linear("embed_tokens_per_layer", perLayerWidth, ple.vocabSize));
    matrices.push(linear("per_layer_model_projection", h, perLayerWidth));
    floatParams += ple.hiddenSizePerLayer;
  }
  // AltUp keeps altup_num_inputs copies of the hidden state: one projection in and one out per extra copy.
  for (let i = 1; i < (shape.altupInputs ?? 1); i++) {
    matrices.push(linear(`altup_projections.${i - 1}`, h, h), linear(`altup_unembed_projections.${i - 1}`, h, h));
  }
  if (!shape.tieWordEmbeddings) matrices.push(linear("lm_head", h, shape.vocabSize));
  return { matrices, floatParams };
}

export function countParameters(shape: ModelShape): ParameterCounts {
  let blocks = 0;
  let active = 0;
  for (let layer = 0; layer < shape.numLayers; layer++) {
    const block = layerBlock(shape, layer);
    blocks += blockParams(block);
    active += block.matrices.reduce(
      (sum, m) => sum + (matrixParams(m) * Math.min(m.experts, shape.moe?.expertsPerToken ?? 1)) / m.experts,
      block.floatParams,
    );
  }
  const top = modelLevel(shape);
  const byKey = (key: string): number =>
    top.matrices.filter((m) => m.key === key).reduce((sum, m) => sum + matrixParams(m), 0);
  const embeddings = byKey("embed_tokens");
  const perLayerEmbeddings = byKey("embed_tokens_per_layer");
  const lmHead = byKey("lm_head");
  const outside = blockParams(top);
  const other = outside - embeddings - perLayerEmbeddings - lmHead;
  return { embeddings, perLayerEmbeddings, blocks, lmHead, other, total: blocks + outside, active: active + outside };
}

function linear(key: string, inDim: number, outDim: number, bias = false, experts = 1): Matrix {
  return { key, inDim, outDim, experts, bias };
}

function attention(shape: ModelShape): Block {
  const { hiddenSize: h, numHeads, numKvHeads, headDim, attentionBias } = shape;
  return {
    matrices: [
      linear("self_attn.q_proj", h, numHeads * headDim, attentionBias.qkv),
      linear("self_attn.k_proj", h, numKvHeads * headDim, attentionBias.qkv),
      linear("self_attn.v_proj", h, numKvHeads * headDim, attentionBias.qkv),
      linear("self_attn.o_proj", numHeads * headDim, h, attentionBias.o),
    ],
    // Gemma 3 / 3n normalise q and k per head.
    floatParams: isGemma(shape) ? 2 * headDim : 0,
  };
}

/** Mamba-2 mixer as mlx-lm's granitemoehybrid builds it. */
function mambaMixer(m: MambaInfo, h: number): Block {
  const inner = m.numHeads * m.headDim;
  const convDim = inner + 2 * m.numGroups * m.stateSize;
  return {
    matrices: [
      // z (gate) + x, B, C (the conv input) + dt per head, in one projection.
      linear("mamba.in_proj", h, inner + convDim + m.numHeads, m.projBias),
      linear("mamba.out_proj", inner, h, m.projBias),
    ],
    // Depthwise conv kernel (+ bias), A_log, D and dt_bias per head, gated RMS norm.
    floatParams: convDim * m.convKernel + (m.convBias ? convDim : 0) + 3 * m.numHeads + inner,
  };
}

function denseMlp(prefix: string, h: number, width: number, bias: boolean): Block {
  return {
    matrices: [
      linear(`${prefix}.gate_proj`, h, width, bias),
      linear(`${prefix}.up_proj`, h, width, bias),
      linear(`${prefix}.down_proj`, width, h, bias),
    ],
    floatParams: 0,
  };
}

/** Router + experts stacked in switch_mlp (mlx-lm's layout) + the shared expert. Names follow Granite 4.0 H. */
function moe(info: MoeInfo, h: number): Block {
  const { numExperts: e, expertIntermediateSize: width, sharedIntermediateSize: shared } = info;
  const matrices = [
    linear("block_sparse_moe.router.layer", h, e),
    linear("block_sparse_moe.switch_mlp.gate_proj", h, width, false, e),
    linear("block_sparse_moe.switch_mlp.up_proj", h, width, false, e),
    linear("block_sparse_moe.switch_mlp.down_proj", width, h, false, e),
  ];
  if (shared > 0) {
    // Granite fuses the shared expert's gate and up projections into one input_linear.
    matrices.push(linear("shared_mlp.input_linear", h, 2 * shared), linear("shared_mlp.output_linear", shared, h));
  }
  return { matrices, floatParams: 0 };
}

/** Gemma 3n's per-block extras: LAuReL low-rank residual, per-layer-input gate, AltUp coefficients. */
function gemma3nExtras(shape: ModelShape): Block {
  const h = shape.hiddenSize;
  const perLayer = shape.perLayerEmbeddings?.hiddenSizePerLayer ?? 0;
  const n = shape.altupInputs ?? 1;
  const matrices = [
    linear("per_layer_input_gate", h, perLayer),
    linear("per_layer_projection", perLayer, h),
    linear("altup.correction_coefs", n, n),
    linear("altup.prediction_coefs", n, n * n),
    linear("altup.modality_router", h, n),
  ];
  if (shape.laurelRank > 0) {
    matrices.push(linear("laurel.linear_left", h, shape.laurelRank), linear("laurel.linear_right", shape.laurelRank, h));
  }
  // Norms after LAuReL and the per-layer input, AltUp's router norm and output scale.
  return { matrices, floatParams: 4 * h };
}

/** Llama-style blocks have 2 RMS norms; Gemma wraps both attention and MLP in pre and post norms. */
function normParams(shape: ModelShape): number {
  return (isGemma(shape) ? 4 : 2) * shape.hiddenSize;
}

function isGemma(shape: ModelShape): boolean {
  return shape.textModelType.startsWith("gemma");
}
