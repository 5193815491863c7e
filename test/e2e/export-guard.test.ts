// The gguf guard asks llama.cpp's converter itself (--vocab-only on the base model) before anything trains,
// and loads the vocabulary-only GGUF in llama.cpp, out of process, for tokenizer parity.
import { randomUUID } from "node:crypto";
import { rmSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { pipelineYaml, Project, type RunResult } from "../helpers/project.ts";
import { editedModel, tinyModelFolder } from "../helpers/tiny-model.ts";

type Tokenizer = { pre_tokenizer: { pretokenizers: { type: string; pattern?: { Regex: string } }[] }; model: Record<string, unknown>; decoder: unknown };

function verdict(result: RunResult, code: string) {
  const found = (result.json.verdicts ?? []).find((v) => v.code === code) as { level: string; message: string; fix?: string } | undefined;
  expect(found, `${code} in ${JSON.stringify(result.json.verdicts)}\n${result.stderr.slice(-2000)}`).toBeDefined();
  return found!;
}

describe("the gguf guard runs llama.cpp's converter on the base model's vocabulary", () => {
  let base: string;

  beforeAll(async () => {
    base = await tinyModelFolder("llama");
  });

  it("a pre-tokenizer the converter does not know stops the build in the guard phase, in the converter's words", async () => {
    const model = editedModel(base, {
      "tokenizer.json": (t) => {
        // Digits in runs of up to 2 instead of Llama 3's 3: a pre-tokenizer no llama.cpp release has a hash for.
        const split = (t as unknown as Tokenizer).pre_tokenizer.pretokenizers[0]!;
        split.pattern!.Regex = split.pattern!.Regex.replace("\\p{N}{1,3}", "\\p{N}{1,2}");
      },
      // The verdict cache outlives test runs (the tool cache is the user's): a tokenizer no earlier run has seen
      // makes this first build run the converter for certain.
      "tokenizer_config.json": (c) => {
        c.test_run = randomUUID();
      },
    });
    const p = new Project(pipelineYaml({ model }));
    const result = await p.build("gguf");
    expect(result.code).toBe(1);
    expect(result.json.nodes).toEqual([]); // nothing ran, let alone trained
    const v = verdict(result, "export.pre-tokenizer");
    expect(v.level).toBe("error");
    expect(v.message).toMatch(/NotImplementedError: BPE pre-tokenizer was not recognized - update get_vocab_base_pre\(\)/);
    expect(v.message).toMatch(/chkhsh [0-9a-f]{64}/);
    expect(v.fix).toMatch(/llama_cpp:/);
    expect(p.exists("models/adapters")).toBe(false);

    // The verdict is cached by the tokenizer files' digests and the converter: a second check runs no converter.
    expect(p.exists("cache/logs/gguf.guard.log")).toBe(true);
    rmSync(p.path("cache/logs/gguf.guard.log"));
    const again = await p.run(["check", "gguf", "--json"]);
    expect(again.code).toBe(1);
    expect(verdict(again, "export.pre-tokenizer").message).toBe(v.message);
    expect(p.exists("cache/logs/gguf.guard.log")).toBe(false);
  });

  // Naming LlamaTokenizer alone makes transformers add tokens past the vocabulary, which the converter asserts
  // against; with the SentencePiece-style tokenizer.json transformers writes back from a GGUF, the converter
  // writes a vocabulary llama.cpp aborts on. Either way the build stops before training, in our words.
  const llamaTokenizer = (c: Record<string, unknown>) => {
    c.tokenizer_class = "LlamaTokenizer";
  };
  const spmStyle = (t: Record<string, unknown>) => {
    const tok = t as unknown as Tokenizer;
    tok.model.byte_fallback = true;
    tok.model.ignore_merges = false;
    tok.decoder = { type: "Sequence", decoders: [tok.decoder] };
  };
  it.each([
    ["tokenizer_class only", { "tokenizer_config.json": llamaTokenizer }, "export.tokenizer-unreadable", /AssertionError: assert max\(tokenizer\.vocab\.values\(\)\) < vocab_size/],
    ["and a SentencePiece-style tokenizer.json", { "tokenizer_config.json": llamaTokenizer, "tokenizer.json": spmStyle }, "export.spm-over-bpe", /tokenizer\.ggml\.model = llama/],
  ])("a LlamaTokenizer over a byte-level BPE (%s) stops before training; llama.cpp never takes the tool down", async (_name, edits, code, said) => {
    const p = new Project(pipelineYaml({ model: editedModel(base, edits) }));
    const result = await p.build("gguf");
    expect(result.code).toBe(1);
    expect(result.json.nodes).toEqual([]);
    const v = verdict(result, code);
    expect(v.level).toBe("error");
    expect(v.message).toMatch(said);
    expect(v.fix).toMatch(/original tokenizer files|unedited copies/);
    expect(result.stderr).not.toMatch(/terminate called/);
  });

  it("an eos_token llama.cpp does not take for an end of turn is llama.cpp's own warning, as a warn verdict with a fix", async () => {
    const model = editedModel(base, {
      "tokenizer_config.json": (c) => {
        c.eos_token = "<|begin_of_text|>"; // eos = bos, as transformers left SmolLM2's tokenizer after a GGUF round trip
      },
    });
    const result = await new Project(pipelineYaml({ model })).run(["check", "gguf", "--json"]);
    const v = verdict(result, "export.eog-warning");
    expect(v.level).toBe("warn");
    expect(v.message).toMatch(/special_eos_id is not in special_eog_ids/);
    expect(v.fix).toMatch(/eos_token in tokenizer_config\.json/);
  });

  it("the unedited model passes: the converter reads it and llama.cpp tokenizes like Hugging Face", async () => {
    const p = new Project(pipelineYaml({ model: base }));
    const result = await p.run(["check", "gguf", "--json"]);
    expect(verdict(result, "export.vocab").message).toMatch(/llama-bpe/);
    expect(verdict(result, "export.tokenizer-parity").level).toBe("ok");
    expect(verdict(result, "export.special-tokens").level).toBe("ok");
  });
});
