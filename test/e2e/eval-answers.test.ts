// eval's answering script (stages/py/eval_answers.py) on a tiny model: the prompts decoded together give the
// tokens that one prompt at a time gives, and a model whose cache mlx-lm cannot batch is still answered.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { pyScript } from "../../stages/lib/toolchain/tools.ts";
import { pipelineYaml, Project } from "../helpers/project.ts";

type Answers = { text: string; tokens: number[]; stop: "eos" | "length" }[];

const PROMPTS = ["1 km in m?", "How many grams are in 3 kg?", "Convert 12 minutes to seconds, please, and show the result.", "5 m =", "A"];

describe("eval's answers", () => {
  let run: (prelude: string) => { answers: Answers; stderr: string };

  beforeAll(async () => {
    const p = new Project(pipelineYaml());
    await p.mustBuild("model");
    const tc = p.toolchain("mlx-env");
    const dir = mkdtempSync(join(tmpdir(), "eval-answers-"));
    writeFileSync(join(dir, "request.json"), JSON.stringify({ prompts: PROMPTS, max_tokens: 8 }));
    run = (prelude) => {
      const out = join(dir, "answers.json");
      // The script run as eval runs it, after `prelude` has changed mlx-lm in the same interpreter.
      const code = `${prelude}\nimport runpy, sys\nsys.argv = sys.argv[1:]\nrunpy.run_path(sys.argv[0], run_name="__main__")`;
      const child = spawnSync(tc.python, ["-c", code, pyScript("eval_answers.py"), p.path("models/model/model"), join(dir, "request.json"), out], {
        env: { ...process.env, ...tc.env, HF_HUB_OFFLINE: "1" },
        encoding: "utf8",
      });
      if (child.status !== 0) throw new Error(`eval_answers.py exited ${child.status}:\n${child.stderr}`);
      return { answers: (JSON.parse(readFileSync(out, "utf8")) as { answers: Answers }).answers, stderr: child.stderr };
    };
  }, 900_000);

  it("decoded together they are the tokens one prompt at a time gives; a cache that cannot batch falls back to that", () => {
    const together = run("");
    // KVCache without merge() is how mlx-lm's caches that cannot batch (ChunkedKVCache, QuantizedKVCache) look.
    const alone = run("import mlx_lm.models.cache as c\ndel c.KVCache.merge");
    expect(together.stderr).not.toMatch(/one prompt at a time/);
    expect(alone.stderr).toMatch(/does not yet support batching with history: answering one prompt at a time/);
    expect(together.answers).toHaveLength(PROMPTS.length);
    expect(alone.answers).toEqual(together.answers);
    for (const a of together.answers) {
      expect(a.tokens.length).toBeLessThanOrEqual(8);
      expect(a.stop === "length").toBe(a.tokens.length === 8);
    }
  });
});
