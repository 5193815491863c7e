// Node eval: what the fine-tune changed, on the held-out test split. Greedy answers of the base model, the
// fine-tuned one (mlx-lm on `fused`) and the GGUF (llama.cpp, in a child process), scored against the
// reference answers; test loss and perplexity of base and fine-tuned (mlx-lm's own --test, computed in the
// process that answers); and how often the GGUF answers exactly like the model it was converted from.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PipelineConfig } from "../config/schema.ts";
import type { BaseCtx, NodeSpec, RunCtx, Verdict } from "../engine/types.ts";
import { UserError } from "../engine/types.ts";
import type { Example, Message } from "./lib/data/dataset.ts";
import { modelDir } from "./lib/model/model-ref.ts";
import { toolFile } from "./lib/toolchain/paths.ts";
import { MLX_CONDITIONS, mlxConditions, pyScript, runPython, toolVersions } from "./lib/toolchain/tools.ts";
import { loadSplits } from "./data.ts";
import { asMessages } from "./formatted.ts";
import { convert, GGUF_FILE } from "./gguf.ts";

const ANSWERS_SCRIPT = pyScript("eval_answers.py");
export const EVAL_FILE = "eval.json";
/** Before/after examples shown in the terminal. */
const SHOWN = 3;
/** What deploy.check adds to eval's inputs. */
const DEPLOYED = ["lora-gguf", "base-gguf", "llama-server"];

/** One test example as a chat prompt (rendered with the template) and the answer it should get. */
interface Case {
  readonly question: string;
  /** The conversation the prompt renders, for a server that applies the template itself. */
  readonly messages: readonly Message[];
  readonly prompt: string;
  readonly reference: string;
}

/** The conversation up to its last assistant turn, and that turn: a prompt and its reference answer. */
function split(example: Example): { messages: Message[]; reference: string } | undefined {
  const messages = asMessages(example);
  if (!messages) return undefined;
  const last = messages.map((m) => m.role).lastIndexOf("assistant");
  if (last < 0) return undefined;
  return { messages: messages.slice(0, last), reference: messages[last]!.content };
}

/** Text without case, punctuation or spacing differences: "94 m = 9400 cm." and "94 m = 9,400 cm" still differ. */
export function normalize(text: string): string {
  return text
    .normalize("NFKC")
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, " ")
    .trim();
}

async function testExamples(config: PipelineConfig, root: string): Promise<Example[]> {
  return (await loadSplits(config, root)).test.map((e) => e.value);
}

function guardVerdicts(config: PipelineConfig, test: readonly Example[]): Verdict[] {
  if (test.length === 0) {
    return [
      {
        level: "error",
        code: "eval.no-test",
        message: config.data.splits ? "data.splits names no test file, so there is nothing held out to evaluate on." : `data.test_fraction is ${config.data.test_fraction}: the test split is empty, so there is nothing held out to evaluate on.`,
        fix: config.data.splits ? "Add `test: your-test.jsonl` to data.splits." : "Set data.test_fraction to 0.1 (examples the model never trains on).",
      },
    ];
  }
  const answered = test.filter((e) => split(e) !== undefined).length;
  if (answered === 0) {
    const text = test.every((e) => e.format === "text");
    return [
      {
        level: "error",
        code: text && config.format === "text" ? "eval.text-format" : "eval.no-answers",
        message: text
          ? `The test split is in {"text"} form: eval cannot tell a prompt from its answer in pre-rendered text${config.format === "text" ? " (format: text)" : ""}.`
          : "No test example has an assistant answer to compare with.",
        fix: 'Give the data as {"messages": [...]} or {"prompt", "completion"} lines (format: text still trains on them pre-rendered), or do not build eval.',
      },
    ];
  }
  const skipped = test.length - answered;
  return [
    {
      level: "ok",
      code: "eval.test",
      message: `eval compares answers on ${Math.min(answered, config.eval.max_examples)} held-out test examples${skipped > 0 ? ` (${skipped} without an assistant answer skipped)` : ""}`,
    },
  ];
}

async function cases(ctx: BaseCtx<PipelineConfig>, base: string): Promise<Case[]> {
  // Loaded by the run: a no-op build loads this module for its inputs alone.
  const [{ loadChatTemplate, normalizeMessages, probeRules, withoutAddedBos }, { exampleParser }] = await Promise.all([import("./lib/data/chat-template.ts"), import("./lib/data/dataset.ts")]);
  const template = await loadChatTemplate(base);
  if (!template) throw new UserError(`${base} has no chat template: eval renders its prompts with it.`);
  const rules = probeRules(template);
  const parse = await exampleParser();
  const lines = (await readFile(join(ctx.upstream("data"), "test.jsonl"), "utf8")).split("\n").filter(Boolean);
  const out: Case[] = [];
  for (const line of lines) {
    const example = parse(JSON.parse(line));
    const parts = typeof example === "string" ? undefined : split(example);
    if (!parts) continue;
    const { messages } = normalizeMessages(parts.messages, rules);
    // The prompt as the models see it at inference: without the BOS the tokenizer adds itself.
    const prompt = withoutAddedBos(template, template.render(messages, { addGenerationPrompt: true }));
    out.push({ question: parts.messages.filter((m) => m.role === "user").at(-1)?.content ?? "", messages, prompt, reference: parts.reference });
    if (out.length >= ctx.config.eval.max_examples) break;
  }
  return out;
}

interface Answer {
  readonly text: string;
  readonly tokens: readonly number[];
}

interface Loss {
  readonly loss: number;
  readonly ppl: number;
}

/**
 * Greedy answers of an mlx-lm model to the prompts, then its test loss on the formatted test split, computed as
 * `mlx_lm lora --test` computes it (eval_answers.py runs mlx-lm's own parser, dataset loading and evaluate()): one
 * process, so the model is imported and loaded once for both.
 */
async function mlxEval(ctx: RunCtx<PipelineConfig>, model: string, prompts: readonly string[], testExamples: number, what: string): Promise<{ answers: Answer[]; test: Loss }> {
  const l = ctx.config.lora;
  const testArgs = ["--data", ctx.upstream("formatted"), "--test-batches", "-1", "--batch-size", String(Math.max(1, Math.min(l.batch_size, testExamples))), "--max-seq-length", String(l.max_seq_length)];
  if (l.mask_prompt) testArgs.push("--mask-prompt");
  const dir = await mkdtemp(join(tmpdir(), "eval-"));
  try {
    await writeFile(join(dir, "request.json"), JSON.stringify({ prompts, max_tokens: ctx.config.eval.max_tokens, test_args: testArgs }));
    ctx.progress(`${what}: answering ${prompts.length} test prompts (mlx-lm, greedy)`);
    await runPython(ctx, "mlx-env", [ANSWERS_SCRIPT, model, join(dir, "request.json"), join(dir, "answer.json")], `${what}: answering the test prompts and its test loss`, {
      onLine: (line) => (line.startsWith("answered ") || line.startsWith("test loss")) && ctx.progress(`${what}: ${line}`),
    });
    return JSON.parse(await readFile(join(dir, "answer.json"), "utf8")) as { answers: Answer[]; test: Loss };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function ggufAnswers(ctx: RunCtx<PipelineConfig>, gguf: string, prompts: readonly string[], what: string, lora?: string): Promise<Answer[]> {
  const { askLlamaCpp } = await import("./lib/llama/child.ts");
  ctx.progress(`${what}: answering ${prompts.length} test prompts (llama.cpp, greedy)`);
  const request = { model: gguf, ...(lora ? { lora } : {}), answers: { prompts, maxTokens: ctx.config.eval.max_tokens } };
  const answer = await askLlamaCpp(ctx.exec, request, { what: `answering the test prompts with ${gguf}${lora ? ` + ${lora}` : ""}`, timeoutMs: 120_000 + prompts.length * 30_000 });
  return (answer.answers ?? []).map((a) => ({ text: a.text, tokens: a.tokens }));
}

interface Score {
  readonly exact: number;
  readonly normalized: number;
}

function score(answers: readonly Answer[], refs: readonly string[]): Score {
  return {
    exact: answers.filter((a, i) => a.text.trim() === refs[i]!.trim()).length,
    normalized: answers.filter((a, i) => normalize(a.text) === normalize(refs[i]!)).length,
  };
}

/**
 * Answers that are the same tokens (the GGUF keeps the model's token ids). Not the texts: llama.cpp's detokenizer
 * drops a space before punctuation (" ." → ".") where transformers 5 no longer does, so equal tokens can read apart.
 */
function agreement(a: readonly Answer[], b: readonly Answer[]): number {
  return a.filter((x, i) => b[i] !== undefined && x.tokens.length === b[i].tokens.length && x.tokens.every((t, j) => t === b[i]!.tokens[j])).length;
}

const ratio = (k: number, n: number) => `${k}/${n}`;
const clip = (text: string, n = 60) => JSON.stringify(text.length > n ? `${text.slice(0, n - 1)}…` : text);

export function evalNode(config: PipelineConfig): NodeSpec<PipelineConfig> {
  // A quantized GGUF is also compared with the f16 conversion of the same model, to tell quantization's
  // share of the differences from the conversion's.
  const quantized = config.gguf.quantize !== undefined || !["f32", "f16", "bf16"].includes(config.gguf.outtype);
  // deploy.check: the deployed files answer too (base GGUF + LoRA GGUF in llama.cpp, the GGUF in llama-server).
  const deployed = config.deploy.check;
  return {
    id: "eval",
    deps: ["gguf", "fused", "model", "data", "formatted", "mlx-env", ...(quantized ? ["hf", "llama-cpp"] : []), ...(deployed ? DEPLOYED : [])],
    description: "base vs fine-tuned vs GGUF on the test split",
    // mlx's answers and test losses; llama.cpp's answers do not depend on its thread count (threads.mjs).
    conditions: MLX_CONDITIONS,
    inputs: async (ctx) => ({
      files: [ANSWERS_SCRIPT, toolFile("stages", "lib", "llama", "worker.mjs")],
      params: { ...ctx.config.eval, mask_prompt: ctx.config.lora.mask_prompt, batch_size: ctx.config.lora.batch_size, max_seq_length: ctx.config.lora.max_seq_length, quantized, deployed },
      tools: await toolVersions(ctx.upstream("mlx-env"), ["mlx", "mlx_lm"]),
      command: ["eval_answers.py (base, fused): greedy answers, then the test loss of mlx_lm lora --test", "llama.cpp greedy (gguf)", ...(quantized ? ["convert_hf_to_gguf.py --outtype f16"] : []), ...(deployed ? ["llama.cpp greedy (base-gguf + lora-gguf)", "llama-server --jinja /v1/chat/completions (gguf)"] : [])],
    }),
    async guard(ctx) {
      const test = await testExamples(ctx.config, ctx.root).catch(() => undefined);
      return test ? guardVerdicts(ctx.config, test) : []; // the data node's guard says why the data cannot be read
    },
    async run(ctx) {
      const base = await modelDir(ctx.upstream("model"), ctx.root);
      const fused = ctx.upstream("fused");
      const gguf = join(ctx.upstream("gguf"), GGUF_FILE);
      const tests = await cases(ctx, base);
      if (tests.length === 0) throw new UserError(`${ctx.upstream("data")}/test.jsonl has no example with an assistant answer; see \`check eval\`.`);
      const prompts = tests.map((t) => t.prompt);
      const refs = tests.map((t) => t.reference);
      const formattedTest = (await readFile(join(ctx.upstream("formatted"), "test.jsonl"), "utf8")).split("\n").filter(Boolean).length;

      const { answers: baseAnswers, test: baseLoss } = await mlxEval(ctx, base, prompts, formattedTest, "base");
      const { answers: tunedAnswers, test: tunedLoss } = await mlxEval(ctx, fused, prompts, formattedTest, "fine-tuned");
      const ggufAnswersList = await ggufAnswers(ctx, gguf, prompts, "GGUF");
      let f16Answers: Answer[] | undefined;
      if (quantized) {
        const f16 = join(ctx.scratch, "model-f16.gguf");
        await convert(ctx, f16, "f16");
        f16Answers = await ggufAnswers(ctx, f16, prompts, "f16 GGUF");
      }
      let deployAnswers: { lora: Answer[]; server: Answer[] } | undefined;
      if (deployed) {
        const [{ BASE_GGUF_FILE }, { LORA_FILE }, { serverBinary }, { serverAnswers }] = await Promise.all([
          import("./base-gguf.ts"),
          import("./lora-gguf.ts"),
          import("./llama-server.ts"),
          import("./lib/llama/server.ts"),
        ]);
        const lora = await ggufAnswers(ctx, join(ctx.upstream("base-gguf"), BASE_GGUF_FILE), prompts, "base GGUF + LoRA GGUF", join(ctx.upstream("lora-gguf"), LORA_FILE));
        const binary = await serverBinary(ctx.upstream("llama-server"));
        const served = await serverAnswers(ctx, { binary, model: gguf, maxTokens: ctx.config.eval.max_tokens }, tests.map((t) => t.messages));
        deployAnswers = { lora, server: served };
      }

      const n = tests.length;
      const scores = { base: score(baseAnswers, refs), fineTuned: score(tunedAnswers, refs), gguf: score(ggufAnswersList, refs) };
      const ggufVsFused = agreement(ggufAnswersList, tunedAnswers);
      const ggufVsF16 = f16Answers ? agreement(ggufAnswersList, f16Answers) : undefined;
      const type = ctx.config.gguf.quantize ?? ctx.config.gguf.outtype;
      // Both compared with the GGUF: the LoRA pair is the same model in another form, the server the same file.
      const deploy = deployAnswers && { loraAgreesWithGguf: agreement(deployAnswers.lora, ggufAnswersList), serverAgreesWithGguf: agreement(deployAnswers.server, ggufAnswersList) };
      const report = {
        examples: n,
        maxTokens: ctx.config.eval.max_tokens,
        base: { ...scores.base, ...baseLoss },
        fineTuned: { ...scores.fineTuned, ...tunedLoss },
        gguf: { type, ...scores.gguf, agreesWithFused: ggufVsFused, ...(ggufVsF16 !== undefined ? { agreesWithF16: ggufVsF16 } : {}) },
        ...(deploy ? { deploy } : {}),
        answers: tests.map((t, i) => ({
          question: t.question,
          reference: t.reference,
          base: baseAnswers[i]!.text,
          fineTuned: tunedAnswers[i]!.text,
          gguf: ggufAnswersList[i]!.text,
          ...(f16Answers ? { f16: f16Answers[i]!.text } : {}),
          ...(deployAnswers ? { lora: deployAnswers.lora[i]!.text, server: deployAnswers.server[i]!.text } : {}),
        })),
      };
      await writeFile(join(ctx.staging, EVAL_FILE), JSON.stringify(report, null, 2) + "\n");
      ctx.record({
        base_exact: scores.base.exact,
        fine_tuned_exact: scores.fineTuned.exact,
        gguf_agrees: ggufVsFused,
        examples: n,
        ...(deploy ? { lora_agrees: deploy.loraAgreesWithGguf, server_agrees: deploy.serverAgreesWithGguf } : {}),
        ...(await mlxConditions(ctx)),
      });

      const row = (name: string, s: Score, loss?: Loss) =>
        `  ${name.padEnd(12)}${ratio(s.exact, n).padStart(7)}${ratio(s.normalized, n).padStart(12)}${loss ? `${loss.loss.toFixed(3).padStart(11)}${loss.ppl.toFixed(2).padStart(9)}` : ""}`;
      ctx.note(`base ${ratio(scores.base.exact, n)} → fine-tuned ${ratio(scores.fineTuned.exact, n)} exact; GGUF agrees on ${ratio(ggufVsFused, n)}${ggufVsF16 !== undefined ? ` (with the f16 GGUF on ${ratio(ggufVsF16, n)})` : ""}${
          deploy ? `; base+LoRA GGUF agrees with the GGUF on ${ratio(deploy.loraAgreesWithGguf, n)}, llama-server on ${ratio(deploy.serverAgreesWithGguf, n)}` : ""
        }`);
      ctx.note(`  ${"".padEnd(12)}${"exact".padStart(7)}${"normalized".padStart(12)}${"test loss".padStart(11)}${"ppl".padStart(9)}`);
      ctx.note(row("base", scores.base, baseLoss));
      ctx.note(row("fine-tuned", scores.fineTuned, tunedLoss));
      ctx.note(row(`GGUF ${type}`, scores.gguf));
      // Before/after: the examples the fine-tune fixed first, then any.
      const right = (answers: readonly Answer[], i: number) => answers[i]!.text.trim() === refs[i]!.trim();
      const indices = tests.map((_, i) => i);
      const fixed = indices.filter((i) => right(tunedAnswers, i) && !right(baseAnswers, i));
      for (const i of [...fixed, ...indices.filter((i) => !fixed.includes(i))].slice(0, SHOWN)) {
        ctx.note(`  ${clip(tests[i]!.question)}: base ${clip(baseAnswers[i]!.text)} → fine-tuned ${clip(tunedAnswers[i]!.text)} (expected ${clip(refs[i]!)})`);
      }
      ctx.note(`all answers: ${join("models", "eval", EVAL_FILE)}`);
    },
  };
}
