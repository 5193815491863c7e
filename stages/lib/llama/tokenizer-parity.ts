// Tokenizer parity: llama.cpp, reading a GGUF, must tokenize like the Hugging Face tokenizer the model was
// trained with, and stop where it stops. Used by the gguf node on the converted file and by its guard on the
// converter's vocab-only GGUF, before training.
//
// What matters is the text the model trains on: every training text (or a stated sample of a large set) must
// get the same ids on both sides, or the GGUF answers from a model trained on other tokens. The fixed probe
// texts only look for differences the data might meet later: a difference there alone is a warning naming the
// characters, unless the data holds one of them.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Verdict } from "../../../engine/types.ts";
import { UserError } from "../../../engine/types.ts";
import { loadChatTemplate } from "../data/chat-template.ts";
import { askLlamaCpp, type Exec, type LlamaAnswer, type LlamaRequest } from "./child.ts";
import { pyScript, PY_ENV } from "../toolchain/tools.ts";
import { zod } from "../../../engine/packages.ts";

export const HF_TOKENS_SCRIPT = pyScript("hf_tokens.py");

interface ParityText {
  readonly label: string;
  readonly text: string;
}

/** Fixed texts where tokenizers tend to part ways. */
const FIXED_TEXTS: readonly ParityText[] = [
  { label: "prose", text: "The quick brown fox jumps over the lazy dog. It's 5 o'clock; isn't it time for tea?" },
  { label: "digits", text: "1 12 123 1234 12345 3.14159 2026-11-28 1,000,000 0x1F" },
  { label: "whitespace runs", text: "  two leading\n\n\ttab\t\tand   three    four\n   \n  trailing  " },
  { label: "non-ASCII", text: "Grüße aus Köln — naïve café, 東京タワー, Здравствуйте, مرحبا, 🦙🚀✅ ½°C ²³ ٣٤" },
];
const WITH_SPECIALS = "Hello, world!";

/**
 * One probe per character of the fixed texts, to name the characters a difference comes from: repeated and
 * after a space, where pre-tokenizers split differently (GPT-2's regex keeps " ½½" whole, a Digits step does not).
 */
const CHARACTERS = [...new Set([...FIXED_TEXTS.map((t) => t.text).join("")].filter((c) => c.trim() !== ""))];
const characterProbe = (c: string) => `${c}${c}${c}${c} ${c} x${c}`;

/** A text the model trains on, with where it comes from. */
export interface DataText {
  /** "data/train.jsonl:57" */
  readonly origin: string;
  readonly text: string;
}

/** The training texts the check tokenizes on both sides, and all of them (searched for the characters probes name). */
export interface TrainingTexts {
  readonly checked: readonly DataText[];
  readonly all: readonly DataText[];
}

/**
 * Beyond this many examples, or this many characters, an evenly spaced sample is tokenized (stated in the
 * verdict): both tokenizers' answers stay in the megabytes. Every example is still searched for the characters
 * the probes name.
 */
export const MAX_CHECKED_TEXTS = 2000;
export const MAX_CHECKED_CHARS = 4_000_000;

export function sampleTexts(all: readonly DataText[]): TrainingTexts {
  const chars = all.reduce((sum, t) => sum + t.text.length, 0);
  const n = Math.max(1, Math.min(MAX_CHECKED_TEXTS, Math.floor((all.length * MAX_CHECKED_CHARS) / Math.max(chars, 1))));
  if (all.length <= n) return { checked: all, all };
  const step = all.length / n;
  return { checked: Array.from({ length: n }, (_, i) => all[Math.floor(i * step)]!), all };
}

/** The answer of hf_tokens.py; read with zod, since it carries what a model's tokenizer files made of our texts. */
const hfAnswer = (z: typeof import("zod").z) => {
  const ids = z.array(z.number().int());
  const part = z.unknown();
  return z.object({
    tokenized: z.array(ids),
    with_specials: ids,
    bos: z.number().int().nullable(),
    eos: z.number().int().nullable(),
    eos_ids: ids,
    file: z.union([
      z.null(),
      z.object({ error: z.string() }),
      z.object({
        tokenized: z.array(ids),
        declared_class: z.string().nullable(),
        built_class: z.string(),
        transformers: z.string(),
        replaced: z.record(z.string(), z.object({ file: part, built: part })),
      }),
    ]),
  });
};
export type HfTokens = import("zod").z.output<ReturnType<typeof hfAnswer>>;

/** Where the Hugging Face side runs: the Python environment the model was trained with (mlx-env). */
export interface HfPython {
  readonly python: string;
  readonly env: Readonly<Record<string, string>>;
}

/** The fixed texts plus a conversation rendered with the model's own chat template (its special tokens). */
async function parityTexts(modelDir: string): Promise<{ texts: ParityText[]; template: string | undefined }> {
  const template = await loadChatTemplate(modelDir);
  if (!template) return { texts: [...FIXED_TEXTS], template: undefined };
  const conversation = [
    { role: "user", content: "What is 2 + 2?" },
    { role: "assistant", content: "4." },
    { role: "user", content: "And in words?" },
  ];
  const text = template.render(conversation, { addGenerationPrompt: true });
  return { texts: [...FIXED_TEXTS, { label: "chat template", text }], template: template.text };
}

async function hfTokens(exec: Exec, hf: HfPython, modelDir: string, texts: readonly string[]): Promise<HfTokens> {
  const dir = await mkdtemp(join(tmpdir(), "hf-tokens-"));
  try {
    await writeFile(join(dir, "request.json"), JSON.stringify({ texts, with_specials: WITH_SPECIALS }));
    const result = await exec(hf.python, [HF_TOKENS_SCRIPT, modelDir, join(dir, "request.json"), join(dir, "answer.json")], {
      env: { ...PY_ENV, ...hf.env },
      timeoutMs: 300_000,
    });
    const answer = result.exitCode === 0 ? await readFile(join(dir, "answer.json"), "utf8").catch(() => undefined) : undefined;
    if (answer === undefined) {
      const said = [...result.tail].reverse().find((l) => l.startsWith('{"error"')) ?? result.tail.at(-1) ?? "";
      throw new UserError(`The Hugging Face tokenizer of ${modelDir} could not tokenize: ${said} (log: ${result.logPath})`);
    }
    const { z } = zod();
    return hfAnswer(z).parse(JSON.parse(answer));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const show = (ids: readonly number[]) => `[${ids.join(", ")}]`;
const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((id, i) => id === b[i]);

/** A long training text around `from` (where a differing character is, when one is known). */
function excerpt(text: string, from = 0): string {
  if (text.length <= 160) return JSON.stringify(text);
  const start = Math.max(0, Math.min(from - 60, text.length - 160));
  return `${start > 0 ? "…" : ""}${JSON.stringify(text.slice(start, start + 160))}${start + 160 < text.length ? "…" : ""}`;
}

/** Both id lists; a long pair from a little before the first id where they part. */
function idLists(hf: readonly number[], llama: readonly number[]): string {
  const part = hf.findIndex((id, i) => id !== llama[i]);
  const from = hf.length + llama.length > 240 ? Math.max(0, (part < 0 ? Math.min(hf.length, llama.length) : part) - 8) : 0;
  const list = (ids: readonly number[]) => (from > 0 ? `[… ${ids.slice(from, from + 60).join(", ")}${ids.length > from + 60 ? ", …" : ""}]` : show(ids));
  return `${from > 0 ? `      (from token ${from}; ${hf.length} and ${llama.length} tokens)\n` : ""}      Hugging Face: ${list(hf)}\n      llama.cpp:    ${list(llama)}`;
}

/** A tokenizer.json part (normalizer, pre_tokenizer) in a few words: "Sequence[Digits(individual_digits), ByteLevel]". */
function describePart(part: unknown): string {
  if (!part || typeof part !== "object") return "none";
  const p = part as Record<string, unknown>;
  const type = typeof p.type === "string" ? p.type : "?";
  const children = [p.pretokenizers, p.normalizers].find(Array.isArray) as unknown[] | undefined;
  if (children) return `${type}[${children.map(describePart).join(", ")}]`;
  const flags = Object.entries(p)
    .filter(([k, v]) => k !== "type" && v === true)
    .map(([k]) => k);
  const pattern = p.pattern && typeof p.pattern === "object" ? Object.values(p.pattern as Record<string, unknown>).find((v) => typeof v === "string") : undefined;
  const shown = [...(typeof pattern === "string" ? [JSON.stringify(pattern.length > 40 ? `${pattern.slice(0, 40)}…` : pattern)] : []), ...flags];
  return shown.length > 0 ? `${type}(${shown.join(", ")})` : type;
}

/**
 * Why transformers and llama.cpp differ on a text, when the folder's own tokenizer.json (read by `tokenizers`,
 * as llama.cpp's converter reads it) agrees with llama.cpp: the tokenizer class transformers built replaced
 * part of that file. Undefined when that is not the cause.
 * The tool names the fix rather than training on tokenizer.json behind the declared class: the exported hf
 * folder carries the user's tokenizer_config.json, so transformers would load it unlike the training, and a
 * user's folder is never edited in place.
 */
function classCause(hf: HfTokens, index: number, llamaIds: readonly number[]): { message: string; fix: string } | undefined {
  const file = hf.file;
  if (!file || "error" in file) return undefined;
  const fileIds = file.tokenized[index];
  if (!fileIds || !same(fileIds, llamaIds) || same(fileIds, hf.tokenized[index]!)) return undefined;
  const declared = file.declared_class === null ? `names no tokenizer_class, and transformers ${file.transformers} picks ${file.built_class}` : `declares "tokenizer_class": "${file.declared_class}"`;
  const parts = Object.entries(file.replaced).map(([part, { file: own, built }]) => `its ${part} ${describePart(built)} in place of tokenizer.json's ${describePart(own)}`);
  return {
    message:
      `Cause: tokenizer_config.json ${declared}; transformers ${file.transformers} builds a ${file.built_class} with ` +
      `${parts.length > 0 ? parts.join(" and ") : "its own rules instead of tokenizer.json's"}, while llama.cpp's converter reads tokenizer.json as it is ` +
      "(the `tokenizers` library on that file gives llama.cpp's ids).",
    fix:
      'In a copy of the model folder set "tokenizer_class": "PreTrainedTokenizerFast" in tokenizer_config.json (transformers then uses tokenizer.json as it is, as llama.cpp does), ' +
      "point `model:` at the copy, and build: training, the GGUF and this check then tokenize alike.",
  };
}

/** The fix when the tokenizer class is not the cause. */
function otherFix(hf: HfTokens, index: number | undefined): string {
  const file = hf.file;
  const fileAgrees = index !== undefined && file !== null && !("error" in file) && same(file.tokenized[index] ?? [], hf.tokenized[index]!);
  return fileAgrees
    ? "transformers tokenizes like tokenizer.json read by the `tokenizers` library; llama.cpp parts from both (its converter maps this pre-tokenizer to one that splits differently). Point llama_cpp: at a llama.cpp whose converter and tokenizer know this model, or use another model."
    : "The GGUF would answer differently from the fine-tuned model. Check tokenizer_config.json's tokenizer_class (a LlamaTokenizer over a byte-level BPE tokenizer.json sends the converter down its SentencePiece path), or point llama_cpp: at a llama.cpp whose converter and tokenizer know this model.";
}

interface Case {
  readonly label: string;
  readonly text: string;
  /** Index in the texts both sides tokenized (for the cause); undefined for the special-tokens case. */
  readonly index: number | undefined;
  readonly hf: readonly number[];
  readonly llama: readonly number[];
}

/**
 * The verdict on the ids: a training text that differs is an error with its origin and both id lists; with
 * training texts given, probe texts that differ are a warning naming their characters, or an error naming the
 * first training example that holds one. Without training texts (the model node's check of a rebuilt
 * tokenizer) every difference is an error.
 */
function parityVerdicts(probes: readonly ParityText[], data: TrainingTexts | undefined, hf: HfTokens, llama: LlamaAnswer): Verdict[] {
  const code = "export.tokenizer-parity";
  const withSpecials = [...(llama.special.addBos && llama.special.bos !== null ? [llama.special.bos] : []), ...llama.tokenized.at(-1)!];
  const at = (i: number): Case => ({ label: "", text: "", index: i, hf: hf.tokenized[i]!, llama: llama.tokenized[i]! });
  const probeCases: Case[] = [
    ...probes.map((t, i) => ({ ...at(i), ...t })),
    { label: "special tokens added (BOS ...)", text: WITH_SPECIALS, index: undefined, hf: hf.with_specials, llama: withSpecials },
  ];
  const dataStart = probes.length + CHARACTERS.length;
  const checked = data?.checked ?? [];
  const sampled = data && checked.length < data.all.length ? ` (an evenly spaced sample of ${checked.length} of the ${data.all.length} examples)` : "";
  const differing = (c: Case) => !same(c.hf, c.llama);
  const explain = (c: Case, what: string): Verdict => {
    const cause = c.index === undefined ? undefined : classCause(hf, c.index, c.llama);
    return {
      level: "error",
      code,
      message:
        `llama.cpp does not tokenize like the Hugging Face tokenizer the model is trained with. ${what}\n${idLists(c.hf, c.llama)}` +
        (cause ? `\n      ${cause.message}` : ""),
      fix: cause?.fix ?? otherFix(hf, c.index),
    };
  };

  const characters = CHARACTERS.filter((_, i) => differing(at(probes.length + i)));
  const firstCharacter = (text: string) => {
    const found = characters.map((c) => text.indexOf(c)).filter((i) => i >= 0);
    return found.length > 0 ? Math.min(...found) : 0;
  };
  const dataDiffers = checked.findIndex((_, i) => differing(at(dataStart + i)));
  if (dataDiffers >= 0) {
    const { origin, text } = checked[dataDiffers]!;
    return [explain({ ...at(dataStart + dataDiffers), label: origin, text }, `First differing data example${sampled}: ${origin} ${excerpt(text, firstCharacter(text))}`)];
  }
  const specials = probeCases.at(-1)!;
  if (differing(specials)) return [explain(specials, `First differing text (${specials.label}): ${JSON.stringify(specials.text)}`)];
  const probeDiffers = probeCases.find(differing);
  const labels = probeCases.map((c) => c.label).join(", ");
  const trained = data ? ` and the ${checked.length} data examples${sampled}` : "";
  if (!probeDiffers) return [{ level: "ok", code, message: `llama.cpp tokenizes ${probeCases.length} probe texts (${labels})${trained} exactly like the Hugging Face tokenizer` }];
  const first = `First differing text (${probeDiffers.label}): ${JSON.stringify(probeDiffers.text)}`;
  if (!data) return [explain(probeDiffers, first)];

  // Only probe texts differ: name the characters, and look for them in every training text.
  const named = characters.length > 0 ? characters.map((c) => JSON.stringify(c)).join(" ") : `the ${probeDiffers.label} probe text (no single character)`;
  const holder = characters.length > 0 ? data.all.find((t) => characters.some((c) => t.text.includes(c))) : undefined;
  if (holder) {
    const found = characters.filter((c) => holder.text.includes(c)).map((c) => JSON.stringify(c)).join(" ");
    return [explain(probeDiffers, `They part ways on ${named}, and data example ${holder.origin} contains ${found}: ${excerpt(holder.text, firstCharacter(holder.text))}. ${first}`)];
  }
  const cause = probeDiffers.index === undefined ? undefined : classCause(hf, probeDiffers.index, probeDiffers.llama);
  return [
    {
      level: "warn",
      code,
      message:
        `llama.cpp tokenizes the ${checked.length} data examples${sampled} like the Hugging Face tokenizer the model is trained with, but not ${named}, which no example contains: ` +
        `text with ${characters.length === 1 ? "it" : "them"} would be tokenized differently by the GGUF than in training. ${first}` +
        (cause ? `\n      ${cause.message}` : ""),
      fix: cause?.fix ?? otherFix(hf, probeDiffers.index),
    },
  ];
}

/** bos/eos/eot and the chat template in the GGUF against the base model's. */
function specialVerdicts(hf: HfTokens, llama: LlamaAnswer, ggufTemplate: string | undefined, baseTemplate: string | undefined): Verdict[] {
  const out: Verdict[] = [];
  const { bos, eos, eot } = llama.special;
  const stops = new Set(llama.eog);
  const configFix = "Make eos_token in tokenizer_config.json and eos_token_id in generation_config.json name the token that ends an assistant turn in the chat template (e.g. <|eot_id|>, <|im_end|>, <end_of_turn>), then rebuild.";
  if (hf.bos !== null && bos !== hf.bos) {
    out.push({ level: "error", code: "export.bos", message: `The GGUF's BOS is ${bos ?? "unset"}, the base model's ${hf.bos}.`, fix: "Set bos_token in tokenizer_config.json to the model's real BOS, then rebuild." });
  }
  if (eos !== null && hf.eos_ids.length > 0 && !hf.eos_ids.includes(eos)) {
    out.push({ level: "error", code: "export.eos", message: `The GGUF's EOS is ${eos}, which is none of the base model's end tokens ${show(hf.eos_ids)}.`, fix: configFix });
  }
  const noStop = hf.eos_ids.filter((id) => !stops.has(id));
  // llama.cpp picks an end-of-turn token by name when the file names none (SmolLM2: <|endoftext|>); that is one
  // more place to stop, harmless while every end token of the base model stops generation too.
  if (eot !== null && eot !== eos && hf.eos_ids.length > 0 && !hf.eos_ids.includes(eot) && noStop.length > 0) {
    out.push({ level: "warn", code: "export.eot", message: `The GGUF's end-of-turn token is ${eot}, which is none of the base model's end tokens ${show(hf.eos_ids)}.`, fix: configFix });
  }
  if (noStop.length > 0) {
    const main = hf.eos !== null && noStop.includes(hf.eos);
    out.push({
      level: main ? "error" : "warn",
      code: "export.eog",
      message: `llama.cpp does not stop generating at ${show(noStop)}, where the base model stops (its eos${main ? "" : " list in generation_config.json"}).`,
      fix: main ? configFix : "llama.cpp may run past the end of an answer where mlx-lm stops; if these tokens end turns, make the tokenizer config's eos_token one of them.",
    });
  }
  for (const warning of llama.warnings ?? []) {
    if (/is not in special_eog_ids/.test(warning)) {
      out.push({ level: "warn", code: "export.eog-warning", message: `llama.cpp warns when loading the GGUF: ${warning.replace(/^\w+:\s*/, "")}`, fix: configFix });
    }
  }
  if (baseTemplate !== undefined && ggufTemplate !== baseTemplate) {
    out.push({
      level: "error",
      code: "export.chat-template",
      message: ggufTemplate === undefined ? "The GGUF has no chat template, though the base model has one." : "The GGUF's chat template differs from the base model's.",
      fix: "Keep chat_template.jinja (or tokenizer_config.json's chat_template) in the model folder; the converter copies it into the GGUF.",
    });
  }
  if (out.every((v) => v.level !== "error")) {
    out.unshift({ level: "ok", code: "export.special-tokens", message: `special tokens agree: bos ${bos ?? "none"}, eos ${eos ?? "none"}, eot ${eot ?? "none"}; llama.cpp stops at ${show(hf.eos_ids)}${baseTemplate !== undefined ? "; chat template identical" : ""}` });
  }
  return out;
}

/** The Hugging Face side of the check: the texts and their ids. Independent of the GGUF, so it can run while the GGUF is made. */
export interface HfSide {
  readonly probes: ParityText[];
  readonly data: TrainingTexts | undefined;
  readonly template: string | undefined;
  readonly tokens: HfTokens;
}

/** Every text both sides tokenize, in order: the probes, one per character, the checked training texts. */
const allTexts = (probes: readonly ParityText[], data: TrainingTexts | undefined) => [...probes.map((t) => t.text), ...CHARACTERS.map(characterProbe), ...(data?.checked ?? []).map((t) => t.text)];

/** `data`: the training texts, whose parity decides; without them (a rebuilt tokenizer's check) the probes do. */
export async function hfSide(exec: Exec, hf: HfPython, modelDir: string, data?: TrainingTexts): Promise<HfSide> {
  const { texts: probes, template } = await parityTexts(modelDir);
  return { probes, data, template, tokens: await hfTokens(exec, hf, modelDir, allTexts(probes, data)) };
}

export interface TokenizerCheck {
  readonly verdicts: Verdict[];
  readonly answer: LlamaAnswer;
}

/**
 * Tokenizes the texts with llama.cpp reading `gguf` (in a child process, which also answers `extra`
 * such as a greedy run) and compares ids and special tokens with the Hugging Face side.
 * llama.cpp dying in the child throws LlamaCrash.
 */
export async function checkTokenizer(
  exec: Exec,
  hf: HfSide,
  options: { gguf: string; ggufTemplate: string | undefined; vocabOnly?: boolean; extra?: Partial<LlamaRequest>; timeoutMs?: number },
): Promise<TokenizerCheck> {
  const answer = await askLlamaCpp(
    exec,
    { model: options.gguf, vocabOnly: options.vocabOnly ?? false, tokenize: [...allTexts(hf.probes, hf.data), WITH_SPECIALS], eogCandidates: hf.tokens.eos_ids, ...options.extra },
    { what: `loading ${options.gguf}${options.vocabOnly ? " (vocabulary only)" : ""}`, ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}) },
  );
  return { verdicts: [...parityVerdicts(hf.probes, hf.data, hf.tokens, answer), ...specialVerdicts(hf.tokens, answer, options.ggufTemplate, hf.template)], answer };
}
