// Prints the memory estimates for the shared real-model configs on a 16 GB Mac, so the model
// can be eyeballed against experience: `npx tsx guard/print-estimates.ts [configs-folder]`.

import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { readModelShape } from "./model-shape.ts";
import { countParameters } from "./parameters.ts";
import { parseMemorySize } from "../config/memory-size.ts";
import { estimateTrainingMemory, suggestFits, type TrainingPlan, usableMemory } from "./memory.ts";

const folder = process.argv[2] ?? join(import.meta.dirname, "../test/fixtures/model-configs");
const plan: TrainingPlan = { batchSize: 1, maxSeqLength: 1024, rank: 8, numLayers: 12, gradCheckpoint: false };
const usable = usableMemory({ os: "macos", totalBytes: parseMemorySize("16GB") });
const gib = (bytes: number): string => (bytes / 2 ** 30).toFixed(2);

console.log(
  `plan: batch ${plan.batchSize}, max_seq_length ${plan.maxSeqLength}, rank ${plan.rank}, ` +
    `${plan.numLayers} trained layers, no grad checkpointing; 16 GB macOS → ${gib(usable)} GiB usable. Sizes in GiB.\n`,
);
const header = ["config", "params B", "weights", "lora+grad+adam", "activ.", "logits", "overh.", "peak", "verdict"];
const rows: string[][] = [header];
const advice: string[] = [];
for (const file of readdirSync(folder).filter((f) => f.endsWith(".json")).sort()) {
  const shape = readModelShape(JSON.parse(readFileSync(join(folder, file), "utf8")), file);
  const params = countParameters(shape);
  const { breakdown: b, peakBytes } = estimateTrainingMemory(shape, plan);
  const fits = peakBytes <= usable;
  rows.push([
    file.replace(/\.json$/, ""),
    (params.total / 1e9).toFixed(2) + (shape.moe ? ` (${(params.active / 1e9).toFixed(2)} active)` : ""),
    gib(b.weights),
    gib(b.lora + b.loraGradients + b.optimizer),
    gib(b.activations),
    gib(b.logits),
    gib(b.overhead),
    gib(peakBytes),
    fits ? "fits" : "too big",
  ]);
  if (!fits) {
    const first = suggestFits(shape, plan, usable)[0];
    advice.push(`${file}: ${first ? `${first.change} → ${gib(first.estimate.peakBytes)} GiB` : "nothing fits"}`);
  }
}
const widths = header.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? "").length)));
for (const row of rows) console.log(row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join("  "));
if (advice.length > 0) console.log(`\nmildest change that fits:\n${advice.join("\n")}`);
