// Jinja chat template → Ollama TEMPLATE, no training: each supported family's real template is translated,
// and Go's text/template (render.go, building Ollama's template data) renders conversations byte for byte as
// @huggingface/jinja does; a template no family expresses fails naming what to write by hand.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { tinyTokenizerDir } from "../../stages/model.ts";
import { chatTemplate } from "../../stages/lib/data/chat-template.ts";
import type { Message } from "../../stages/lib/data/dataset.ts";
import { modelfileText } from "../../stages/lib/ollama/modelfile.ts";
import { endTokens } from "../../stages/lib/ollama/stops.ts";
import { checkModelfile, jinjaChat, PROBES, translate, UntranslatableTemplate, type Conversation } from "../../stages/lib/ollama/translate.ts";
import { LLAMA3_INSTRUCT, LLAMA32_INSTRUCT, MISTRAL_INSTRUCT, SMOLLM2 } from "../fixtures/chat-templates.ts";

const m = (role: string, content: string): Message => ({ role, content });

function tinyTemplate(family: "llama" | "qwen3" | "gemma3"): { text: string; eos: string } {
  const config = JSON.parse(readFileSync(join(tinyTokenizerDir(family), "tokenizer_config.json"), "utf8")) as { chat_template: string; eos_token: string };
  return { text: config.chat_template, eos: config.eos_token };
}

/** Beyond the probes: a long history, text that looks like template syntax. */
const MORE: Conversation[] = [
  {
    origin: "three exchanges with a system prompt",
    messages: [m("system", "Answer with numbers."), m("user", "1+1?"), m("assistant", "2"), m("user", "2+2?"), m("assistant", "4"), m("user", "3+3?")],
  },
  { origin: "quotes, braces, unicode", messages: [m("user", 'He said "{{ .Content }}" — ¿qué?\nline two')] },
];

const CASES = [
  { name: "tiny:llama (npm Llama 3 template)", ...tinyTemplate("llama"), family: "llama3" },
  { name: "tiny:llama (Llama 3 Instruct, as built)", text: LLAMA3_INSTRUCT, eos: "<|eot_id|>", family: "llama3" },
  { name: "Llama 3.2 Instruct (fixed system preamble)", text: LLAMA32_INSTRUCT, eos: "<|eot_id|>", family: "llama3" },
  { name: "tiny:qwen3 (ChatML, thinking)", ...tinyTemplate("qwen3"), family: "chatml" },
  { name: "SmolLM2 (ChatML, default system)", text: SMOLLM2, eos: "<|im_end|>", family: "chatml" },
  { name: "tiny:gemma3 (system folded into the first turn)", ...tinyTemplate("gemma3"), family: "gemma3" },
  { name: "Mistral Instruct ([INST], no system role)", text: MISTRAL_INSTRUCT, eos: "</s>", family: "mistral" },
] as const;

describe("Ollama TEMPLATE translation", () => {
  it.each(CASES)("$name → $family, byte-equal under Go's text/template", async ({ name, text, eos, family }) => {
    const chat = jinjaChat(await chatTemplate(name, text, { eos_token: eos }));
    const translation = await translate(chat);
    expect(translation.family).toBe(family);
    const modelfile = modelfileText({ from: "../gguf/model.gguf", template: translation.template, stops: [translation.stop], numCtx: 2048 });
    expect(await checkModelfile(chat, modelfile, undefined, [...PROBES, ...MORE])).toEqual({ ok: true, checked: PROBES.length + MORE.length });
    // The Modelfile's SYSTEM reaches the prompt as Ollama adds it: before the first turn when the request has none.
    const withSystem = modelfileText({ from: "x.gguf", template: translation.template, stops: [], system: "Be exact.\nTwo lines." });
    expect(await checkModelfile(chat, withSystem, "Be exact.\nTwo lines.", [...PROBES, ...MORE])).toMatchObject({ ok: true });
  });

  it("consecutive user turns: alike where the template merges them as Ollama does, refused with the reason where it does not", async () => {
    const twoUsers: Conversation = { origin: "two user turns in a row", messages: [m("user", "Part one."), m("user", "Part two?")] };
    for (const { name, text, eos, family } of CASES) {
      const chat = jinjaChat(await chatTemplate(name, text, { eos_token: eos }));
      const check = await checkModelfile(chat, modelfileText({ from: "x.gguf", template: (await translate(chat)).template, stops: [] }), undefined, [twoUsers]);
      if (family === "gemma3" || family === "mistral") expect(check, name).toEqual({ ok: true, checked: 1 });
      else expect(!check.ok && check.why, name).toMatch(/^two user turns in a row: the renderings differ .*\n[\s\S]*Ollama merges consecutive messages of one role/);
    }
  });

  it("the check fails on a TEMPLATE one byte off, and says where", async () => {
    const chat = jinjaChat(await chatTemplate("smollm2", SMOLLM2, { eos_token: "<|im_end|>" }));
    const { template } = await translate(chat);
    const off = modelfileText({ from: "x.gguf", template: template.replace("<|im_start|>assistant\n{{ end }}", "<|im_start|>assistant{{ end }}"), stops: [] });
    const check = await checkModelfile(chat, off, undefined, PROBES);
    expect(check.ok).toBe(false);
    expect(!check.ok && check.why).toMatch(/^probe: one user turn: the renderings differ at character \d+:\n\s+Jinja: .*\n\s+Ollama: /);
  });

  it("a template of no known family is refused, naming the TEMPLATE to write by hand", async () => {
    const alpaca = "{% for message in messages %}{% if message['role'] == 'user' %}### Instruction:\n{{ message['content'] }}\n\n{% else %}### Response:\n{{ message['content'] }}\n\n{% endif %}{% endfor %}{% if add_generation_prompt %}### Response:\n{% endif %}";
    const error = await translate(jinjaChat(await chatTemplate("my-model/tokenizer_config.json (chat_template)", alpaca, { eos_token: "</s>" }))).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UntranslatableTemplate);
    const { problem, fix } = error as UntranslatableTemplate;
    expect(problem).toMatch(/^my-model\/tokenizer_config\.json \(chat_template\): this chat template cannot be translated to an Ollama TEMPLATE: its turns match none of the template families this tool translates \(chatml, llama3, gemma3, mistral\)$/);
    expect(fix).toMatch(/Write the TEMPLATE by hand .* `ollama: \{ template: FILE \}`/);
  });

  it("a ChatML template doing what Go templates cannot (slicing a message) is refused with the first difference", async () => {
    const slicing = SMOLLM2.replace("message['content'] + '<|im_end|>'", "(message['content'][:8] if message['role'] == 'assistant' else message['content']) + '<|im_end|>'");
    const error = (await translate(jinjaChat(await chatTemplate("sliced", slicing, { eos_token: "<|im_end|>" }))).catch((e: unknown) => e)) as UntranslatableTemplate;
    expect(error).toBeInstanceOf(UntranslatableTemplate);
    expect(error.problem).toMatch(/no Go template renders it byte for byte as the Jinja template does:\n\s+chatml: probe: multi-turn: the renderings differ at character \d+/);
  });

  it("refuses a Modelfile value Ollama's parser would cut short", () => {
    expect(() => modelfileText({ from: "x.gguf", template: 'a """ b', stops: [] })).toThrow(/TEMPLATE contains """/);
    expect(() => modelfileText({ from: "x.gguf", template: "t", stops: ['a"b'] })).toThrow(/stop token "a\\"b" cannot be written/);
  });

  it("stops on the EOS and every generation_config eos id, by their token text", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ollama-stops-"));
    writeFileSync(join(dir, "generation_config.json"), JSON.stringify({ eos_token_id: [1, 106] }));
    writeFileSync(join(dir, "tokenizer.json"), JSON.stringify({ added_tokens: [{ id: 1, content: "<eos>" }, { id: 106, content: "<end_of_turn>" }] }));
    expect(await endTokens(dir, "<eos>", "<end_of_turn>")).toEqual(["<eos>", "<end_of_turn>"]);
    writeFileSync(join(dir, "generation_config.json"), JSON.stringify({ eos_token_id: 7 }));
    await expect(endTokens(dir, "<eos>", undefined)).rejects.toThrow(/eos_token_id 7 is no added token/);
  });
});
