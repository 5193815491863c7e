// A hub id that cannot be fetched fails the model node with a message naming the id and what to do, and nothing
// after it runs. The hub is made unreachable (an endpoint nothing listens on) and the Hugging Face cache empty,
// so the message is the same with or without a network, and whatever this machine's cache holds.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { pipelineYaml, Project, sample } from "../helpers/project.ts";

describe("model: a hub id", () => {
  it("that cannot be fetched names the id and what to do, exit 1", async () => {
    const id = "mlx-pipeline-tests/no-such-model-4bit";
    const p = new Project(pipelineYaml({ model: id }), { "data/train.jsonl": sample(40) });
    // The model node lifts HF_HUB_OFFLINE to fetch, so offline is spelled as an endpoint that refuses connections.
    p.env = { HF_ENDPOINT: "http://127.0.0.1:9", HF_HOME: mkdtempSync(join(tmpdir(), "empty-hf-home-")), HF_HUB_OFFLINE: undefined };
    const r = await p.build("adapters");
    expect(r.code).toBe(1);
    const reason = r.json.nodes.find((n) => n.id === "model")!.reason;
    expect(reason).toMatch(
      new RegExp(
        `^fetching ${id} failed: the Hugging Face hub could not be reached \\(.*Connection refused\\) and ${id} is not in the local cache; ` +
          `connect and build again, or download it elsewhere and set model: to the folder \\(log: .*cache/logs/model\\.log\\)$`,
      ),
    );
    expect(r.stderr).toContain(`fetching ${id} failed: the Hugging Face hub could not be reached`);
    expect(r.statuses.model).toBe("failed");
    expect(r.statuses.adapters).toBe("skipped");
    expect(p.exists("models/model")).toBe(false);
  });
});
