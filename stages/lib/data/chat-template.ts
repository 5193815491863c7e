// The model's own chat template, rendered in TypeScript so a template error shows before training.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { UserError } from "../../../engine/types.ts";
import type { Message } from "./dataset.ts";

export interface ChatTemplate {
  readonly source: string;
  /** The template itself, as the tokenizer config holds it (llama.cpp copies it into the GGUF). */
  readonly text: string;
  readonly bosToken: string | undefined;
  /**
   * Whether the tokenizer puts BOS in front of what it encodes: `add_bos_token`, or when the config does not say,
   * a BOS token at all (Llama 3's tokenizer adds it in its post-processor). SmolLM2 names `<|im_start|>` as its BOS
   * but never adds it: there the rendered `<|im_start|>` is the prompt's own first token, not a BOS to strip.
   */
  readonly addsBos: boolean;
  readonly eosToken: string | undefined;
  /** `bosToken`: the BOS text the template writes, in place of the tokenizer's (Ollama's prompt has none: its runtime adds it). */
  render(messages: readonly Message[], options?: { addGenerationPrompt?: boolean; tools?: readonly unknown[]; bosToken?: string }): string;
}

/** What the template refuses, found by rendering three small probe conversations. */
export interface TemplateRules {
  /** Raises on a system turn (Gemma 1 and 2), or demands alternation (Gemma 3, which folds system itself). */
  readonly foldSystem: boolean;
  /** Raises unless user and assistant turns alternate. */
  readonly strictAlternation: boolean;
  /** Raises on a tool turn. */
  readonly rejectsTool: boolean;
}

function tokenText(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (value && typeof value === "object" && typeof (value as { content?: unknown }).content === "string") return (value as { content: string }).content;
  return undefined;
}

async function readTokenizerConfig(path: string): Promise<Record<string, unknown>> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, "utf8"));
  } catch (e) {
    throw new UserError(`${path} is not valid JSON (${(e as Error).message}); restore the model's own tokenizer_config.json.`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new UserError(`${path} holds ${JSON.stringify(parsed)?.slice(0, 40)}, not a JSON object; restore the model's own tokenizer_config.json.`);
  return parsed as Record<string, unknown>;
}

/** Loads the template from chat_template.jinja or tokenizer_config.json, or undefined if the model has none. */
export async function loadChatTemplate(modelDir: string): Promise<ChatTemplate | undefined> {
  const configPath = join(modelDir, "tokenizer_config.json");
  const config = existsSync(configPath) ? await readTokenizerConfig(configPath) : {};
  const jinjaPath = join(modelDir, "chat_template.jinja");
  let text: string | undefined;
  let source = jinjaPath;
  if (existsSync(jinjaPath)) {
    text = await readFile(jinjaPath, "utf8");
  } else {
    source = `${configPath} (chat_template)`;
    const raw = config.chat_template;
    // Some models ship several named templates; "default" is what apply_chat_template uses.
    text = Array.isArray(raw) ? (raw as { name?: string; template?: string }[]).find((t) => t.name === "default")?.template : (raw as string | undefined);
  }
  if (!text) return undefined;
  return chatTemplate(source, text, config);
}

/** A chat template from its text and the tokenizer config that names its special tokens. */
export async function chatTemplate(source: string, text: string, config: Readonly<Record<string, unknown>>): Promise<ChatTemplate> {
  const { Template } = await import("@huggingface/jinja"); // only builds that render pay for it
  const template = new Template(text);
  const bosToken = tokenText(config.bos_token);
  const eosToken = tokenText(config.eos_token);
  return {
    source,
    text,
    bosToken,
    addsBos: bosToken !== undefined && config.add_bos_token !== false,
    eosToken,
    render: (messages, options = {}) =>
      template.render({
        messages: messages as unknown as Record<string, unknown>[],
        ...(options.tools ? { tools: options.tools as Record<string, unknown>[] } : {}),
        bos_token: options.bosToken ?? bosToken ?? "",
        eos_token: eosToken ?? "",
        add_generation_prompt: options.addGenerationPrompt ?? false,
      }),
  };
}

/** The rendered text as the tokenizer should see it: without the BOS it adds itself (a literal one would make two). */
export function withoutAddedBos(template: ChatTemplate, text: string): string {
  return template.addsBos && template.bosToken && text.startsWith(template.bosToken) ? text.slice(template.bosToken.length) : text;
}

function raises(template: ChatTemplate, messages: Message[]): boolean {
  try {
    template.render(messages);
    return false;
  } catch {
    return true;
  }
}

export function probeRules(template: ChatTemplate): TemplateRules {
  const m = (role: string, content: string): Message => ({ role, content });
  const strictAlternation = raises(template, [m("user", "a"), m("user", "b"), m("assistant", "c")]);
  return {
    strictAlternation,
    foldSystem: strictAlternation || raises(template, [m("system", "s"), m("user", "a"), m("assistant", "b")]),
    rejectsTool: raises(template, [m("user", "a"), m("assistant", "b"), m("tool", "c"), m("assistant", "d")]),
  };
}

/** Folds a leading system prompt into the first user turn and merges consecutive same-role turns. */
export function normalizeMessages(messages: readonly Message[], rules: TemplateRules): { messages: Message[]; changed: boolean } {
  let out = messages.map((m) => ({ ...m }));
  let changed = false;
  if (rules.foldSystem) {
    const system = out.filter((m) => m.role === "system").map((m) => m.content);
    if (system.length > 0) {
      out = out.filter((m) => m.role !== "system");
      const firstUser = out.find((m) => m.role === "user");
      if (firstUser) firstUser.content = `${system.join("\n\n")}\n\n${firstUser.content}`;
      else out.unshift({ role: "user", content: system.join("\n\n") });
      changed = true;
    }
  }
  if (rules.strictAlternation) {
    const merged: Message[] = [];
    for (const m of out) {
      const last = merged.at(-1);
      if (last && last.role === m.role) {
        last.content = `${last.content}\n\n${m.content}`;
        changed = true;
      } else {
        merged.push(m);
      }
    }
    out = merged;
  }
  return { messages: out, changed };
}
