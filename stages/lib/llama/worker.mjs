// The only code that loads llama.cpp (node-llama-cpp), run as a child process by child.ts: an abort in
// llama.cpp (std::out_of_range on a broken vocabulary, a truncated file) ends this process, not the build.
// Plain JavaScript (checked by tsc through its JSDoc), run by plain node: through tsx's loader each of
// node-llama-cpp's modules is a round trip to its hooks thread, ~0.4 s more per child.
// Usage: node worker.mjs REQUEST.json ANSWER.json
// @ts-check
import { readFileSync, writeFileSync } from "node:fs";
import { freeCores } from "../toolchain/threads.mjs";

const [requestPath, answerPath] = process.argv.slice(2);
if (!requestPath || !answerPath) throw new Error("usage: worker.mjs REQUEST.json ANSWER.json");
/** @type {import("./child.ts").LlamaRequest} */
const request = JSON.parse(readFileSync(requestPath, "utf8"));

// The free cores are sampled while node-llama-cpp loads (its own CPU time not counted): no wait of its own.
const [{ getLlama, LlamaLogLevel }, threads] = await Promise.all([import("node-llama-cpp"), freeCores(undefined, { busySelf: true })]);
// build "never" + skipDownload: the prebuilt binary from npm or nothing; never compile or download.
// maxThreads: its default (at least 4) oversubscribes a 2-core machine and runs ~40x slower; all the cores
// spin at ggml's barriers as soon as another process holds one of them (threads.mjs).
// llama.cpp's warnings go to stderr, which the parent logs and scans (special_eos_id is not in special_eog_ids).
const llama = await getLlama({
  gpu: false,
  build: "never",
  skipDownload: true,
  progressLogs: false,
  logLevel: LlamaLogLevel.warn,
  logger: (level, message) => process.stderr.write(`[llama.cpp ${level}] ${message.trimEnd()}\n`),
  maxThreads: threads,
});
const model = await llama.loadModel({ modelPath: request.model, gpuLayers: 0, vocabOnly: request.vocabOnly ?? false });
const lora = request.lora ? { lora: request.lora } : {};
/** @param {unknown} token */
const id = (token) => (token == null ? null : Number(token));
/** @param {string} prompt The prompt's tokens (its special tokens parsed), BOS first when the model wants one. */
const promptTokens = (prompt) => {
  const tokens = model.tokenize(prompt, true);
  return model.tokens.bos != null && model.tokens.shouldPrependBosToken && tokens[0] !== model.tokens.bos ? [model.tokens.bos, ...tokens] : tokens;
};
/** @type {import("./child.ts").LlamaAnswer} */
const answer = {
  special: { bos: id(model.tokens.bos), eos: id(model.tokens.eos), eot: id(model.tokens.eot), addBos: model.tokens.shouldPrependBosToken },
  // Special tokens in the text are parsed as such (as transformers does); no BOS is added.
  tokenized: (request.tokenize ?? []).map((text) => model.tokenize(text, true).map(Number)),
  eog: (request.eogCandidates ?? []).filter((t) => model.isEogToken(/** @type {never} */ (t))),
};
if (request.greedy) {
  const { prompt, n } = request.greedy;
  const context = await model.createContext({ contextSize: 512, sequences: 1, ...lora });
  const input = promptTokens(prompt);
  /** @type {number[]} */
  const out = [];
  // Exactly n tokens, end-of-generation ones included (the fused model's smoke run ignores EOS too): without
  // yieldEogToken node-llama-cpp ends at the first one, unyielded, and a model that answers in fewer tokens
  // than the comparison reads would differ from mlx-lm's run.
  for await (const token of context.getSequence().evaluate(input, { temperature: 0, yieldEogToken: true })) {
    out.push(Number(token));
    if (out.length >= n) break;
  }
  answer.greedy = { promptTokens: input.map(Number), tokens: out, text: model.detokenize(/** @type {never[]} */ (out)) };
  await context.dispose();
}
if (request.answers) {
  const context = await model.createContext({ contextSize: 1024, sequences: 1, ...lora });
  const sequence = context.getSequence();
  answer.answers = [];
  for (const prompt of request.answers.prompts) {
    await sequence.clearHistory();
    const input = promptTokens(prompt);
    /** @type {number[]} */
    const out = [];
    for await (const token of sequence.evaluate(input, { temperature: 0 })) {
      if (model.isEogToken(token) || out.length >= request.answers.maxTokens) break;
      out.push(Number(token));
    }
    answer.answers.push({ promptTokens: input.map(Number), tokens: out, text: model.detokenize(/** @type {never[]} */ (out)) });
  }
  await context.dispose();
}
writeFileSync(answerPath, JSON.stringify(answer));
await model.dispose();
await llama.dispose();
