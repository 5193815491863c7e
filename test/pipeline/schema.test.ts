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
    expect(config.model).toBe("tiny:llama");
    expect(config.gguf.outtype).toBe("f16");
    expect(config.lora.fine_tune_type).toBe("lora");
  });
});
