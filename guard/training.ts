// The adapters node's guard, one call: what is known before training (the config, the base model's facts,
// mlx-lm's answer about the architecture, the hosts of a distributed run) judged together, so that lora.rank
// goes from the config to the memory verdict in one walk down and back.
import type { PipelineConfig } from "../config/schema.ts";
import type { Verdict } from "../engine/types.ts";
import { judgeCluster, type ClusterFacts } from "./distributed.ts";
import { architectureVerdicts, memoryReport, probeVerdicts, trainingPlan, type MemoryReport, type ModelFacts, type ProbeResult } from "./verdicts.ts";

/** A fact a probe could not gather, and why (the last line of what the tool said). */
export interface Failed {
  readonly failed: string;
}

/** What the installed mlx-lm said about the architecture (stages/lib/model/arch-probe.ts). */
export type ArchAnswer = { readonly probe: ProbeResult; readonly mlxLm: string } | Failed;

/** The base model as the training plan sees it: its facts, the processes sharing the batch, the longest example. */
export interface TrainedModel {
  readonly facts: ModelFacts;
  readonly world: number;
  /** In tokens, once the formatted node has counted them. */
  readonly longestExample?: number;
}

export interface TrainingFacts {
  readonly config: Pick<PipelineConfig, "format" | "lora" | "memory">;
  /** Undefined before the base model is built; failed when its config (or the cluster's) cannot be read. */
  readonly model?: TrainedModel | Failed;
  /** Undefined when there is no mlx environment to ask, or the model cannot be read. */
  readonly arch?: ArchAnswer;
  /** Undefined for one process; failed when `distributed:` names hosts that cannot be read. */
  readonly cluster?: ClusterFacts | Failed;
}

export interface TrainingJudgement {
  readonly verdicts: Verdict[];
  /** The memory estimate on the planned machine (one rank's share of the batch), when the model can be read. */
  readonly memory?: MemoryReport & { readonly facts: ModelFacts };
}

/** mlx-lm refuses prompt masking on pre-rendered text, but only once training has loaded everything. */
function maskVerdicts(config: TrainingFacts["config"]): Verdict[] {
  if (config.format !== "text" || !config.lora.mask_prompt) return [];
  return [
    {
      level: "error",
      code: "format.mask-text",
      message: "lora.mask_prompt is true but format is text: mlx-lm cannot tell prompt from answer in pre-rendered text and refuses it.",
      fix: "Set `format: messages` (recommended), or `lora.mask_prompt: false`.",
    },
  ];
}

function singleHost(facts: TrainingFacts): TrainingJudgement {
  const { config, model, arch } = facts;
  if (!model) return { verdicts: [...maskVerdicts(config), { level: "ok", code: "memory.later", message: "the base model is not built yet: its architecture and memory are checked right before training" }] };
  // The message says what is wrong and what to use instead (a missing config field, num_layers).
  if ("failed" in model) return { verdicts: [{ level: "error", code: "model.config", message: model.failed, fix: "" }] };
  const plan = trainingPlan({ ...config.lora, batch_size: Math.ceil(config.lora.batch_size / model.world) }, model.longestExample);
  const memory = { ...memoryReport(model.facts, plan, config.memory), facts: model.facts };
  const verdicts = [...maskVerdicts(config), ...architectureVerdicts(model.facts), ...memory.verdicts];
  if (arch && "failed" in arch) verdicts.push({ level: "warn", code: "arch.probe-failed", message: `could not ask mlx-lm about this architecture: ${arch.failed}`, fix: "" });
  else if (arch) verdicts.push(...probeVerdicts(arch.probe, model.facts.shape.textModelType, arch.mlxLm));
  return { verdicts, memory };
}

export function judgeTraining(facts: TrainingFacts): TrainingJudgement {
  const single = singleHost(facts);
  const { cluster } = facts;
  if (!cluster) return single;
  if ("failed" in cluster) return { ...single, verdicts: [...single.verdicts, { level: "error", code: "distributed.config", message: cluster.failed, fix: "" }] };
  return { ...single, verdicts: [...single.verdicts, ...judgeCluster(cluster, facts.config.lora.batch_size, single.memory?.estimate.peakBytes)] };
}
