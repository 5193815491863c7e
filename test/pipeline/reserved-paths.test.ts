// Paths in pipeline.yaml that point into models/ or cache/ are config errors, said before anything runs.
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { collect, spawnCli } from "../helpers/cli.ts";
import { PIPELINE, pipelineYaml, sample } from "../helpers/project.ts";

function project(yaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), "reserved-"));
  mkdirSync(join(dir, "data"));
  writeFileSync(join(dir, "data", "train.jsonl"), sample(40));
  writeFileSync(join(dir, "pipeline.yaml"), yaml);
  return dir;
}

describe.concurrent("paths inside models/ or cache/", () => {
  it("a previous output as the base model, data under cache/ and a glob reaching into models/ are exit-2 config errors naming each key", async () => {
    const dir = project(pipelineYaml({ model: "./models/hf", data: { files: ["data/*.jsonl", "cache/extra.jsonl", "**/*.jsonl"] } }));
    const r = await collect(spawnCli(PIPELINE, ["status", "data"], { cwd: dir, env: { ...process.env, CI: "true" } }));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${join(dir, "pipeline.yaml")} names paths inside the tool's own folders`);
    expect(r.stderr).toContain("model: ./models/hf is inside models/");
    expect(r.stderr).toContain("data.files[1]: cache/extra.jsonl is inside cache/");
    expect(r.stderr).toContain("data.files[2]: **/*.jsonl reaches into models/");
    expect(r.stderr).not.toContain("data.files[0]");
    expect(r.stderr).toContain("cp -rL models/hf ./my-model");
  });

  it("paths beside them are fine", async () => {
    const dir = project(pipelineYaml({ data: { files: ["data/**/*.jsonl"] } }));
    const r = await collect(spawnCli(PIPELINE, ["status", "data"], { cwd: dir, env: { ...process.env, CI: "true" } }));
    expect(r.code, r.stderr).toBe(0);
  });
});
