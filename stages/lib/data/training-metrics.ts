// The adapters node's record of a training: metrics.jsonl (mlx-lm's reports, one JSON line each) and
// memory.json. Written by stages/adapters.ts, read back by it for the end-of-training sparkline and by the report.

export const METRICS_FILE = "metrics.jsonl";
export const MEMORY_FILE = "memory.json";

/** mlx-lm's training report, as the shim prints it and metrics.jsonl keeps it. */
export interface TrainReport {
  type: "train";
  rank?: number;
  iteration: number;
  train_loss: number | null;
  learning_rate: number;
  tokens_per_second: number;
  iterations_per_second: number;
  trained_tokens?: number;
  peak_memory: number;
}

/** mlx-lm's validation report. */
export interface ValReport {
  type: "val";
  rank?: number;
  iteration: number;
  val_loss: number | null;
}

export type Report = TrainReport | ValReport;

export interface TrainPoint {
  readonly iteration: number;
  readonly loss: number;
  readonly learningRate: number;
  readonly tokensPerSecond: number;
  readonly trainedTokens: number;
  readonly peakMemoryGB: number;
}

export interface ValPoint {
  readonly iteration: number;
  readonly loss: number;
}

export interface Metrics {
  readonly train: readonly TrainPoint[];
  readonly val: readonly ValPoint[];
}

/** memory.json: the measured peak beside the guard's estimate and the machine limit it planned against. */
export interface MemoryFile {
  readonly measuredPeakGB: number | null;
  readonly estimatedPeakGB: number | null;
  /** Absent in outputs built before the report existed. */
  readonly usableGB?: number | null;
  readonly breakdown?: unknown;
}

/** metrics.jsonl's reports in order; a missing number is NaN, a line torn by an interrupted run is left out. */
export function parseMetrics(text: string): Metrics {
  const train: TrainPoint[] = [];
  const val: ValPoint[] = [];
  for (const line of text.split("\n")) {
    let m: Record<string, unknown>;
    try {
      m = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    const n = (k: string) => (typeof m[k] === "number" ? (m[k] as number) : NaN);
    if (m.type === "train") {
      train.push({ iteration: n("iteration"), loss: n("train_loss"), learningRate: n("learning_rate"), tokensPerSecond: n("tokens_per_second"), trainedTokens: n("trained_tokens"), peakMemoryGB: n("peak_memory") });
    } else if (m.type === "val") {
      val.push({ iteration: n("iteration"), loss: n("val_loss") });
    }
  }
  return { train, val };
}
