// Tokenizer parity: llama.cpp, reading a GGUF, must tokenize like the Hugging Face tokenizer the model was
// trained with, and stop where it stops. Used by the gguf node on the converted file and by its guard on the
// converter's vocab-only GGUF, before training.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Verdict } from "../../engine/types.ts";
import { UserError } from "../../engine/types.ts";
import { loadChatTemplate } from "./chat-template.ts";
import { askLlamaCpp, type Exec, type LlamaAnswer, type LlamaRequest } from "./llama-child.ts";
import { pyScript, PY_ENV } from "./tools.ts";

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
  { label: "non-ASCII", text: "Grüße aus Köln — naïve café, 東京タワー, Здравствуйте, مرحبا, 🦙🚀✅ ½°C" },
];
const WITH_SPECIALS = "Hello, world!";

export interface HfTokens {
  readonly tokenized: number[][];
  readonly with_specials: number[];
  readonly bos: number | null;
  readonly eos: number | null;
  readonly eos_ids: number[];
}

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
    return JSON.parse(answer) as HfTokens;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const show = (ids: readonly number[]) => `[${ids.join(", ")}]`;

/** The first text the two tokenizers disagree on, as an error verdict; none when they agree on all. */
function parityVerdicts(texts: readonly ParityText[], hf: HfTokens, llama: LlamaAnswer): Verdict[] {
  const withSpecials = [...(llama.special.addBos && llama.special.bos !== null ? [llama.special.bos] : []), ...llama.tokenized.at(-1)!];
  const cases = [
    ...texts.map((t, i) => ({ ...t, hf: hf.tokenized[i]!, llama: llama.tokenized[i]! })),
    { label: "special tokens added (BOS ...)", text: WITH_SPECIALS, hf: hf.with_specials, llama: withSpecials },
  ];
  const differs = cases.find((c) => c.hf.length !== c.llama.length || c.hf.some((id, i) => id !== c.llama[i]));
  if (!differs) return [{ level: "ok", code: "export.tokenizer-parity", message: `llama.cpp tokenizes ${cases.length} probe texts (${cases.map((c) => c.label).join(", ")}) exactly like the Hugging Face tokenizer` }];
  return [
    {
      level: "error",
      code: "export.tokenizer-parity",
      message:
        `llama.cpp does not tokenize like the Hugging Face tokenizer the model is trained with. First differing text (${differs.label}): ${JSON.stringify(differs.text)}\n` +
        `      Hugging Face: ${show(differs.hf)}\n      llama.cpp:    ${show(differs.llama)}`,
      fix: "The GGUF would answer differently from the fine-tuned model. Check tokenizer_config.json's tokenizer_class (a LlamaTokenizer over a byte-level BPE tokenizer.json sends the converter down its SentencePiece path), or point llama_cpp: at a llama.cpp whose converter and tokenizer know this model.",
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

/** The Hugging Face side of the check: the probe texts and their ids. Independent of the GGUF, so it can run while the GGUF is made. */
export interface HfSide {
  readonly texts: ParityText[];
  readonly template: string | undefined;
  readonly tokens: HfTokens;
}

export async function hfSide(exec: Exec, hf: HfPython, modelDir: string): Promise<HfSide> {
  const { texts, template } = await parityTexts(modelDir);
  return { texts, template, tokens: await hfTokens(exec, hf, modelDir, texts.map((t) => t.text)) };
}

export interface TokenizerCheck {
  readonly verdicts: Verdict[];
  readonly answer: LlamaAnswer;
}

/**
 * Tokenizes the probe texts with llama.cpp reading `gguf` (in a child process, which also answers `extra`
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
    { model: options.gguf, vocabOnly: options.vocabOnly ?? false, tokenize: [...hf.texts.map((t) => t.text), WITH_SPECIALS], eogCandidates: hf.tokens.eos_ids, ...options.extra },
    { what: `loading ${options.gguf}${options.vocabOnly ? " (vocabulary only)" : ""}`, ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}) },
  );
  return { verdicts: [...parityVerdicts(hf.texts, hf.tokens, answer), ...specialVerdicts(hf.tokens, answer, options.ggufTemplate, hf.template)], answer };
}
