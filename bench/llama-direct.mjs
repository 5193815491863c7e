// What a user writes by hand instead of the eval node's GGUF answers: node-llama-cpp in plain node (no tsx,
// no child process, no request file protocol), greedy, each prompt until an end token or max_tokens.
// Usage: node bench/llama-direct.mjs MODEL.gguf REQUEST.json ANSWER.json THREADS
import { readFileSync, writeFileSync } from "node:fs";
import { getLlama } from "node-llama-cpp";

const [model, requestPath, answerPath, threads] = process.argv.slice(2);
const { prompts, max_tokens: maxTokens } = JSON.parse(readFileSync(requestPath, "utf8"));
const llama = await getLlama({ gpu: false, build: "never", skipDownload: true, progressLogs: false, maxThreads: Number(threads) });
const loaded = await llama.loadModel({ modelPath: model, gpuLayers: 0 });
const context = await loaded.createContext({ contextSize: 1024, sequences: 1 });
const sequence = context.getSequence();
const answers = [];
for (const prompt of prompts) {
  await sequence.clearHistory();
  const tokens = loaded.tokenize(prompt, true);
  const input = loaded.tokens.shouldPrependBosToken && tokens[0] !== loaded.tokens.bos ? [loaded.tokens.bos, ...tokens] : tokens;
  const out = [];
  for await (const token of sequence.evaluate(input, { temperature: 0 })) {
    if (loaded.isEogToken(token) || out.length >= maxTokens) break;
    out.push(token);
  }
  answers.push({ text: loaded.detokenize(out) });
}
writeFileSync(answerPath, JSON.stringify({ answers }));
await context.dispose();
await loaded.dispose();
await llama.dispose();
