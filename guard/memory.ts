// Peak memory of `mlx_lm lora` from the config alone, so "will this fit?" is answered in
// milliseconds before an hour of training dies of memory. The model is deliberately simple:
// a sum of the things mlx-lm keeps alive at the peak of one training step (late in the backward
// pass), each term linear in what drives it. Constants live in CALIBRATION so a measurement
// can tune them without touching the formulas.

import { UserError } from "../engine/types.ts";
import type { ModelShape, Quantization } from "./model-shape.ts";
import { layerBlock, type Matrix, matrixParams, modelLevel } from "./parameters.ts";

/**
 * Tunable constants. The activation and logit ones were fitted (least squares, worst point 0.5%
 * off) to mx.get_peak_memory() of one compiled mlx-lm 0.32.2 training step on the mlx CPU
 * backend: bf16 random-weight Llama blocks, rank 8, batch 1, sweeping vocabulary, trained
 * layers, sequence length and MLP width. Measured with guard/calibration/calibrate_memory.py; the points
 * are in test/guard/calibration.test.ts.
 * Metal's fused attention may keep less; re-fit from a Mac's numbers when they are available.
 */
export const CALIBRATION = {
  /** Per token per trained layer, in hidden-size units: layer input, norm outputs, attention
   * output, residual sums, LoRA inputs, and their gradients in flight. Fitted 11.4. */
  hiddenCopies: 11.5,
  /** Per token per trained layer, in MLP-width units: gate, up, act(gate), act(gate)·up, LoRA
   * paths and gradients. Fitted 6.5. */
  mlpCopies: 6.5,
  /** Attention probabilities (batch × heads × seq × seq) kept for the backward pass. Fitted 1.2. */
  attentionScoreCopies: 1.2,
  /** Mamba-2's chunked scan materialises decay and surrogate-attention matrices per chunk (not
   * measured: counted like attention scores over a 256-token window, 4 arrays). */
  mambaChunkCopies: 4,
  /** Backward through a trained layer needs gradients on top of what is kept. Fitted 0.7 layers. */
  backwardTransientLayers: 0.7,
  /** With gradient checkpointing only each layer's inputs are kept (measured 2.8 hidden copies) ... */
  checkpointHiddenCopies: 3,
  /** ... plus the layer being recomputed, in full, with its backward transients (measured 1.8). */
  checkpointRecomputeLayers: 1.8,
  /** Logits, their log-softmax and their gradient, in the compute dtype: measured 8 bytes per
   * batch × seq × vocab element for bf16, i.e. 4 copies (mlx-lm does not upcast logits to fp32). */
  logitCopies: 4,
  /** LoRA weights are created in fp32 by mlx-lm (mx.random.uniform / mx.zeros). */
  loraBytes: 4,
  /** Adam keeps two fp32 moments per trained parameter (mlx-lm's default optimizer). */
  adamMoments: 2,
  /** Metal/CPU runtime, compiled kernels, allocator slack, tokenised dataset. */
  overheadBytes: 0.4 * 2 ** 30,
  /** mlx-lm pads each batch to 1 + a multiple of 32 tokens (capped at max_seq_length). */
  padMultiple: 32,
} as const;

export interface TrainingPlan {
  readonly batchSize: number;
  readonly maxSeqLength: number;
  /** Longest example in tokens, when known: mlx-lm pads to the longest in the batch, not to max_seq_length. */
  readonly longestExampleTokens?: number;
  readonly rank: number;
  /** Trained blocks, counted from the top; -1 = all (mlx-lm's num_layers). */
  readonly numLayers: number;
  readonly gradCheckpoint: boolean;
  /** LoRA keys (module paths inside a block); absent = every linear, as mlx-lm does by default. */
  readonly keys?: readonly string[];
}

export interface MemoryBreakdown {
  readonly weights: number;
  readonly lora: number;
  readonly loraGradients: number;
  readonly optimizer: number;
  readonly activations: number;
  readonly logits: number;
  readonly overhead: number;
}

export interface MemoryEstimate {
  readonly peakBytes: number;
  readonly breakdown: MemoryBreakdown;
  /** Tokens per row of a batch, as mlx-lm pads it. */
  readonly sequenceLength: number;
  readonly trainedLayers: number;
  readonly loraParameters: number;
}

export interface EstimateOptions {
  /** Weight bytes measured from the safetensors headers: wins over the config-based figure. */
  readonly weightBytes?: number;
}

/** Bytes of the language model's weights as MLX holds them, from the config alone. */
export function modelWeightBytes(shape: ModelShape): number {
  const top = modelLevel(shape);
  const matrices = [...top.matrices];
  let floatParams = top.floatParams;
  for (let layer = 0; layer < shape.numLayers; layer++) {
    const block = layerBlock(shape, layer);
    matrices.push(...block.matrices);
    floatParams += block.floatParams;
  }
  return matrices.reduce((sum, m) => sum + matrixBytes(m, shape), floatParams * shape.dtype.bytes);
}

/**
 * MLX affine quantization: bits/8 bytes per weight plus a scale and a bias per group, in the float
 * dtype. mlx_lm.convert skips matrices whose input width is not a multiple of the group size,
 * and biases stay float.
 */
function matrixBytes(m: Matrix, shape: ModelShape): number {
  const q = shape.quantization;
  const weights = m.experts * m.inDim * m.outDim;
  const biasBytes = (matrixParams(m) - weights) * shape.dtype.bytes;
  if (!q || m.inDim % q.groupSize !== 0) return weights * shape.dtype.bytes + biasBytes;
  return weights * (q.bits / 8) + (weights / q.groupSize) * 2 * shape.dtype.bytes + biasBytes;
}

export function estimateTrainingMemory(
  shape: ModelShape,
  plan: TrainingPlan,
  opts: EstimateOptions = {},
): MemoryEstimate {
  const trainedLayers = resolveTrainedLayers(shape, plan.numLayers);
  const seq = sequenceLength(plan);
  const tokens = plan.batchSize * seq;
  const bytes = shape.dtype.bytes;

  let loraParameters = 0;
  const perLayerActivations: number[] = [];
  for (let layer = shape.numLayers - trainedLayers; layer < shape.numLayers; layer++) {
    // LoRA A (rank × in) and B (out × rank) per adapted matrix, per expert for stacked experts.
    for (const m of layerBlock(shape, layer).matrices) {
      if (plan.keys === undefined || plan.keys.includes(m.key)) loraParameters += m.experts * plan.rank * (m.inDim + m.outDim);
    }
    perLayerActivations.push(layerActivationElements(shape, layer, seq) * tokens * bytes);
  }
  const largestLayer = Math.max(0, ...perLayerActivations);
  const activations = plan.gradCheckpoint
    ? trainedLayers * CALIBRATION.checkpointHiddenCopies * shape.hiddenSize * tokens * bytes +
      (CALIBRATION.backwardTransientLayers + CALIBRATION.checkpointRecomputeLayers) * largestLayer
    : perLayerActivations.reduce((a, b) => a + b, 0) + CALIBRATION.backwardTransientLayers * largestLayer;

  const loraBytes = loraParameters * CALIBRATION.loraBytes;
  const breakdown: MemoryBreakdown = {
    weights: opts.weightBytes ?? modelWeightBytes(shape),
    lora: loraBytes,
    loraGradients: loraBytes,
    optimizer: CALIBRATION.adamMoments * loraBytes,
    activations,
    logits: tokens * shape.vocabSize * CALIBRATION.logitCopies * bytes,
    overhead: CALIBRATION.overheadBytes,
  };
  const peakBytes = Object.values(breakdown).reduce((a, b) => a + b, 0);
  return { peakBytes, breakdown, sequenceLength: seq, trainedLayers, loraParameters };
}

function resolveTrainedLayers(shape: ModelShape, numLayers: number): number {
  if (numLayers === -1) return shape.numLayers;
  // mlx-lm slices layers[-max(n, 0):], so 0 (or any other negative) would silently train every layer.
  if (!Number.isInteger(numLayers) || numLayers < 1 || numLayers > shape.numLayers) {
    throw new UserError(
      `num_layers is ${numLayers}, but ${shape.source} describes ${shape.numLayers} layers: use 1 to ${shape.numLayers}, or -1 for all.`,
    );
  }
  return numLayers;
}

/** Row length of a batch: mlx-lm pads to 1 + a multiple of 32 above the longest example, capped at max_seq_length. */
function sequenceLength(plan: TrainingPlan): number {
  if (plan.longestExampleTokens === undefined) return plan.maxSeqLength;
  const pad = CALIBRATION.padMultiple;
  return Math.min(1 + pad * Math.ceil(plan.longestExampleTokens / pad), plan.maxSeqLength);
}

/** Compute-dtype elements one token keeps alive in one trained layer (no checkpointing). */
function layerActivationElements(shape: ModelShape, layer: number, seq: number): number {
  const c = CALIBRATION;
  const h = shape.hiddenSize;
  let elements = c.hiddenCopies * h * (shape.altupInputs ?? 1);
  const m = shape.mamba;
  if (m?.isMambaLayer[layer] === true) {
    const inner = m.numHeads * m.headDim;
    // in_proj output (z, x, B, C, dt), conv output and gated-norm output, then the chunk matrices.
    elements += 2 * inner + 2 * m.numGroups * m.stateSize + m.numHeads + 2 * inner;
    elements += c.mambaChunkCopies * m.numHeads * Math.min(m.chunkSize, seq);
  } else {
    elements += (shape.numHeads + 2 * shape.numKvHeads) * shape.headDim;
    elements += c.attentionScoreCopies * shape.numHeads * seq;
  }
  const moe = shape.moe;
  if (moe) {
    // Each token is copied to its k experts; the router scores every expert.
    elements += moe.expertsPerToken * (c.mlpCopies * moe.expertIntermediateSize + h) + moe.numExperts;
    elements += c.mlpCopies * moe.sharedIntermediateSize;
  } else {
    elements += c.mlpCopies * (shape.intermediateSize[layer] ?? 0);
  }
  return elements;
}

export type OperatingSystem = "macos" | "linux";

export interface Machine {
  readonly os: OperatingSystem;
  readonly totalBytes: number;
  /** Linux: MemAvailable. Ignored on macOS, where the GPU working-set limit is what binds. */
  readonly availableBytes?: number;
}

const GiB = 2 ** 30;

/**
 * Bytes a training run can use. macOS: mlx-lm raises the wired limit to Metal's
 * recommendedMaxWorkingSetSize, which Apple sets to about 2/3 of RAM on machines up to 36 GB
 * (16 GB → 10.67 GiB) and about 3/4 above. Measure it on a real Mac with
 * mx.device_info()["max_recommended_working_set_size"] when it matters. Linux: available RAM.
 */
export function usableMemory(machine: Machine): number {
  switch (machine.os) {
    case "macos":
      return machine.totalBytes * (machine.totalBytes <= 36 * GiB ? 2 / 3 : 3 / 4);
    case "linux":
      return machine.availableBytes ?? machine.totalBytes;
    default: {
      const never: never = machine.os;
      throw new Error(`unknown os ${String(never)}`);
    }
  }
}

export interface FitSuggestion {
  /** What to change, in pipeline.yaml terms. */
  readonly change: string;
  readonly plan: TrainingPlan;
  /** The base model's quantization this estimate assumes. */
  readonly quantization: Quantization | null;
  readonly estimate: MemoryEstimate;
}

const FOUR_BIT: Quantization = { bits: 4, groupSize: 64 };

/**
 * Changes that make the run fit in `usableBytes`, least disruptive first: ones that keep the
 * result the same (checkpointing, accumulation), then ones that shrink what is learned (rank,
 * layers), then a 4-bit base model, then truncating examples. One combined suggestion is added
 * when it takes more than one change: the ones that always apply, then the first search that fits.
 */
export function suggestFits(
  shape: ModelShape,
  plan: TrainingPlan,
  usableBytes: number,
  opts: EstimateOptions = {},
): FitSuggestion[] {
  // A 4-bit model's weights are no longer what the safetensors headers measured. Weight bytes
  // are computed once per shape: the searches below run dozens of estimates.
  const weights = new Map<ModelShape, number>([[shape, opts.weightBytes ?? modelWeightBytes(shape)]]);
  const optsFor = (s: ModelShape): EstimateOptions => {
    const known = weights.get(s) ?? modelWeightBytes(s);
    weights.set(s, known);
    return { weightBytes: known };
  };
  const fitting = (s: ModelShape, p: TrainingPlan): MemoryEstimate | null => {
    const estimate = estimateTrainingMemory(s, p, optsFor(s));
    return estimate.peakBytes <= usableBytes ? estimate : null;
  };
  // The largest candidate below `below` that fits. Candidates are descending and the estimate is
  // monotone in each knob, so a binary search finds it in a handful of estimates.
  const largest = (s: ModelShape, below: number, candidates: readonly number[], make: (v: number) => TrainingPlan) => {
    const options = candidates.filter((v) => v < below);
    let [lo, hi] = [0, options.length]; // options[hi..] fit, options[..lo) do not
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (fitting(s, make(options[mid] ?? 0)) !== null) hi = mid;
      else lo = mid + 1;
    }
    return options[lo];
  };

  type Step = (s: ModelShape, p: TrainingPlan) => { change: string; shape: ModelShape; plan: TrainingPlan } | null;
  // Fixed changes always apply; searches return the mildest value that fits, or null.
  const checkpoint: Step = (s, p) =>
    p.gradCheckpoint ? null : { change: "grad_checkpoint: true", shape: s, plan: { ...p, gradCheckpoint: true } };
  const batchOne: Step = (s, p) =>
    p.batchSize === 1
      ? null
      : { change: `batch_size: 1 with grad_accumulation_steps: ${p.batchSize} (same effective batch)`, shape: s, plan: { ...p, batchSize: 1 } };
  const fourBit: Step = (s, p) =>
    s.quantization !== null && s.quantization.bits <= 4
      ? null
      : {
          change: "a 4-bit base model (an mlx-community …-4bit repo, or mlx_lm.convert -q --q-bits 4 --q-group-size 64)",
          shape: { ...s, quantization: FOUR_BIT },
          plan: p,
        };
  const smallerRank: Step = (s, p) => {
    const rank = largest(s, p.rank, [64, 32, 16, 8, 4, 2, 1], (r) => ({ ...p, rank: r }));
    return rank === undefined ? null : { change: `rank: ${rank}`, shape: s, plan: { ...p, rank } };
  };
  const fewerLayers: Step = (s, p) => {
    const current = p.numLayers === -1 ? s.numLayers : p.numLayers;
    const counts = Array.from({ length: current }, (_, i) => current - i);
    const n = largest(s, current, counts, (v) => ({ ...p, numLayers: v }));
    return n === undefined ? null : { change: `num_layers: ${n}`, shape: s, plan: { ...p, numLayers: n } };
  };
  const shorterSequences: Step = (s, p) => {
    const lengths = [8192, 4096, 2048, 1536, 1024, 768, 512, 384, 256];
    const len = largest(s, p.maxSeqLength, lengths, (v) => ({ ...p, maxSeqLength: v }));
    return len === undefined
      ? null
      : { change: `max_seq_length: ${len} (longer examples are truncated)`, shape: s, plan: { ...p, maxSeqLength: len } };
  };

  // How much each change alters what training produces: 0 nothing (slower only), 1 a smaller
  // adapter, 2 a lossy base model, 3 truncated examples.
  const level = new Map<Step, number>([
    [checkpoint, 0],
    [batchOne, 0],
    [smallerRank, 1],
    [fewerLayers, 1],
    [fourBit, 2],
    [shorterSequences, 3],
  ]);
  const ranked: { level: number; suggestion: FitSuggestion }[] = [];
  for (const [step, rank] of level) {
    const next = step(shape, plan);
    const estimate = next && fitting(next.shape, next.plan);
    if (next && estimate) {
      ranked.push({ level: rank, suggestion: { change: next.change, plan: next.plan, quantization: next.shape.quantization, estimate } });
    }
  }

  // Combined: the changes that always apply first, then the first search that fits on top of them.
  let combined = { shape, plan, changes: [] as string[], level: 0 };
  for (const step of [checkpoint, batchOne, fourBit, smallerRank, fewerLayers, shorterSequences]) {
    const next = step(combined.shape, combined.plan);
    if (!next) continue;
    combined = {
      shape: next.shape,
      plan: next.plan,
      changes: [...combined.changes, next.change],
      level: Math.max(combined.level, level.get(step) ?? 0),
    };
    const estimate = fitting(combined.shape, combined.plan);
    if (estimate) {
      if (combined.changes.length > 1) {
        const change = combined.changes.join("; ");
        ranked.push({ level: combined.level, suggestion: { change, plan: combined.plan, quantization: combined.shape.quantization, estimate } });
      }
      break;
    }
  }
  // Stable sort: within a level, single changes come before the combination.
  return ranked.sort((a, b) => a.level - b.level).map((r) => r.suggestion);
}
