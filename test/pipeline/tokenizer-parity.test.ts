// The tokenizer parity verdicts (stages/lib/tokenizer-parity.ts) on scripted tokenizers: the two processes the
// check starts (hf_tokens.py in the training environment, the llama.cpp worker) are answered here by character
// codes, so each verdict is reached on purpose: all agree, a probe character only, a training example holding
// it, a training example alone, special tokens, the class that replaced tokenizer.json's parts, and a side that
// fails. The real tokenizers and llama.cpp are run by test/e2e/tokenizer-parity.test.ts and export-guard.test.ts.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { ExecResult } from "../../engine/types.ts";
import { UserError } from "../../engine/types.ts";
import { LlamaCrash, type Exec, type LlamaAnswer } from "../../stages/lib/llama/child.ts";
import { checkTokenizer, HF_TOKENS_SCRIPT, hfSide, MAX_CHECKED_CHARS, MAX_CHECKED_TEXTS, sampleTexts, type DataText, type HfTokens } from "../../stages/lib/llama/tokenizer-parity.ts";

const PYTHON = "/envs/mlx/bin/python";
const BOS = 1;
const EOS = 2;
const TEMPLATE = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}";

type Tokenize = (text: string) => number[];
const codes: Tokenize = (text) => [...text].map((c) => c.codePointAt(0)!);
/** A tokenizer that gives `char` another id than the Hugging Face side does. */
const partingOn =
  (char: string): Tokenize =>
  (text) =>
    [...text].map((c) => (c === char ? 99_999 : c.codePointAt(0)!));

interface Script {
  hf?: Tokenize;
  llama?: Tokenize;
  /** Overrides of the Hugging Face answer (file: what tokenizer.json alone gives, ...). */
  hfAnswer?: (texts: string[]) => Partial<HfTokens>;
  special?: Partial<LlamaAnswer["special"]>;
  eog?: number[];
  warnings?: string[];
  hfFails?: string;
  llamaDies?: boolean;
}

const ok = (tail: string[] = []): ExecResult => ({ exitCode: 0, signal: null, logPath: "/project/cache/logs/gguf.log", tail });

/** Plays hf_tokens.py and the llama.cpp worker: reads their request file, writes their answer file. */
function scripted(script: Script): { exec: Exec; requests: { command: string; args: readonly string[] }[] } {
  const requests: { command: string; args: readonly string[] }[] = [];
  const exec: Exec = async (command, args, options) => {
    requests.push({ command, args });
    if (command === PYTHON) {
      const [, , request, answer] = args;
      if (script.hfFails) return { ...ok(["Traceback ...", script.hfFails]), exitCode: 3 };
      const { texts, with_specials } = JSON.parse(readFileSync(request!, "utf8")) as { texts: string[]; with_specials: string };
      const hf = script.hf ?? codes;
      const body: HfTokens = { tokenized: texts.map(hf), with_specials: [BOS, ...hf(with_specials)], bos: BOS, eos: EOS, eos_ids: [EOS], file: null, ...script.hfAnswer?.(texts) };
      writeFileSync(answer!, JSON.stringify(body));
      return ok();
    }
    if (script.llamaDies) return { ...ok(["terminate called after throwing an instance of 'std::out_of_range'"]), exitCode: null, signal: "SIGABRT" };
    const [request, answer] = args.slice(-2);
    const { tokenize } = JSON.parse(readFileSync(request!, "utf8")) as { tokenize: string[] };
    for (const w of script.warnings ?? []) options?.onLine?.(`[llama.cpp warn] ${w}`);
    const body: LlamaAnswer = { special: { bos: BOS, eos: EOS, eot: null, addBos: true, ...script.special }, tokenized: tokenize.map(script.llama ?? codes), eog: script.eog ?? [EOS] };
    writeFileSync(answer!, JSON.stringify(body));
    return ok();
  };
  return { exec, requests };
}

/** A model folder with a chat template (or none: null). */
function model(template: string | null = TEMPLATE): string {
  const dir = mkdtempSync(join(tmpdir(), "parity-model-"));
  writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(template === null ? {} : { chat_template: template }));
  return dir;
}

const data = (...texts: string[]): DataText[] => texts.map((text, i) => ({ origin: `data/train.jsonl:${i + 1}`, text }));

async function verdicts(script: Script, texts?: DataText[], options: { template?: string | null; ggufTemplate?: string | null } = {}) {
  const { exec } = scripted(script);
  const dir = model(options.template);
  const hf = await hfSide(exec, { python: PYTHON, env: {} }, dir, texts && sampleTexts(texts));
  const ggufTemplate = options.ggufTemplate === null ? undefined : (options.ggufTemplate ?? options.template ?? TEMPLATE);
  const { verdicts } = await checkTokenizer(exec, hf, { gguf: "/models/gguf/model.gguf", ggufTemplate });
  return verdicts;
}

describe("tokenizer parity verdicts", () => {
  it("the same ids everywhere: one ok naming what was compared, and the special tokens agree", async () => {
    expect(await verdicts({}, data("1 km = 1000 m.", "2 km = 2000 m."))).toEqual([
      {
        level: "ok",
        code: "export.tokenizer-parity",
        message:
          "llama.cpp tokenizes 6 probe texts (prose, digits, whitespace runs, non-ASCII, chat template, special tokens added (BOS ...)) and the 2 data examples exactly like the Hugging Face tokenizer",
      },
      { level: "ok", code: "export.special-tokens", message: "special tokens agree: bos 1, eos 2, eot none; llama.cpp stops at [2]; chat template identical" },
    ]);
  });

  it("asks each side once, the Hugging Face side in the training environment with hf_tokens.py", async () => {
    const { exec, requests } = scripted({});
    const hf = await hfSide(exec, { python: PYTHON, env: {} }, model(), sampleTexts(data("a")));
    await checkTokenizer(exec, hf, { gguf: "/m.gguf", ggufTemplate: TEMPLATE, vocabOnly: true });
    expect(requests.map((r) => (r.command === PYTHON ? r.args[0] : "llama.cpp worker"))).toEqual([HF_TOKENS_SCRIPT, "llama.cpp worker"]);
  });

  it("a probe character only, which no training example holds: a warning naming it", async () => {
    const [v, ...rest] = await verdicts({ llama: partingOn("½") }, data("1 km = 1000 m."));
    expect(v).toMatchObject({ level: "warn", code: "export.tokenizer-parity" });
    expect(v!.message).toMatch(/^llama\.cpp tokenizes the 1 data examples like the Hugging Face tokenizer the model is trained with, but not "½", which no example contains: text with it would be tokenized differently by the GGUF than in training\. First differing text \(non-ASCII\)/);
    expect(v!.fix).toMatch(/^The GGUF would answer differently/);
    expect(rest.map((r) => r.code)).toEqual(["export.special-tokens"]);
  });

  it("a training example holding that character: an error naming the example, though its own ids agree", async () => {
    // llama.cpp parts only where "½" stands before "½" or "°" (as a pre-tokenizer splits by context): in the
    // non-ASCII probe and the character's own probe, not in the training text, which yet holds the character.
    const inContext: Tokenize = (text) => [...text].map((c, i, all) => (c === "½" && ["½", "°"].includes(all[i + 1] ?? "") ? 99_999 : c.codePointAt(0)!));
    const [v] = await verdicts({ llama: inContext }, data("1 km = 1000 m.", "½ km = 500 m."));
    expect(v).toMatchObject({ level: "error", code: "export.tokenizer-parity" });
    expect(v!.message).toMatch(/They part ways on "½", and data example data\/train\.jsonl:2 contains "½": "½ km = 500 m\."\. First differing text \(non-ASCII\)/);
  });

  it("a training example that differs: an error with its origin and both id lists, before any probe", async () => {
    const [v] = await verdicts({ llama: partingOn("Ω") }, data("1 km = 1000 m.", "5 Ω"));
    expect(v).toMatchObject({ level: "error", code: "export.tokenizer-parity" });
    expect(v!.message).toBe(
      'llama.cpp does not tokenize like the Hugging Face tokenizer the model is trained with. First differing data example: data/train.jsonl:2 "5 Ω"\n' +
        "      Hugging Face: [53, 32, 937]\n      llama.cpp:    [53, 32, 99999]",
    );
  });

  it("without training texts (a rebuilt tokenizer's check) a probe difference is an error", async () => {
    const [v] = await verdicts({ llama: partingOn("½") });
    expect(v).toMatchObject({ level: "error", code: "export.tokenizer-parity" });
    expect(v!.message).toMatch(/First differing text \(non-ASCII\): "Grüße/);
  });

  it("a large data set is compared on a stated sample", async () => {
    const many = Array.from({ length: 2500 }, (_, i) => `${i} m`);
    const [v] = await verdicts({}, data(...many));
    expect(v!.message).toMatch(/and the 2000 data examples \(an evenly spaced sample of 2000 of the 2500 examples\) exactly like/);
  });

  it("llama.cpp adding no BOS where the tokenizer adds one: an error on the special-tokens text", async () => {
    const [v] = await verdicts({ special: { addBos: false } }, data("a"));
    expect(v!.message).toBe(
      'llama.cpp does not tokenize like the Hugging Face tokenizer the model is trained with. First differing text (special tokens added (BOS ...)): "Hello, world!"\n' +
        `      Hugging Face: [1, ${codes("Hello, world!").join(", ")}]\n      llama.cpp:    [${codes("Hello, world!").join(", ")}]`,
    );
  });

  it("special tokens: BOS, EOS, where generation stops, llama.cpp's warnings and the chat template", async () => {
    const got = await verdicts({ special: { bos: 7, eos: 9, eot: 8 }, eog: [], warnings: ["load: special_eos_id is not in special_eog_ids - the tokenizer config may be incorrect"] }, data("a"), {
      ggufTemplate: "{{ messages }}",
    });
    // Another BOS id shows in the text tokenized with special tokens first.
    expect(got.map((v) => [v.level, v.code])).toEqual([
      ["error", "export.tokenizer-parity"],
      ["error", "export.bos"],
      ["error", "export.eos"],
      ["warn", "export.eot"],
      ["error", "export.eog"],
      ["warn", "export.eog-warning"],
      ["error", "export.chat-template"],
    ]);
    const by = Object.fromEntries(got.map((v) => [v.code, v]));
    expect(by["export.bos"]!.message).toBe("The GGUF's BOS is 7, the base model's 1.");
    expect(by["export.eos"]!.message).toBe("The GGUF's EOS is 9, which is none of the base model's end tokens [2].");
    expect(by["export.eog"]!.message).toBe("llama.cpp does not stop generating at [2], where the base model stops (its eos).");
    expect(by["export.eog-warning"]!.message).toBe("llama.cpp warns when loading the GGUF: special_eos_id is not in special_eog_ids - the tokenizer config may be incorrect");
    expect(by["export.chat-template"]!.message).toBe("The GGUF's chat template differs from the base model's.");
  });

  it("a GGUF without the base model's chat template; a base model without one asks nothing of the GGUF", async () => {
    const missing = await verdicts({}, data("a"), { ggufTemplate: null });
    expect(missing.find((v) => v.code === "export.chat-template")?.message).toBe("The GGUF has no chat template, though the base model has one.");
    const none = await verdicts({}, data("a"), { template: null, ggufTemplate: "{{ anything }}" });
    expect(none.map((v) => v.code)).toEqual(["export.tokenizer-parity", "export.special-tokens"]);
    expect(none[0]!.message).toMatch(/^llama\.cpp tokenizes 5 probe texts \(prose, digits, whitespace runs, non-ASCII, special tokens added/);
    expect(none[1]!.message).not.toMatch(/chat template/);
  });

  it("when tokenizer.json alone gives llama.cpp's ids, the declared tokenizer class is named as the cause, with the fix", async () => {
    const [v] = await verdicts(
      {
        hf: partingOn("Ω"),
        hfAnswer: (texts) => ({
          file: {
            tokenized: texts.map(codes),
            declared_class: "LlamaTokenizerFast",
            built_class: "LlamaTokenizerFast",
            transformers: "4.57.1",
            replaced: { pre_tokenizer: { file: { type: "ByteLevel", add_prefix_space: false }, built: { type: "Metaspace", prepend_scheme: "first", split: true } } },
          },
        }),
      },
      data("5 Ω"),
    );
    expect(v).toMatchObject({ level: "error", code: "export.tokenizer-parity" });
    expect(v!.message).toMatch(
      /Cause: tokenizer_config\.json declares "tokenizer_class": "LlamaTokenizerFast"; transformers 4\.57\.1 builds a LlamaTokenizerFast with its pre_tokenizer Metaspace\(split\) in place of tokenizer\.json's ByteLevel, while llama\.cpp's converter reads tokenizer\.json as it is/,
    );
    expect(v!.fix).toMatch(/^In a copy of the model folder set "tokenizer_class": "PreTrainedTokenizerFast"/);
  });

  it("the Hugging Face side failing is an error with its last words and the log", async () => {
    const { exec } = scripted({ hfFails: '{"error": "OSError: no tokenizer files"}' });
    const dir = model();
    const error = await hfSide(exec, { python: PYTHON, env: {} }, dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UserError);
    expect((error as Error).message).toBe(`The Hugging Face tokenizer of ${dir} could not tokenize: {"error": "OSError: no tokenizer files"} (log: /project/cache/logs/gguf.log)`);
  });

  it("llama.cpp dying while it reads the GGUF is a LlamaCrash naming the file and its last lines", async () => {
    const { exec } = scripted({ llamaDies: true });
    const hf = await hfSide(scripted({}).exec, { python: PYTHON, env: {} }, model());
    const error = await checkTokenizer(exec, hf, { gguf: "/models/gguf/model.gguf", ggufTemplate: TEMPLATE, vocabOnly: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LlamaCrash);
    expect((error as Error).message).toMatch(/^llama\.cpp crashed \(SIGABRT: llama\.cpp aborted\) while loading \/models\/gguf\/model\.gguf \(vocabulary only\)\. Last lines of \/project\/cache\/logs\/gguf\.log:\n {4}terminate called/);
  });
});

// Which training texts are tokenized on both sides: all of a small set, an evenly spaced sample of a large one
// (by count and by characters), always starting at the first example.
const many = (n: number, length = 20) => Array.from({ length: n }, (_, i) => ({ origin: `data/train.jsonl:${i + 1}`, text: "x".repeat(length) }));

describe("the training texts tokenized for parity", () => {
  it("a small set is checked whole", () => {
    const all = many(500);
    expect(sampleTexts(all).checked).toBe(all);
  });

  it("a set of many examples: an evenly spaced sample of MAX_CHECKED_TEXTS, from the first to near the last", () => {
    const all = many(MAX_CHECKED_TEXTS * 3);
    const { checked } = sampleTexts(all);
    expect(checked).toHaveLength(MAX_CHECKED_TEXTS);
    expect(checked[0]!.origin).toBe("data/train.jsonl:1");
    expect(checked[1]!.origin).toBe("data/train.jsonl:4");
    expect(checked.at(-1)!.origin).toBe(`data/train.jsonl:${MAX_CHECKED_TEXTS * 3 - 2}`);
  });

  it("a set of long examples: a sample within MAX_CHECKED_CHARS characters", () => {
    const all = many(1000, 20_000); // 20 M characters
    const { checked } = sampleTexts(all);
    expect(checked.length).toBe(Math.floor((1000 * MAX_CHECKED_CHARS) / 20_000_000));
    expect(checked.reduce((sum, t) => sum + t.text.length, 0)).toBeLessThanOrEqual(MAX_CHECKED_CHARS);
  });
});
