// The shape of a model's language part, read from its config.json alone (no weights, no Python).
// Everything the parameter count and the memory estimate need is resolved here once, so the
// rest of guard/ never looks at raw config keys and never has to know about library defaults.

import type { output } from "zod";
import { zod } from "../engine/packages.ts";
import { UserError } from "../engine/types.ts";

const { z } = zod();

export interface Quantization {
  readonly bits: number;
  readonly groupSize: number;
}

export interface MoeInfo {
  /** Routed experts per MoE block (num_local_experts / num_experts). */
  readonly numExperts: number;
  readonly expertsPerToken: number;
  /** Hidden width of one routed expert's gated MLP. */
  readonly expertIntermediateSize: number;
  /** Hidden width of the always-on shared expert; 0 when there is none. */
  readonly sharedIntermediateSize: number;
}

export interface MambaInfo {
  /** Per layer: true for a Mamba-2 mixer, false for attention. */
  readonly isMambaLayer: readonly boolean[];
  readonly numHeads: number;
  readonly headDim: number;
  readonly stateSize: number;
  readonly numGroups: number;
  readonly convKernel: number;
  readonly convBias: boolean;
  readonly projBias: boolean;
  /** Length of the chunks the SSD scan materialises quadratically (mlx-lm: 256). */
  readonly chunkSize: number;
}

/** Gemma 3n: a second embedding table feeding every layer a small per-layer vector. */
export interface PerLayerEmbeddings {
  readonly vocabSize: number;
  readonly hiddenSizePerLayer: number;
}

export interface ModelShape {
  /** Where the config came from, for messages. */
  readonly source: string;
  readonly modelType: string;
  /** text_config.model_type for multimodal checkpoints, else the same as modelType. */
  readonly textModelType: string;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  /** Dense MLP width per layer (Gemma 3n varies it; MoE models use `moe` instead). */
  readonly intermediateSize: readonly number[];
  readonly vocabSize: number;
  readonly tieWordEmbeddings: boolean;
  /** Float dtype of the weights (and of quantization scales and biases). */
  readonly dtype: { readonly name: string; readonly bytes: number };
  readonly quantization: Quantization | null;
  /** Bias on q/k/v (Qwen2 always; others when attention_bias) and on o_proj (attention_bias). */
  readonly attentionBias: { readonly qkv: boolean; readonly o: boolean };
  readonly mlpBias: boolean;
  readonly moe: MoeInfo | null;
  readonly mamba: MambaInfo | null;
  readonly perLayerEmbeddings: PerLayerEmbeddings | null;
  /** Gemma 3n AltUp streams (null when absent) and LAuReL rank (0 when absent). */
  readonly altupInputs: number | null;
  readonly laurelRank: number;
  /** Config blocks of towers mlx-lm drops when it loads the text model (cost nothing in training). */
  readonly droppedTowers: readonly string[];
}

const count = z.number().int().positive();
const flag = z.boolean();

// Every key optional and unknown keys kept: config.json files carry dozens of keys we ignore,
// and which ones are required depends on the family, so presence is checked after parsing.
const textSchema = z.looseObject({
  model_type: z.string().optional(),
  hidden_size: count.optional(),
  num_hidden_layers: count.optional(),
  num_attention_heads: count.optional(),
  num_key_value_heads: count.optional(),
  head_dim: count.optional(),
  intermediate_size: z.union([count, z.array(count)]).optional(),
  vocab_size: count.optional(),
  tie_word_embeddings: flag.optional(),
  torch_dtype: z.string().nullable().optional(),
  dtype: z.string().nullable().optional(),
  attention_bias: flag.optional(),
  mlp_bias: flag.optional(),
  num_local_experts: z.number().int().nonnegative().optional(),
  num_experts: z.number().int().nonnegative().nullable().optional(),
  num_experts_per_tok: count.optional(),
  moe_intermediate_size: count.optional(),
  shared_intermediate_size: z.number().int().nonnegative().optional(),
  shared_expert_intermediate_size: z.number().int().nonnegative().optional(),
  layer_types: z.array(z.string()).optional(),
  mamba_n_heads: count.optional(),
  mamba_d_head: count.optional(),
  mamba_d_state: count.optional(),
  mamba_n_groups: count.optional(),
  mamba_expand: count.optional(),
  mamba_d_conv: count.optional(),
  mamba_conv_bias: flag.optional(),
  mamba_proj_bias: flag.optional(),
  vocab_size_per_layer_input: count.optional(),
  hidden_size_per_layer_input: count.optional(),
  altup_num_inputs: count.optional(),
  laurel_rank: count.optional(),
});

const quantSchema = z.looseObject({ bits: count, group_size: count });

const topSchema = textSchema.extend({
  text_config: textSchema.optional(),
  quantization: quantSchema.optional(),
  quantization_config: z.looseObject({}).optional(),
});

type TextFields = output<typeof textSchema>;

// transformers' Gemma3TextConfig defaults: Gemma 3's text_config omits these and relies on them
// (checked against test/fixtures/model-configs/google--gemma-3-4b-it.resolved-text_config.json).
const FAMILY_DEFAULTS: Readonly<Record<string, Partial<TextFields>>> = {
  gemma3_text: {
    num_attention_heads: 8,
    num_key_value_heads: 4,
    head_dim: 256,
    vocab_size: 262208,
  },
};

const DTYPE_BYTES: Readonly<Record<string, number>> = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
};

const TOWER_KEYS = ["vision_config", "audio_config"] as const;

export function readModelShape(config: unknown, source: string): ModelShape {
  const parsed = topSchema.safeParse(config);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = issue?.path.join(".") ?? "";
    throw new UserError(
      key === ""
        ? `${source}: not a JSON object. Is this a Hugging Face config.json?`
        : `${source}: "${key}" is invalid (${issue?.message ?? "unexpected value"}). Fix or remove it.`,
    );
  }
  const top = parsed.data;
  const text = top.text_config;
  const prefix = text ? "text_config." : "";
  const modelType = top.model_type ?? text?.model_type ?? "unknown";
  const textModelType = text?.model_type ?? modelType;
  // A text_config value wins, then the top level (which is the text model for text-only
  // checkpoints), then the family's library default.
  const fields: TextFields = { ...FAMILY_DEFAULTS[textModelType], ...top, ...text };

  const need = <K extends keyof TextFields>(key: K): NonNullable<TextFields[K]> => {
    const value = fields[key];
    if (value === undefined || value === null) {
      throw new UserError(
        `${source}: "${prefix}${String(key)}" is missing (needed to estimate memory). Is this a Hugging Face config.json?`,
      );
    }
    return value;
  };

  const hiddenSize = need("hidden_size");
  const numLayers = need("num_hidden_layers");
  const numHeads = need("num_attention_heads");
  const numKvHeads = fields.num_key_value_heads ?? numHeads;
  const intermediate = need("intermediate_size");
  const intermediateSize =
    typeof intermediate === "number" ? Array.from({ length: numLayers }, () => intermediate) : intermediate;
  if (intermediateSize.length !== numLayers) {
    throw new UserError(
      `${source}: "${prefix}intermediate_size" lists ${intermediateSize.length} sizes but "num_hidden_layers" is ${numLayers}. Give one size per layer.`,
    );
  }

  const dtypeName = fields.torch_dtype ?? fields.dtype ?? "bfloat16";
  const dtypeBytes = DTYPE_BYTES[dtypeName];
  if (dtypeBytes === undefined) {
    throw new UserError(
      `${source}: "torch_dtype" is "${dtypeName}"; expected one of ${Object.keys(DTYPE_BYTES).join(", ")}.`,
    );
  }

  return {
    source,
    modelType,
    textModelType,
    hiddenSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim: fields.head_dim ?? hiddenSize / numHeads,
    intermediateSize,
    vocabSize: need("vocab_size"),
    // transformers' default is per family: every Gemma config class ties, Llama/Qwen/Granite do not.
    tieWordEmbeddings: fields.tie_word_embeddings ?? textModelType.startsWith("gemma"),
    dtype: { name: dtypeName, bytes: dtypeBytes },
    quantization: readQuantization(top),
    attentionBias: {
      // Qwen2's q/k/v projections carry a bias with no config key saying so.
      qkv: (fields.attention_bias ?? false) || textModelType === "qwen2",
      o: fields.attention_bias ?? false,
    },
    mlpBias: fields.mlp_bias ?? false,
    moe: readMoe(fields, intermediateSize[0] ?? 0),
    mamba: readMamba(fields, hiddenSize, numLayers, source, prefix),
    perLayerEmbeddings:
      fields.vocab_size_per_layer_input !== undefined && fields.hidden_size_per_layer_input !== undefined
        ? { vocabSize: fields.vocab_size_per_layer_input, hiddenSizePerLayer: fields.hidden_size_per_layer_input }
        : null,
    altupInputs: fields.altup_num_inputs ?? null,
    laurelRank: fields.laurel_rank ?? 0,
    droppedTowers: TOWER_KEYS.filter((key) => isObject(config) && key in config),
  };
}

/** MLX writes `quantization`; some converters only leave `quantization_config` (with bits/group_size). */
function readQuantization(top: output<typeof topSchema>): Quantization | null {
  const block = top.quantization ?? quantSchema.safeParse(top.quantization_config).data;
  return block ? { bits: block.bits, groupSize: block.group_size } : null;
}

function readMoe(fields: TextFields, intermediateSize: number): MoeInfo | null {
  const numExperts = fields.num_local_experts ?? fields.num_experts ?? 0;
  if (numExperts < 2) return null;
  return {
    numExperts,
    // Mixtral's default; every MoE config we know states it anyway.
    expertsPerToken: fields.num_experts_per_tok ?? 2,
    // Qwen-MoE names the expert width moe_intermediate_size; Mixtral and Granite reuse intermediate_size.
    expertIntermediateSize: fields.moe_intermediate_size ?? intermediateSize,
    sharedIntermediateSize: fields.shared_intermediate_size ?? fields.shared_expert_intermediate_size ?? 0,
  };
}

/** Hybrid Mamba-2 models (Granite 4.0 H) mark each layer in layer_types as "mamba" or "attention". */
function readMamba(
  fields: TextFields,
  hiddenSize: number,
  numLayers: number,
  source: string,
  prefix: string,
): MambaInfo | null {
  const types = fields.layer_types;
  if (!types?.includes("mamba")) return null;
  if (types.length !== numLayers) {
    throw new UserError(
      `${source}: "${prefix}layer_types" has ${types.length} entries but "num_hidden_layers" is ${numLayers}. Give one type per layer.`,
    );
  }
  const expand = fields.mamba_expand ?? 2;
  const numHeads = fields.mamba_n_heads ?? 128;
  return {
    isMambaLayer: types.map((type) => type === "mamba"),
    numHeads,
    headDim: fields.mamba_d_head ?? (expand * hiddenSize) / numHeads,
    stateSize: fields.mamba_d_state ?? 256,
    numGroups: fields.mamba_n_groups ?? 1,
    convKernel: fields.mamba_d_conv ?? 4,
    convBias: fields.mamba_conv_bias ?? true,
    projBias: fields.mamba_proj_bias ?? false,
    chunkSize: 256,
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
