// Node ollama: a Modelfile that makes `ollama create` serve the trained model as it was trained: FROM the
// GGUF, an explicit TEMPLATE translated from the model's Jinja chat template (without one Ollama guesses from a
// short list and falls back to `{{ .Prompt }}`), one stop per end-of-generation token, num_ctx within the
// trained length, SYSTEM only when training used one. Never Ollama's safetensors ADAPTER: it reads
// lora_alpha, which mlx-lm does not write. The TEMPLATE is proven by rendering probes and the training
// data's own conversations through both templates (Go's text/template, as Ollama does) and comparing bytes.
import { readFile, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import type { PipelineConfig } from "../config/schema.ts";
import type { BaseCtx, NodeSpec, Verdict } from "../engine/types.ts";
import { UserError } from "../engine/types.ts";
import { toolFile } from "./lib/toolchain/paths.ts";
import { modelDir } from "./lib/model/model-ref.ts";
import type { Example, Message } from "./lib/data/dataset.ts";
import type { Conversation, JinjaChat } from "./lib/ollama/translate.ts";
import { ORIGINS } from "./data.ts";
import { asMessages, templateDirForGuard } from "./formatted.ts";
import { GGUF_FILE } from "./gguf.ts";

export const MODELFILE = "Modelfile";
export const TEMPLATE_CHECK = "template-check.json";
/** The Go checker's source (lib/ollama/go-renderer.ts builds and runs it): its edits rerun the node. */
const RENDER_GO = toolFile("stages", "lib", "ollama", "render.go");
/** How many training conversations are rendered through both templates, besides the probes. */
const CHECKED_EXAMPLES = 20;

export interface TemplateCheck {
  /** The Ollama release whose template data the Go checker builds. */
  readonly ollama: string;
  readonly family: string;
  /** Conversations rendered byte-equal: the probes plus the training examples. */
  readonly checked: number;
  readonly probes: number;
  readonly training_examples: number;
}

/** The translated (or hand-written) Go template and the end-of-turn token it implies. */
async function goTemplate(ctx: BaseCtx<PipelineConfig>, chat: JinjaChat): Promise<{ family: string; template: string; stop: string | undefined }> {
  const hand = ctx.config.ollama.template;
  if (hand === undefined) return (await import("./lib/ollama/translate.ts")).translate(chat);
  const path = resolve(ctx.root, hand);
  const template = await readFile(path, "utf8").catch((e: Error) => {
    throw new UserError(`ollama.template in pipeline.yaml names ${path}, which cannot be read (${e.message}); give the path of your Go template file, relative to pipeline.yaml.`);
  });
  return { family: `hand-written (${hand})`, template, stop: undefined };
}

/** The model's chat template, as Ollama's prompt must reproduce it, and the tokenizer's EOS. */
async function jinjaFor(dir: string): Promise<{ chat: JinjaChat; eos: string | undefined }> {
  const [{ loadChatTemplate }, { jinjaChat }] = await Promise.all([import("./lib/data/chat-template.ts"), import("./lib/ollama/translate.ts")]);
  const template = await loadChatTemplate(dir);
  if (!template) {
    throw new UserError(`${dir} has no chat template (neither chat_template.jinja nor chat_template in tokenizer_config.json), so there is no chat format to give Ollama.`);
  }
  return { chat: jinjaChat(template), eos: template.eosToken };
}

/** The training conversations up to their last user turn: what Ollama's prompt for that turn must equal. */
function prompts(examples: readonly { origin: string; messages: readonly Message[] }[]): Conversation[] {
  return examples.flatMap(({ origin, messages }) => {
    const last = messages.map((m) => m.role).lastIndexOf("user");
    return last < 0 ? [] : [{ origin, messages: messages.slice(0, last + 1) }];
  });
}

/** The training split's chat examples with their origins (data/x.jsonl:3). */
async function trainingChats(dataDir: string): Promise<{ origin: string; messages: readonly Message[] }[]> {
  const { exampleParser } = await import("./lib/data/dataset.ts");
  const parse = await exampleParser();
  const path = join(dataDir, "train.jsonl");
  const origins = (JSON.parse(await readFile(join(dataDir, ORIGINS), "utf8")) as { train?: string[] }).train ?? [];
  const lines = (await readFile(path, "utf8")).split("\n").filter(Boolean);
  return lines.flatMap((line, i) => {
    const example: Example | string = parse(JSON.parse(line));
    if (typeof example === "string") throw new UserError(`${path}:${i + 1}: ${example}; rebuild it with --force data`);
    const messages = asMessages(example);
    return messages ? [{ origin: origins[i] ?? `${path}:${i + 1}`, messages }] : [];
  });
}

/** The system prompt every training conversation opened with, if they all share one: anything else is the caller's to send. */
function trainedSystem(chats: readonly { messages: readonly Message[] }[]): string | undefined {
  const systems = new Set(chats.map((c) => (c.messages[0]?.role === "system" ? c.messages[0].content : undefined)));
  const [only] = systems;
  return systems.size === 1 ? only : undefined;
}

export const ollamaNode: NodeSpec<PipelineConfig> = {
  id: "ollama",
  deps: ["gguf", "model", "data"],
  description: "an Ollama Modelfile, its TEMPLATE proven against the chat template",
  inputs: (ctx) => ({
    files: [RENDER_GO, ...(ctx.config.ollama.template ? [resolve(ctx.root, ctx.config.ollama.template)] : [])],
    params: { ollama: ctx.config.ollama, max_seq_length: ctx.config.lora.max_seq_length, checked_examples: CHECKED_EXAMPLES },
    tools: {},
    command: ["translate the chat template", "write Modelfile", "render.go: Go text/template vs Jinja"],
  }),
  async guard(ctx) {
    const verdicts: Verdict[] = [];
    const maxSeq = ctx.config.lora.max_seq_length;
    const numCtx = ctx.config.ollama.num_ctx;
    if (numCtx !== undefined && numCtx > maxSeq) {
      verdicts.push({
        level: "error",
        code: "ollama.num-ctx",
        message: `ollama.num_ctx is ${numCtx}, more than lora.max_seq_length (${maxSeq}): the model never trained on contexts that long.`,
        fix: `Set ollama.num_ctx to ${maxSeq} or less (or leave it out), or train with a larger lora.max_seq_length.`,
      });
    }
    // The chat template is the base model's, so whether Ollama can be given it is known before training.
    const dir = await templateDirForGuard(ctx);
    if (!dir) return [...verdicts, { level: "ok", code: "ollama.later", message: "the chat template's translation is checked once the model is fetched" }];
    const { checkModelfile, PROBES, UntranslatableTemplate } = await import("./lib/ollama/translate.ts");
    try {
      const { chat } = await jinjaFor(dir);
      const { family, template } = await goTemplate(ctx, chat);
      const { modelfileText } = await import("./lib/ollama/modelfile.ts");
      const check = await checkModelfile(chat, modelfileText({ from: GGUF_FILE, template, stops: [] }), undefined, PROBES);
      if (!check.ok) throw new UntranslatableTemplate(`${ctx.config.ollama.template}: ${check.why}`, `Fix the template until it renders as ${chat.source} does.`);
      verdicts.push({ level: "ok", code: "ollama.template", message: `Ollama TEMPLATE ${family}: ${check.checked} probe conversations render byte for byte as the chat template does` });
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      const { problem, fix } = e instanceof UntranslatableTemplate ? e : { problem: e.message, fix: "Fix what it says, then run `check ollama` again." };
      verdicts.push({ level: "error", code: "ollama.template", message: problem, fix });
    }
    return verdicts;
  },
  async run(ctx) {
    const dir = await modelDir(ctx.upstream("model"), ctx.root);
    const { chat, eos } = await jinjaFor(dir);
    const { family, template, stop } = await goTemplate(ctx, chat);
    const [{ checkModelfile, PROBES }, { modelfileText }, { endTokens }] = await Promise.all([
      import("./lib/ollama/translate.ts"),
      import("./lib/ollama/modelfile.ts"),
      import("./lib/ollama/stops.ts"),
    ]);
    const stops = await endTokens(dir, eos, stop);
    const chats = await trainingChats(ctx.upstream("data"));
    const system = trainedSystem(chats);
    const numCtx = ctx.config.ollama.num_ctx ?? ctx.config.lora.max_seq_length;
    // Ollama resolves FROM against the Modelfile's folder: models/ollama, beside models/gguf.
    const from = relative(join(dirname(ctx.upstream("gguf")), ollamaNode.id), join(ctx.upstream("gguf"), GGUF_FILE));
    let text: string;
    try {
      text = modelfileText({ from, template, stops, numCtx, system });
    } catch (e) {
      throw new UserError(`models/ollama/${MODELFILE} cannot be written: ${(e as Error).message}.`);
    }
    await writeFile(join(ctx.staging, MODELFILE), text);

    const examples = prompts(chats).slice(0, CHECKED_EXAMPLES);
    const check = await checkModelfile(chat, text, system, [...PROBES, ...examples]);
    if (!check.ok) {
      throw new UserError(
        `models/ollama/${MODELFILE}: its TEMPLATE (${family}) does not give the prompt ${chat.source} gives: ${check.why}\n` +
          "  Ollama would show the model another format than it trained on. Give a template that renders alike as ollama.template in pipeline.yaml.",
      );
    }
    const { OLLAMA_VERSION } = await import("./lib/ollama/go-renderer.ts");
    const record: TemplateCheck = { ollama: OLLAMA_VERSION, family, checked: check.checked, probes: PROBES.length, training_examples: examples.length };
    await writeFile(join(ctx.staging, TEMPLATE_CHECK), JSON.stringify(record, null, 2) + "\n");
    ctx.note(
      `ollama: TEMPLATE (${family}) renders ${check.checked}/${check.checked} conversations (${PROBES.length} probes, ${examples.length} training examples) byte for byte as the Jinja template, ` +
        `checked with Go's text/template as Ollama ${OLLAMA_VERSION} renders; stop ${stops.join(" ")}; num_ctx ${numCtx}; ${system === undefined ? "no SYSTEM" : "SYSTEM from the training data"}`,
    );
  },
};
