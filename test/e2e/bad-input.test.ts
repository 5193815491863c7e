// Bad training data stops the build in the guards, before anything runs: exit 1, a message naming the file and
// line, and no node built. No training here, so these are fast.
import { describe, expect, it } from "vitest";
import { pipelineYaml, Project, sample, SAMPLE_LINES } from "../helpers/project.ts";

const user = (content: string) => ({ role: "user", content });
const assistant = (content: string) => ({ role: "assistant", content });
const line = (messages: object[]) => JSON.stringify({ messages });

/** 40 good lines with line `n` (1-based) replaced. */
function withLine(n: number, text: string): string {
  const lines = SAMPLE_LINES.slice(0, 40);
  lines[n - 1] = text;
  return lines.join("\n") + "\n";
}

interface Case {
  what: string;
  config?: string;
  files: Record<string, string>;
  message: RegExp;
}

const cases: Case[] = [
  {
    what: "a malformed JSON line",
    files: { "data/train.jsonl": withLine(3, '{"messages": [{"role": "user", "content": "hi"}') },
    message: /data\/train\.jsonl:3: not valid JSON/,
  },
  {
    what: "a wrong role",
    files: { "data/train.jsonl": withLine(3, line([user("2 km in m?"), { role: "asistant", content: "2000 m." }])) },
    message: /data\/train\.jsonl:3: role "asistant" is not one of system, user, assistant, tool/,
  },
  {
    what: "empty content",
    files: { "data/train.jsonl": withLine(5, line([user("2 km in m?"), assistant("   ")])) },
    message: /data\/train\.jsonl:5: messages\[1\] \(assistant\) has empty content/,
  },
  {
    what: "an empty file",
    files: { "data/train.jsonl": sample(40), "data/extra.jsonl": "" },
    message: /data\/extra\.jsonl: the file holds no examples/,
  },
  {
    what: "too few examples for the batch size",
    files: { "data/train.jsonl": sample(12) },
    message: /lora\.batch_size=2.*valid has 1/,
  },
  {
    what: "mixed formats",
    files: { "data/train.jsonl": withLine(7, JSON.stringify({ prompt: "2 km in m?", completion: "2000 m." })) },
    message: /data\/train\.jsonl:7: this line is in completions form but data\/train\.jsonl:1 is in messages form/,
  },
  {
    what: "a chat template that raises (a tool turn for Gemma 3)",
    config: pipelineYaml({ model: "tiny:gemma3" }),
    files: {
      "data/train.jsonl": withLine(
        4,
        line([user("What is 2 km in m?"), assistant("Let me check."), { role: "tool", content: "2000" }, user("So?"), assistant("2000 m.")]),
      ),
    },
    message: /data\/train\.jsonl:4: the chat template raised: .+/,
  },
];

describe.concurrent("bad training data stops the build before anything runs", () => {
  for (const c of cases) {
    it(`${c.what}: exit 1, file and line named, nothing built`, async () => {
      const p = new Project(c.config ?? pipelineYaml(), c.files);
      const result = await p.build("gguf");
      expect(result.code, result.stderr).toBe(1);
      expect(result.stderr).toMatch(c.message);
      expect(result.stderr).toMatch(/Stopped before running anything/);
      expect(result.json.ok).toBe(false);
      expect(result.json.nodes.filter((n) => n.status === "ran")).toEqual([]);
      expect(result.json.verdicts?.some((v) => v.level === "error" && c.message.test(v.message))).toBe(true);
      for (const node of ["mlx-env", "model", "data", "formatted", "adapters"]) expect(p.exists(`models/${node}`), node).toBe(false);
      expect(p.exists("pipeline.lock")).toBe(false);
    });
  }
});
