// The only code that loads llama.cpp (node-llama-cpp), run as a child process by child.ts: an abort in
// llama.cpp (std::out_of_range on a broken vocabulary, a truncated file) ends this process, not the build.
// Usage: node --import tsx worker.ts REQUEST.json ANSWER.json
import { readFileSync, writeFileSync } from "node:fs";
import type { LlamaAnswer, LlamaRequest } from "./child.ts";
import { freeCores } from "../toolchain/threads.ts";

const [requestPath, answerPath] = process.argv.slice(2);
if (!requestPath || !answerPath) throw new Error("usage: worker.ts REQUEST.json ANSWER.json");
const request = JSON.parse(readFileSync(requestPath, "utf8")) as LlamaRequest;

const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
// build "never" + skipDownload: the prebuilt binary from npm or nothing; never compile or download.
// maxThreads: its default (at least 4) oversubscribes a 2-core machine and runs ~40x slower; all the cores
// spin at ggml's barriers as soon as another process holds one of them (threads.ts).
// llama.cpp's warnings go to stderr, which the parent logs and scans (special_eos_id is not in special_eog_ids).
const llama = await getLlama({
  gpu: false,
  build: "never",
  skipDownload: true,
  progressLogs: false,
  logLevel: LlamaLogLevel.warn,
  logger: (level, message) => process.stderr.write(`[llama.cpp ${level}] ${message.trimEnd()}\n`),
  maxThreads: await freeCores(),
});
const model = await llama.loadModel({ modelPath: request.model, gpuLayers: 0, vocabOnly: request.vocabOnly ?? false });
const lora = request.lora ? { lora: request.lora } : {};
const id = (token: unknown) => (token == null ? null : Number(token));
const answer: LlamaAnswer = {
  special: { bos: id(model.tokens.bos), eos: id(model.tokens.eos), eot: id(model.tokens.eot), addBos: model.tokens.shouldPrependBosToken },
  // Special tokens in the text are parsed as such (as transformers does); no BOS is added.
  tokenized: (request.tokenize ?? []).map((text) => model.tokenize(text, true).map(Number)),
  eog: (request.eogCandidates ?? []).filter((t) => model.isEogToken(t as never)),
};
if (request.greedy) {
  const { prompt, n } = request.greedy;
  const context = await model.createContext({ contextSize: 512, sequences: 1, ...lora });
  const promptTokens = model.tokenize(prompt, true);
  const input = model.tokens.bos != null && model.tokens.shouldPrependBosToken && promptTokens[0] !== model.tokens.bos ? [model.tokens.bos, ...promptTokens] : promptTokens;
  const out: number[] = [];
  // Exactly n tokens, end-of-generation ones included (the fused model's smoke run ignores EOS too).
  for await (const token of context.getSequence().evaluate(input, { temperature: 0 })) {
    out.push(Number(token));
    if (out.length >= n) break;
  }
  answer.greedy = { promptTokens: input.map(Number), tokens: out, text: model.detokenize(out as never[]) };
  await context.dispose();
}
if (request.answers) {
  const context = await model.createContext({ contextSize: 1024, sequences: 1, ...lora });
  const sequence = context.getSequence();
  answer.answers = [];
  for (const prompt of request.answers.prompts) {
    await sequence.clearHistory();
    const promptTokens = model.tokenize(prompt, true);
    const input = model.tokens.bos != null && model.tokens.shouldPrependBosToken && promptTokens[0] !== model.tokens.bos ? [model.tokens.bos, ...promptTokens] : promptTokens;
    const out: number[] = [];
    for await (const token of sequence.evaluate(input, { temperature: 0 })) {
      if (model.isEogToken(token) || out.length >= request.answers.maxTokens) break;
      out.push(Number(token));
    }
    answer.answers.push({ promptTokens: input.map(Number), tokens: out, text: model.detokenize(out as never[]) });
  }
  await context.dispose();
}
writeFileSync(answerPath, JSON.stringify(answer));
await model.dispose();
await llama.dispose();
