// Verdicts from the compatibility knowledge, for the stages' guards: architecture and memory.
// Everything here reads config.json and safetensors headers only: no weights, no training.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Verdict } from "../engine/types.ts";
import { UserError } from "../engine/types.ts";
import { architectureNotes } from "./architectures.ts";
import { plannedMachine, type PlannedMachine } from "./machine.ts";
import { estimateTrainingMemory, suggestFits, type MemoryEstimate, type OperatingSystem, type TrainingPlan } from "./memory.ts";
import type { ModelShape } from "./model-shape.ts";
import { countParameters } from "./parameters.ts";

const GIB = 2 ** 30;
const gib = (bytes: number) => `${(bytes / GIB).toFixed(2)} GiB`;
/** Above this share of usable memory a run is flagged as close: allocator spikes are not modelled. */
const CLOSE = 0.9;

export interface ModelFacts {
  readonly dir: string;
  readonly config: Record<string, unknown>;
  readonly shape: ModelShape;
  /** Weight bytes measured from the safetensors headers, when the weights are present. */
  readonly weightBytes: number | undefined;
}

/** Reads a model folder's config.json (and its safetensors headers when present). */
export async function readModelFacts(dir: string): Promise<ModelFacts> {
  // Both readers validate with zod: loaded when a guard reads a model, never while a no-op plans.
  const [{ readModelShape }, { readWeightBytes }] = await Promise.all([import("./model-shape.ts"), import("./safetensors.ts")]);
  const path = join(dir, "config.json");
  if (!existsSync(path)) throw new UserError(`${path} is missing: ${dir} is not a model folder.`);
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>;
  } catch (e) {
    throw new UserError(`${path} is not valid JSON: ${(e as Error).message}`);
  }
  const shape = readModelShape(config, path);
  const weights = await readWeightBytes(dir);
  return { dir, config, shape, weightBytes: weights?.bytes };
}

export function architectureVerdicts(facts: ModelFacts): Verdict[] {
  const counts = countParameters(facts.shape);
  const active = counts.active !== counts.total ? ` (${(counts.active / 1e9).toFixed(2)} B active)` : "";
  const quant = facts.shape.quantization ? `, ${facts.shape.quantization.bits}-bit` : "";
  const verdicts: Verdict[] = [
    {
      level: "ok",
      code: "arch.shape",
      message: `${facts.shape.textModelType}: ${facts.shape.numLayers} layers, hidden ${facts.shape.hiddenSize}, vocab ${facts.shape.vocabSize}, ${(counts.total / 1e9).toFixed(2)} B parameters${active}${quant}`,
    },
  ];
  for (const note of architectureNotes(facts.shape)) verdicts.push({ level: "warn", code: note.code, message: note.message, fix: "" });
  return verdicts;
}

/** What the installed mlx-lm said about the architecture (stages/py/arch_probe.py). */
export interface ProbeResult {
  readonly supported: boolean;
  readonly module: string | null;
  readonly lora: { readonly ok: boolean; readonly trainable: number; readonly loss: number | null } | null;
  readonly error?: string;
}

export function probeVerdicts(probe: ProbeResult, modelType: string, mlxLm: string): Verdict[] {
  if (!probe.supported) {
    return [
      {
        level: "error",
        code: "arch.mlx-unsupported",
        message: `mlx-lm ${mlxLm} has no model for model_type "${modelType}" (${probe.error ?? "no module"}).`,
        fix: "Use a model whose architecture mlx-lm supports (llama, qwen2, qwen3, gemma3, mistral, phi3, ...), or pin a newer mlx-lm in stages/requirements/mlx.txt.",
      },
    ];
  }
  if (probe.lora && !probe.lora.ok) {
    const altup = probe.error?.includes("has no attribute 'weight'");
    return [
      {
        level: "error",
        code: "arch.lora-fails",
        message: `mlx-lm ${mlxLm} builds ${probe.module} but one LoRA step on a cut-down copy failed: ${probe.error ?? "non-finite loss"}.`,
        fix: altup
          ? "Some layers read a linear's .weight directly (Gemma 3n's AltUp): set lora.keys to the attention and MLP projections, e.g. [self_attn.q_proj, self_attn.k_proj, self_attn.v_proj, self_attn.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj]."
          : "Set lora.keys to the projections to adapt, or use another model.",
      },
    ];
  }
  const proof = probe.lora
    ? `, and one LoRA step on a cut-down copy trained ${probe.lora.trainable.toLocaleString("en")} parameters`
    : " (too large for a quick LoRA probe: its module is the answer)";
  return [{ level: "ok", code: "arch.mlx", message: `mlx-lm ${mlxLm} builds it as ${probe.module}${proof}` }];
}

export function trainingPlan(lora: {
  batch_size: number;
  max_seq_length: number;
  rank: number;
  num_layers: number;
  grad_checkpoint: boolean;
  keys?: string[] | undefined;
}, longestExampleTokens?: number): TrainingPlan {
  return {
    batchSize: lora.batch_size,
    maxSeqLength: lora.max_seq_length,
    rank: lora.rank,
    numLayers: lora.num_layers,
    gradCheckpoint: lora.grad_checkpoint,
    ...(lora.keys ? { keys: lora.keys } : {}),
    ...(longestExampleTokens !== undefined ? { longestExampleTokens } : {}),
  };
}

export interface MemoryReport {
  readonly machine: PlannedMachine;
  readonly estimate: MemoryEstimate;
  readonly verdicts: Verdict[];
}

export function memoryReport(facts: ModelFacts, plan: TrainingPlan, target: { os?: OperatingSystem; total?: string }): MemoryReport {
  const machine = plannedMachine(target);
  const opts = facts.weightBytes !== undefined ? { weightBytes: facts.weightBytes } : {};
  const estimate = estimateTrainingMemory(facts.shape, plan, opts);
  const share = estimate.peakBytes / machine.usableBytes;
  const seq = plan.longestExampleTokens !== undefined ? `sequences of ${estimate.sequenceLength} tokens (the longest example)` : `sequences of up to ${estimate.sequenceLength} tokens (max_seq_length; the data is not tokenized yet)`;
  const what = `training needs about ${gib(estimate.peakBytes)} (batch ${plan.batchSize}, ${seq}, ${estimate.trainedLayers} trained layers, rank ${plan.rank}); ${machine.label} can use ${gib(machine.usableBytes)}`;
  if (share <= CLOSE) return { machine, estimate, verdicts: [{ level: "ok", code: "memory.fits", message: what }] };
  const fixes = suggestFits(facts.shape, plan, machine.usableBytes * CLOSE, opts)
    .slice(0, 4)
    .map((s) => `${s.change} → ${gib(s.estimate.peakBytes)}`);
  const fix = fixes.length > 0 ? `Changes that fit: ${fixes.join("; ")}.` : "No single change fits: use a smaller model.";
  const level = share > 1 ? "error" : "warn";
  const message = share > 1 ? `${what}: it will not fit.` : `${what}: it is close (${Math.round(share * 100)}%).`;
  return { machine, estimate, verdicts: [{ level, code: share > 1 ? "memory.exceeds" : "memory.close", message, fix }] };
}
