// The chat template families this tool writes an Ollama TEMPLATE for. A family is recognised from how the
// model's own Jinja template renders probe conversations, and its parameters (a default system prompt, a
// fixed preamble, the mistral separators) are read from those renderings; whether the Go template is right is
// decided by rendering, never by this recognition (see translate.ts).
import type { Message } from "../data/dataset.ts";

export type FamilyName = "chatml" | "llama3" | "gemma3" | "mistral";

/** The Jinja template's prompt for `messages` (generation prompt added, BOS left to the runtime). */
export type JinjaPrompt = (messages: readonly Message[]) => string;

export interface Candidate {
  readonly family: FamilyName;
  /** The Go template for Ollama's TEMPLATE. */
  readonly template: string;
  /** The token that ends an assistant turn: generation must stop on it. */
  readonly stop: string;
}

/** Distinct words no template writes itself, so where they land in a rendering shows the template's frame. */
export const MARK = { user: "PROBE-U1", assistant: "PROBE-A1", user2: "PROBE-U2" } as const;
const u = (content: string): Message => ({ role: "user", content });
const a = (content: string): Message => ({ role: "assistant", content });

// Shared pieces: `$last` as Ollama's own templates compute it; a last assistant message is a prefill left open.
const RANGE = `{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}`;
const FIRST_SYSTEM = `(eq (index $.Messages 0).Role "system")`;

/** Literal text for a Go template, or undefined when it would be read as an action. */
function literal(text: string): string | undefined {
  return text.includes("{{") || text.includes("}}") ? undefined : text;
}

function chatml(prompt: JinjaPrompt): Candidate | undefined {
  const one = prompt([u(MARK.user)]);
  if (!one.includes(`<|im_start|>user\n${MARK.user}<|im_end|>\n`)) return undefined;
  // SmolLM2 and Qwen2.5 write a default system turn when the conversation has none.
  const fallback = /^<\|im_start\|>system\n([\s\S]*?)<\|im_end\|>\n/.exec(one)?.[1];
  const preamble = fallback === undefined ? "" : literal(fallback);
  if (preamble === undefined) return undefined;
  const defaultSystem = fallback === undefined ? "" : `{{- if not ${FIRST_SYSTEM} }}<|im_start|>system\n${preamble}<|im_end|>\n{{ end }}\n`;
  return {
    family: "chatml",
    stop: "<|im_end|>",
    template: `${defaultSystem}${RANGE}<|im_start|>{{ .Role }}
{{ .Content }}{{ if or (ne .Role "assistant") (not $last) }}<|im_end|>
{{ end }}
{{- if and $last (ne .Role "assistant") }}<|im_start|>assistant
{{ end }}
{{- end }}`,
  };
}

function llama3(prompt: JinjaPrompt): Candidate | undefined {
  const one = prompt([u(MARK.user)]);
  if (!one.includes(`<|start_header_id|>user<|end_header_id|>\n\n${MARK.user}<|eot_id|>`)) return undefined;
  const header = (role: string) => `<|start_header_id|>${role}<|end_header_id|>\n\n`;
  const turn = `${header("{{ .Role }}")}{{ .Content }}{{ if or (ne .Role "assistant") (not $last) }}<|eot_id|>{{ end }}`;
  // With a fixed system turn, the first system message is written inside it, not as a turn of its own.
  const turns = (skipFirstSystem: boolean) => `${RANGE}${skipFirstSystem ? `{{ if or (ne $i 0) (ne .Role "system") }}${turn}{{ end }}` : turn}
{{- if and $last (ne .Role "assistant") }}${header("assistant")}{{ end }}
{{- end }}`;
  // Llama 3.1 and 3.2 always open with a system turn holding a fixed preamble (knowledge cutoff, date).
  const fixed = new RegExp(`^${escape(header("system"))}([\\s\\S]*?)<\\|eot_id\\|>`).exec(one)?.[1];
  if (fixed === undefined) return { family: "llama3", stop: "<|eot_id|>", template: turns(false) };
  const preamble = literal(fixed);
  if (preamble === undefined) return undefined;
  const system = `${header("system")}${preamble}{{ if ${FIRST_SYSTEM} }}{{ (index $.Messages 0).Content }}{{ end }}<|eot_id|>\n`;
  return { family: "llama3", stop: "<|eot_id|>", template: system + turns(true) };
}

function gemma3(prompt: JinjaPrompt): Candidate | undefined {
  if (!prompt([u(MARK.user)]).includes(`<start_of_turn>user\n${MARK.user}<end_of_turn>\n`)) return undefined;
  // The system prompt opens the first user turn, as the Gemma 3 template folds it.
  return {
    family: "gemma3",
    stop: "<end_of_turn>",
    template: `${RANGE}
{{- if eq .Role "user" }}<start_of_turn>user
{{ if and $.System (eq $i 1) }}{{ $.System }}

{{ end }}{{ .Content }}<end_of_turn>
{{ else if eq .Role "assistant" }}<start_of_turn>model
{{ .Content }}{{ if not $last }}<end_of_turn>
{{ end }}
{{- end }}
{{- if and $last (ne .Role "assistant") }}<start_of_turn>model
{{ end }}
{{- end }}`,
  };
}

function mistral(prompt: JinjaPrompt): Candidate | undefined {
  // [INST] frames: the text around the first user turn, and what joins an answer to the next question.
  const one = prompt([u(MARK.user)]);
  const at = one.indexOf(MARK.user);
  if (at < 0 || !one.slice(0, at).includes("[INST]")) return undefined;
  const open = literal(one.slice(0, at));
  const close = literal(one.slice(at + MARK.user.length));
  const three = prompt([u(MARK.user), a(MARK.assistant), u(MARK.user2)]);
  const between = /PROBE-U1([\s\S]*?)PROBE-A1([\s\S]*?)PROBE-U2/.exec(three);
  const after = literal(between?.[1] ?? "");
  const sep = literal(between?.[2] ?? "");
  if (!open || close === undefined || !between || after !== close || sep === undefined) return undefined;
  return {
    family: "mistral",
    stop: "</s>",
    template: `${RANGE}
{{- if eq .Role "user" }}{{ if or (eq $i 0) (and (eq $i 1) $.System) }}${open}{{ end }}{{ if and $.System (eq $i 1) }}{{ $.System }}

{{ end }}{{ .Content }}${close}
{{- else if eq .Role "assistant" }}{{ .Content }}{{ if not $last }}${sep}{{ end }}
{{- end }}
{{- end }}`,
  };
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Every family whose markers the template writes, most specific first. */
export function candidates(prompt: JinjaPrompt): Candidate[] {
  return [chatml, llama3, gemma3, mistral].map((f) => f(prompt)).filter((c): c is Candidate => c !== undefined);
}

export const FAMILIES: readonly FamilyName[] = ["chatml", "llama3", "gemma3", "mistral"];
