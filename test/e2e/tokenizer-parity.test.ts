// Tokenizer parity is judged on the training texts first (stages/lib/llama/tokenizer-parity.ts): for real tokenizer
// families with the tokenizer_class their hub repositories declare, the gguf guard's verdict before training;
// and the demo's SmolLM2 declaring GPT2Tokenizer (as its hub repository does) trains and exports.
import { beforeAll, describe, expect, it } from "vitest";
import { pipelineYaml, Project, sample, type RunResult } from "../helpers/project.ts";
import { demoModelFolder, editedModel, tinyModelFolder } from "../helpers/tiny-model.ts";

type Family = "llama" | "qwen3" | "gemma3" | "smollm2";

function verdict(result: RunResult, code: string) {
  const found = (result.json.verdicts ?? []).find((v) => v.code === code) as { level: string; message: string; fix?: string } | undefined;
  expect(found, `${code} in ${JSON.stringify(result.json.verdicts)}\n${result.stderr.slice(-2000)}`).toBeDefined();
  return found!;
}

const declaring = (base: string, tokenizerClass: string) =>
  editedModel(base, {
    "tokenizer_config.json": (c) => {
      c.tokenizer_class = tokenizerClass;
    },
  });

/** A question and answer with " ½", which SmolLM2's Digits pre-tokenizer splits from the space and GPT-2's does not. */
const HALF = JSON.stringify({
  messages: [
    { role: "user", content: "What is ½ of 10 kg in g?" },
    { role: "assistant", content: "½ of 10 kg = 5000 g." },
  ],
});

/** GPT2Tokenizer makes transformers 5 build GPT-2's pre-tokenizer, which parts from SmolLM2's on these (and ASCII digits not). */
const NUMERIC = ['"½"', '"²"', '"³"', '"٣"', '"٤"'];

describe("tokenizer parity per tokenizer family and declared tokenizer_class", () => {
  const bases = {} as Record<Family, string>;
  let smolGpt2: string;

  beforeAll(async () => {
    [bases.llama, bases.qwen3, bases.gemma3, bases.smollm2] = await Promise.all([tinyModelFolder("llama"), tinyModelFolder("qwen3"), tinyModelFolder("gemma3"), demoModelFolder()]);
    smolGpt2 = declaring(bases.smollm2, "GPT2Tokenizer");
  }, 1_200_000);

  // Each family as its hub repository declares it, and SmolLM2 with the LlamaTokenizer transformers writes when it
  // rebuilds a tokenizer from a GGUF: transformers and llama.cpp agree on the data and on every probe.
  it.each([
    ["llama", "PreTrainedTokenizerFast"],
    ["qwen3", "Qwen2Tokenizer"],
    ["gemma3", "GemmaTokenizer"],
    ["smollm2", "LlamaTokenizer"],
  ] as const)("%s declaring %s passes", async (family, tokenizerClass) => {
    const result = await new Project(pipelineYaml({ model: declaring(bases[family], tokenizerClass) })).run(["check", "gguf", "--json"]);
    expect(verdict(result, "export.vocab").level).toBe("ok");
    const v = verdict(result, "export.tokenizer-parity");
    expect(v.level).toBe("ok");
    expect(v.message).toMatch(/and the 40 data examples exactly like the Hugging Face tokenizer/);
  });

  it("smollm2 declaring GPT2Tokenizer warns: the data tokenizes alike, the characters it parts on are named with the cause and the fix", async () => {
    const result = await new Project(pipelineYaml({ model: smolGpt2 })).run(["check", "gguf", "--json"]);
    expect(result.code, result.stderr).toBe(0);
    const v = verdict(result, "export.tokenizer-parity");
    expect(v.level).toBe("warn");
    expect(v.message).toMatch(/tokenizes the 40 data examples like the Hugging Face tokenizer/);
    expect(v.message).toContain(`not ${NUMERIC.join(" ")}, which no example contains`);
    expect(v.message).toMatch(/declares "tokenizer_class": "GPT2Tokenizer"; transformers 5\.\d+\.\d+ builds a GPT2Tokenizer with its pre_tokenizer ByteLevel\(.*\) in place of tokenizer\.json's Sequence\[Digits\(individual_digits\), ByteLevel/);
    expect(v.fix).toMatch(/"tokenizer_class": "PreTrainedTokenizerFast" in tokenizer_config\.json/);
  });

  it("training data containing ½ is refused before training, naming the data line and both id lists", async () => {
    const p = new Project(pipelineYaml({ model: smolGpt2 }), { "data/train.jsonl": sample(40) + HALF + "\n" });
    const result = await p.build("gguf");
    expect(result.code).toBe(1);
    expect(result.json.nodes).toEqual([]); // nothing ran, let alone trained
    expect(p.exists("models/adapters")).toBe(false);
    const v = verdict(result, "export.tokenizer-parity");
    expect(v.level).toBe("error");
    expect(v.message).toMatch(/First differing data example: data\/train\.jsonl:41 .*What is ½ of 10 kg/);
    const [hf, llama] = [/Hugging Face: \[([\d, ]+)\]/, /llama\.cpp: +\[([\d, ]+)\]/].map((re) => re.exec(v.message)?.[1]);
    expect(hf).toBeDefined();
    expect(llama).toBeDefined();
    expect(hf).not.toBe(llama);
    expect(v.message).toMatch(/"tokenizer_class": "GPT2Tokenizer"/);
    expect(v.fix).toMatch(/PreTrainedTokenizerFast/);
  });

  it("smollm2 declaring GPT2Tokenizer builds with the warning, trains, and the GGUF answers the test split like the fused model", async () => {
    const p = new Project(
      pipelineYaml({
        model: smolGpt2,
        data: { valid_fraction: 0.1, test_fraction: 0.1 },
        // Validation only before the first and after the last step: the answers are what is tested here.
        lora: { num_layers: 4, steps_per_eval: 100 },
        eval: { max_examples: 8, max_tokens: 16 },
      }),
      { "data/train.jsonl": sample(80) },
    );
    const result = await p.mustBuild("eval");
    expect(result.statuses).toMatchObject({ adapters: "ran", gguf: "ran", eval: "ran" });
    expect(result.stderr).toMatch(/gguf +WARN +llama\.cpp tokenizes the 80 data examples .* but not "½"/);
    // The gguf node's own check on the converted file says the same.
    const report = p.readJson<{ checks: { level: string; code: string; message: string }[] }>("models/gguf/gguf.json");
    expect(report.checks.find((c) => c.code === "export.tokenizer-parity")).toMatchObject({ level: "warn", message: expect.stringContaining(NUMERIC.join(" ")) });
    const evaluated = p.readJson<{ examples: number; gguf: { agreesWithFused: number } }>("models/eval/eval.json");
    expect(evaluated.examples).toBe(8);
    expect(evaluated.gguf.agreesWithFused).toBe(evaluated.examples);
  }, 1_800_000);
});
