// Jinja chat template → Ollama Go template, by rendering rather than parsing: a family's Go template is chosen
// only when Go's text/template, fed Ollama's template data, gives the very bytes the Jinja template gives for
// every probe conversation. The same comparison, on the training data's own conversations, is the proof the
// ollama node records.
import { UserError } from "../../../engine/types.ts";
import { normalizeMessages, probeRules, type ChatTemplate, type TemplateRules } from "../data/chat-template.ts";
import type { Message } from "../data/dataset.ts";
import { candidates, FAMILIES, MARK, type FamilyName, type JinjaPrompt } from "./families.ts";
import { renderWithGo } from "./go-renderer.ts";
import { modelfileText } from "./modelfile.ts";

export interface Conversation {
  /** Where it comes from, for messages: "probe: multi-turn", "data/train.jsonl:3". */
  readonly origin: string;
  readonly messages: readonly Message[];
}

export interface JinjaChat {
  /** Where the template was read, for messages. */
  readonly source: string;
  readonly prompt: JinjaPrompt;
  /** How the training data was folded for this template (formatted.ts does the same). */
  readonly rules: TemplateRules;
}

const m = (role: string, content: string): Message => ({ role, content });

/** Conversations that tell the families apart: a system prompt or none, one turn or several. */
export const PROBES: readonly Conversation[] = [
  { origin: "probe: one user turn", messages: [m("user", MARK.user)] },
  { origin: "probe: system + user", messages: [m("system", "You answer in one sentence."), m("user", "What is 2 + 2?")] },
  { origin: "probe: multi-turn", messages: [m("user", "Hi!"), m("assistant", "Hello! How can I help?"), m("user", "Convert 3 km to m.")] },
  { origin: "probe: system + multi-turn", messages: [m("system", "Be terse."), m("user", "First question"), m("assistant", "First answer"), m("user", "Second question")] },
];

/**
 * The Jinja template as Ollama's prompt must reproduce it: the generation prompt added, and an empty BOS, since
 * the runtime's tokenizer adds BOS itself (a literal one in the text would make two).
 */
export function jinjaChat(template: ChatTemplate): JinjaChat {
  const prompt: JinjaPrompt = (messages) => template.render(messages, { addGenerationPrompt: true, bosToken: "" });
  const rules = probeRules({ ...template, bosToken: undefined, addsBos: false, render: (messages) => prompt(messages) });
  return { source: template.source, prompt, rules };
}

/** The conversation as Ollama builds it: the Modelfile's SYSTEM first when the request brings none. */
function withSystem(messages: readonly Message[], system: string | undefined): readonly Message[] {
  return system !== undefined && messages[0]?.role !== "system" ? [m("system", system), ...messages] : messages;
}

/** Text around the first byte where `a` and `b` differ, both JSON-quoted. */
function difference(a: string, b: string): string {
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  const around = (s: string) => JSON.stringify(`${i > 40 ? "…" : ""}${s.slice(Math.max(0, i - 40), i + 40)}${s.length > i + 40 ? "…" : ""}`);
  return `at character ${i}:\n      Jinja:  ${around(a)}\n      Ollama: ${around(b)}`;
}

/** Why no TEMPLATE can match a conversation with consecutive turns of one role, or "". */
function unmerged(messages: readonly Message[], rules: TemplateRules): string {
  const trained = normalizeMessages(messages, rules).messages;
  if (!trained.some((msg, i) => i > 0 && trained[i - 1]!.role === msg.role)) return "";
  return (
    "\n    Ollama merges consecutive messages of one role (joined by a blank line) before its template runs, and this chat template " +
    "keeps them apart, so no TEMPLATE gives this prompt: merge such turns in the training data."
  );
}

export type Check = { readonly ok: true; readonly checked: number } | { readonly ok: false; readonly why: string };

/** Renders every conversation through the Jinja template and through the Modelfile's TEMPLATE with Go; equal bytes or the first difference. */
export async function checkModelfile(chat: JinjaChat, modelfile: string, system: string | undefined, conversations: readonly Conversation[]): Promise<Check> {
  const go = await renderWithGo(modelfile, conversations.map((c) => c.messages));
  for (const [i, c] of conversations.entries()) {
    let expected: string;
    try {
      expected = chat.prompt(normalizeMessages(withSystem(c.messages, system), chat.rules).messages);
    } catch (e) {
      return { ok: false, why: `${c.origin}: the Jinja template raised: ${(e as Error).message}` };
    }
    if (expected !== go.renders[i]) return { ok: false, why: `${c.origin}: the renderings differ ${difference(expected, go.renders[i]!)}${unmerged(c.messages, chat.rules)}` };
  }
  return { ok: true, checked: conversations.length };
}

export interface Translation {
  readonly family: FamilyName;
  readonly template: string;
  readonly stop: string;
}

/** A chat template this tool cannot give Ollama, and what to write by hand instead. */
export class UntranslatableTemplate extends UserError {
  constructor(
    readonly problem: string,
    readonly fix: string = BY_HAND,
  ) {
    super(`${problem}\n  ${fix}`);
  }
}

const BY_HAND =
  "Write the TEMPLATE by hand (a Go template over .Messages with .Role and .Content; see Ollama's docs/template.md) in a file, " +
  "name it in pipeline.yaml as `ollama: { template: FILE }`, and the node checks it against the Jinja template the same way.";

/** The first family whose Go template renders every probe exactly as the Jinja template does; a UserError naming what to write by hand otherwise. */
export async function translate(chat: JinjaChat): Promise<Translation> {
  let found: ReturnType<typeof candidates>;
  try {
    found = candidates(chat.prompt);
  } catch (e) {
    throw new UntranslatableTemplate(`${chat.source}: the chat template raised on a one-turn conversation (${(e as Error).message}), so Ollama cannot be given its equivalent.`);
  }
  const tried: string[] = [];
  for (const candidate of found) {
    const check = await checkModelfile(chat, modelfileText({ from: "model.gguf", template: candidate.template, stops: [] }), undefined, PROBES);
    if (check.ok) return candidate;
    tried.push(`${candidate.family}: ${check.why}`);
  }
  const reason =
    tried.length === 0
      ? `its turns match none of the template families this tool translates (${FAMILIES.join(", ")})`
      : `no Go template renders it byte for byte as the Jinja template does:\n    ${tried.join("\n    ")}`;
  throw new UntranslatableTemplate(`${chat.source}: this chat template cannot be translated to an Ollama TEMPLATE: ${reason}`);
}
