// Node formatted (the "gemma jsonl"): every example rendered with the model's own chat template, so a
// template error shows now, naming the example's file and line, rather than an hour into training.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { PipelineConfig } from "../config/schema.ts";
import type { BaseCtx, NodeSpec } from "../engine/types.ts";
import { UserError } from "../engine/types.ts";
import type { ChatTemplate, TemplateRules } from "./lib/data/chat-template.ts";
import type { Example, Message } from "./lib/data/dataset.ts";
import { parseModelRef } from "../config/model-ref.ts";
import { modelDir } from "./lib/model/model-ref.ts";
import { pyScript, runPython, toolVersions } from "./lib/toolchain/tools.ts";
import { loadSplits, ORIGINS, SPLITS, type Split } from "./data.ts";
import { tinyTokenizerDir } from "./model.ts";
import type { DataText } from "./lib/llama/tokenizer-parity.ts";

// The template and data readers are imported by the guard and the run: a no-op build loads this module for its inputs alone.
const TOKENS_SCRIPT = pyScript("token_lengths.py");
export const STATS = "stats.json";

export interface FormatStats {
  readonly format: "messages" | "text";
  readonly rules: TemplateRules | null;
  readonly changed: number;
  readonly examples: Record<string, number>;
  readonly tokens: { readonly max: number; readonly mean: number; readonly over: number };
}

interface Rendered {
  /** The line written for mlx-lm. */
  readonly line: string;
  /** The full rendered conversation, for counting tokens. */
  readonly text: string;
  readonly changed: boolean;
}

export function asMessages(example: Example): Message[] | undefined {
  switch (example.format) {
    case "messages":
      return [...example.messages];
    case "completions":
      // mlx-lm turns prompt/completion into exactly this pair before applying the template.
      return [
        { role: "user", content: example.prompt },
        { role: "assistant", content: example.completion },
      ];
    case "text":
      return undefined;
    default: {
      const never: never = example;
      return never;
    }
  }
}

/** What rendering needs, loaded by the guard and the run. */
async function renderLib() {
  const [template, dataset] = await Promise.all([import("./lib/data/chat-template.ts"), import("./lib/data/dataset.ts")]);
  return { ...template, ...dataset };
}
type RenderLib = Awaited<ReturnType<typeof renderLib>>;

/** Renders one example the way it will be trained on; throws with the template's own message. */
function renderExample(lib: RenderLib, example: Example, template: ChatTemplate | undefined, rules: TemplateRules | null, format: "messages" | "text"): Rendered {
  const { normalizeMessages, toJsonl } = lib;
  const messages = asMessages(example);
  if (!messages) return { line: toJsonl(example), text: (example as { text: string }).text, changed: false };
  if (!template || !rules) throw new Error("the model has no chat template, so chat-form data cannot be rendered; use {\"text\"} lines or a model with a template");
  const normalized = normalizeMessages(messages, rules);
  const tools = example.format === "messages" ? example.tools : undefined;
  const text = template.render(normalized.messages, { tools });
  if (format === "text") {
    // The tokenizer adds BOS itself: a literal one in the text would make two.
    const bare = lib.withoutAddedBos(template, text);
    return { line: JSON.stringify({ text: bare }), text, changed: normalized.changed };
  }
  const line = example.format === "completions" && !normalized.changed ? toJsonl(example) : JSON.stringify({ messages: normalized.messages, ...(tools ? { tools } : {}) });
  return { line, text, changed: normalized.changed };
}

/**
 * Every example as the model will see it (rendered with the chat template of the model in `dir`), by its
 * origin, for the tokenizer-parity check; undefined when the data cannot be read or rendered, which the data
 * and formatted guards report.
 */
export async function trainingTexts(config: PipelineConfig, root: string, dir: string): Promise<DataText[] | undefined> {
  const splits = await loadSplits(config, root).catch(() => undefined);
  if (!splits) return undefined;
  const lib = await renderLib();
  const template = await lib.loadChatTemplate(dir);
  const rules = template ? lib.probeRules(template) : null;
  try {
    return SPLITS.flatMap((split) => splits[split].map(({ value, origin }) => ({ origin, text: renderExample(lib, value, template, rules, config.format).text })));
  } catch {
    return undefined;
  }
}

/** Where the chat template can be read now: the model folder, or for a tiny model not yet built its npm package. */
export async function templateDirForGuard(ctx: BaseCtx<PipelineConfig>): Promise<string | undefined> {
  const { guardModelDir } = await import("./lib/model/model-ref.ts");
  const dir = await guardModelDir(ctx);
  if (dir) return dir;
  const ref = parseModelRef(ctx.config.model, ctx.root);
  return ref.kind === "tiny" ? tinyTokenizerDir(ref.family) : undefined;
}

export const formattedNode: NodeSpec<PipelineConfig> = {
  id: "formatted",
  deps: ["data", "model", "mlx-env"],
  description: "examples rendered with the model's chat template",
  inputs: async (ctx) => ({
    files: [TOKENS_SCRIPT],
    params: { format: ctx.config.format, max_seq_length: ctx.config.lora.max_seq_length },
    tools: await toolVersions(ctx.upstream("mlx-env"), ["transformers"]),
    command: "render with the chat template",
  }),
  async guard(ctx) {
    const dir = await templateDirForGuard(ctx);
    if (!dir) return [{ level: "ok", code: "template.later", message: "the chat template is checked once the model is fetched" }];
    const lib = await renderLib();
    const { DataErrors, loadChatTemplate, probeRules } = lib;
    const template = await loadChatTemplate(dir);
    const splits = await loadSplits(ctx.config, ctx.root).catch(() => undefined);
    if (!splits) return []; // the data node's guard reports why
    if (!template && splits.train[0]?.value.format !== "text") {
      return [
        {
          level: "error",
          code: "template.missing",
          message: `${dir} has no chat template (neither chat_template.jinja nor chat_template in tokenizer_config.json), so chat-form data cannot be rendered.`,
          fix: "Use an instruct model (it ships a template), add chat_template.jinja to the folder, or give the data as {\"text\"} lines.",
        },
      ];
    }
    const rules = template ? probeRules(template) : null;
    const problems: string[] = [];
    let changed = 0;
    for (const split of SPLITS) {
      for (const { value, origin } of splits[split]) {
        try {
          changed += renderExample(lib, value, template, rules, ctx.config.format).changed ? 1 : 0;
        } catch (e) {
          problems.push(`${origin}: the chat template raised: ${(e as Error).message}`);
        }
      }
    }
    if (problems.length > 0) {
      return [
        {
          level: "error",
          code: "template.rejects",
          message: new DataErrors(problems).message,
          fix: "Fix those examples, or remove them; Gemma templates take only alternating user/assistant turns and no tool turns.",
        },
      ];
    }
    const folded = rules?.foldSystem || rules?.strictAlternation ? ` (${changed} examples will be folded into alternating user/assistant turns)` : "";
    return [{ level: "ok", code: "template.ok", message: `every example renders with the chat template${folded}` }];
  },
  async run(ctx) {
    const dir = await modelDir(ctx.upstream("model"), ctx.root);
    const lib = await renderLib();
    const { DataErrors, exampleParser, loadChatTemplate, probeRules } = lib;
    const template = await loadChatTemplate(dir);
    const rules = template ? probeRules(template) : null;
    const origins = JSON.parse(await readFile(join(ctx.upstream("data"), ORIGINS), "utf8")) as Partial<Record<Split, string[]>>;
    const problems: string[] = [];
    const rendered: string[] = [];
    const examples: Record<string, number> = {};
    let changed = 0;
    const parseExample = await exampleParser();
    for (const split of SPLITS) {
      const lines = origins[split];
      if (!lines) continue;
      const raw = (await readFile(join(ctx.upstream("data"), `${split}.jsonl`), "utf8")).split("\n").filter(Boolean);
      const out: string[] = [];
      raw.forEach((line, i) => {
        const example = parseExample(JSON.parse(line));
        if (typeof example === "string") throw new UserError(`${ctx.upstream("data")}/${split}.jsonl:${i + 1}: ${example}; rebuild with --force data`);
        try {
          const r = renderExample(lib, example, template, rules, ctx.config.format);
          out.push(r.line);
          rendered.push(JSON.stringify({ text: r.text }));
          changed += r.changed ? 1 : 0;
        } catch (e) {
          problems.push(`${lines[i] ?? `${split}.jsonl:${i + 1}`}: the chat template raised: ${(e as Error).message}`);
        }
      });
      examples[split] = out.length;
      await writeFile(join(ctx.staging, `${split}.jsonl`), out.join("\n") + "\n");
    }
    if (problems.length > 0) throw new DataErrors(problems);
    if (changed > 0) ctx.note(`folded system prompts / merged turns in ${changed} examples, as this model's template requires`);

    const renderedPath = join(ctx.scratch, "rendered.jsonl");
    await writeFile(renderedPath, rendered.join("\n") + "\n");
    const maxSeq = ctx.config.lora.max_seq_length;
    const tokens = (await runPython(ctx, "mlx-env", [TOKENS_SCRIPT, dir, renderedPath, String(maxSeq)], "counting tokens")) as FormatStats["tokens"];
    if (tokens.over > 0) ctx.note(`${tokens.over} examples are longer than lora.max_seq_length=${maxSeq} tokens and will be truncated (longest: ${tokens.max})`);
    const stats: FormatStats = { format: ctx.config.format, rules, changed, examples, tokens };
    await writeFile(join(ctx.staging, STATS), JSON.stringify(stats, null, 2) + "\n");
  },
};
