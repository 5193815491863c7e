// A hub id that cannot be fetched (no network here; a missing repo elsewhere) fails the model node with a
// message naming the id and what to do, and nothing after it runs.
import { describe, expect, it } from "vitest";
import { pipelineYaml, Project, sample } from "../helpers/project.ts";

describe("model: a hub id", () => {
  it("that cannot be fetched names the id and what to do, exit 1", async () => {
    const id = "mlx-pipeline-tests/no-such-model-4bit";
    const p = new Project(pipelineYaml({ model: id }), { "data/train.jsonl": sample(40) });
    const r = await p.build("adapters");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`fetching ${id} failed`);
    expect(r.stderr).toMatch(/could not be reached .* not in the local cache; connect and build again, or download it elsewhere and set model: to the folder|does not exist on the Hugging Face hub/);
    expect(r.statuses.model).toBe("failed");
    expect(r.statuses.adapters).toBe("skipped");
    expect(p.exists("models/model")).toBe(false);
  });
});
