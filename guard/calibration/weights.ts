// Weight bytes from the config alone (modelWeightBytes) vs the safetensors headers of the built
// random-weight models, bf16 and 4-bit: checks the quantization arithmetic at real scale.
//   npx tsx guard/calibration/weights.ts [MODEL_DIR ...]
import { modelWeightBytes } from "../memory.ts";
import { readModelFacts } from "../verdicts.ts";

const dirs = process.argv.slice(2);
console.log("| model | config-based GB | safetensors GB | ratio |\n|---|--:|--:|--:|");
for (const dir of dirs) {
  const { shape, weightBytes } = await readModelFacts(dir);
  const measured = weightBytes ?? NaN;
  const fromConfig = modelWeightBytes(shape);
  console.log(`| ${dir.split("/").pop()} | ${(fromConfig / 1e9).toFixed(3)} | ${(measured / 1e9).toFixed(3)} | ${(fromConfig / measured).toFixed(4)} |`);
}
