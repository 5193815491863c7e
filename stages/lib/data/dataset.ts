// Reading and validating jsonl training data: every bad line is reported with its file and line.
import { readFile } from "node:fs/promises";
import { relative } from "node:path";
import type { z } from "zod";
import { zod } from "../../../engine/packages.ts";

const ROLES = ["system", "user", "assistant", "tool"] as const;

function messageSchema(zod: typeof z) {
  return zod
    .object({
      role: zod.string(),
      content: zod.string(),
      tool_calls: zod.array(zod.unknown()).optional(),
    })
    .passthrough();
}

export type Message = z.output<ReturnType<typeof messageSchema>>;

export type Example =
  | { readonly format: "messages"; readonly messages: readonly Message[]; readonly tools?: readonly unknown[] }
  | { readonly format: "completions"; readonly prompt: string; readonly completion: string }
  | { readonly format: "text"; readonly text: string };

export interface Located<T> {
  readonly value: T;
  /** "data/train.jsonl:57", for error messages. */
  readonly origin: string;
}

const MAX_REPORTED = 20;

export class DataErrors extends Error {
  constructor(readonly problems: readonly string[]) {
    const shown = problems.slice(0, MAX_REPORTED);
    const more = problems.length > MAX_REPORTED ? `\n  ... and ${problems.length - MAX_REPORTED} more` : "";
    super(`${problems.length} problem${problems.length === 1 ? "" : "s"} in the training data:\n  ${shown.join("\n  ")}${more}`);
    this.name = "DataErrors";
  }
}

function show(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? "nothing" : text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

export type ExampleParser = (raw: unknown) => Example | string;

/** The line checker; zod is loaded here, by the nodes that read data, so planning a build never loads it. */
export async function exampleParser(): Promise<ExampleParser> {
  const schema = messageSchema(zod().z);
  return (raw) => parseExample(schema, raw);
}

/** Why one parsed line is not a training example, or the example. */
function parseExample(schema: ReturnType<typeof messageSchema>, raw: unknown): Example | string {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return `expected a JSON object, got ${show(raw)}`;
  const obj = raw as Record<string, unknown>;
  if ("messages" in obj) {
    if (!Array.isArray(obj.messages) || obj.messages.length === 0) return `"messages" must be a non-empty list, got ${show(obj.messages)}`;
    const messages: Message[] = [];
    for (const [i, m] of obj.messages.entries()) {
      const parsed = schema.safeParse(m);
      if (!parsed.success) {
        const key = parsed.error.issues[0]?.path.join(".") ?? "";
        const value = key ? (m as Record<string, unknown> | null)?.[key] : m;
        return `messages[${i}]${key ? `.${key}` : ""} must be a string${key === "" ? " object with role and content" : ""}, got ${show(value)}`;
      }
      const msg = parsed.data;
      if (!(ROLES as readonly string[]).includes(msg.role)) return `role "${msg.role}" is not one of ${ROLES.join(", ")} (messages[${i}])`;
      if (msg.content.trim() === "" && !msg.tool_calls) return `messages[${i}] (${msg.role}) has empty content`;
      messages.push(msg);
    }
    if (!messages.some((m) => m.role === "assistant")) return `no assistant message: there is nothing to learn from this example`;
    const tools = Array.isArray(obj.tools) ? (obj.tools as unknown[]) : undefined;
    return { format: "messages", messages, ...(tools ? { tools } : {}) };
  }
  if ("prompt" in obj || "completion" in obj) {
    if (typeof obj.prompt !== "string" || obj.prompt.trim() === "") return `"prompt" must be a non-empty string, got ${show(obj.prompt)}`;
    if (typeof obj.completion !== "string" || obj.completion.trim() === "") return `"completion" must be a non-empty string, got ${show(obj.completion)}`;
    return { format: "completions", prompt: obj.prompt, completion: obj.completion };
  }
  if ("text" in obj) {
    if (typeof obj.text !== "string" || obj.text.trim() === "") return `"text" must be a non-empty string, got ${show(obj.text)}`;
    return { format: "text", text: obj.text };
  }
  return `a line needs "messages", "prompt" and "completion", or "text"; this one has ${Object.keys(obj).map((k) => `"${k}"`).join(", ") || "no keys"}`;
}

/** Reads jsonl files; one format across all of them. Throws DataErrors listing every bad line. */
export async function readExamples(files: readonly string[], root: string): Promise<Located<Example>[]> {
  const parseExample = await exampleParser();
  const problems: string[] = [];
  const examples: Located<Example>[] = [];
  let first: Located<Example> | undefined;
  for (const file of files) {
    const name = relative(root, file) || file;
    const text = await readFile(file, "utf8");
    const lines = text.split("\n");
    let count = 0;
    lines.forEach((line, i) => {
      if (line.trim() === "") return;
      const origin = `${name}:${i + 1}`;
      let raw: unknown;
      try {
        raw = JSON.parse(line);
      } catch (e) {
        problems.push(`${origin}: not valid JSON (${(e as Error).message})`);
        return;
      }
      const parsed = parseExample(raw);
      if (typeof parsed === "string") {
        problems.push(`${origin}: ${parsed}`);
        return;
      }
      count++;
      first ??= { value: parsed, origin };
      if (parsed.format !== first.value.format) {
        problems.push(`${origin}: this line is in ${parsed.format} form but ${first.origin} is in ${first.value.format} form; mlx-lm reads one form per dataset`);
        return;
      }
      examples.push({ value: parsed, origin });
    });
    if (count === 0 && !problems.some((p) => p.startsWith(`${name}:`))) problems.push(`${name}: the file holds no examples`);
  }
  if (problems.length > 0) throw new DataErrors(problems);
  return examples;
}

/** The line mlx-lm reads for an example: only the keys it understands. */
export function toJsonl(example: Example): string {
  switch (example.format) {
    case "messages":
      return JSON.stringify(example.tools ? { messages: example.messages, tools: example.tools } : { messages: example.messages });
    case "completions":
      return JSON.stringify({ prompt: example.prompt, completion: example.completion });
    case "text":
      return JSON.stringify({ text: example.text });
    default: {
      const never: never = example;
      return never;
    }
  }
}
