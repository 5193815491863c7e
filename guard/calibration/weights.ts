// Weight bytes from the config alone (modelWeightBytes) vs the safetensors headers of the built
// random-weight models, bf16 and 4-bit: checks the quantization arithmetic at real scale.
//   npx tsx guard/calibration/weights.ts [MODEL_DIR ...]
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { modelWeightBytes } from "../memory.ts";
import { readModelShape } from "../model-shape.ts";
import { readWeightBytes } from "../safetensors.ts";

const dirs = process.argv.slice(2);
console.log("| model | config-based GB | safetensors GB | ratio |\n|---|--:|--:|--:|");
for (const dir of dirs) {
  const shape = readModelShape(JSON.parse(readFileSync(join(dir, "config.json"), "utf8")), dir);
  const measured = (await readWeightBytes(dir))?.bytes ?? NaN;
  const fromConfig = modelWeightBytes(shape);
  console.log(`| ${dir.split("/").pop()} | ${(fromConfig / 1e9).toFixed(3)} | ${(measured / 1e9).toFixed(3)} | ${(fromConfig / measured).toFixed(4)} |`);
}
