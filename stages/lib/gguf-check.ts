// Proving a GGUF works: its header parsed, then the file loaded in llama.cpp (node-llama-cpp) and run.
import { availableParallelism } from "node:os";
import { gguf } from "@huggingface/gguf";

export interface GgufHeader {
  readonly architecture: string;
  readonly tensorCount: number;
  readonly tokenizerModel: string | undefined;
  readonly tokenizerPre: string | undefined;
  readonly hasChatTemplate: boolean;
  readonly fileType: number | undefined;
}

export async function readGgufHeader(path: string): Promise<GgufHeader> {
  const { metadata, tensorInfos } = await gguf(path, { allowLocalFile: true });
  const meta = metadata as Record<string, unknown>;
  const str = (key: string) => (typeof meta[key] === "string" ? (meta[key] as string) : undefined);
  return {
    architecture: str("general.architecture") ?? "unknown",
    tensorCount: tensorInfos.length,
    tokenizerModel: str("tokenizer.ggml.model"),
    tokenizerPre: str("tokenizer.ggml.pre"),
    hasChatTemplate: typeof meta["tokenizer.chat_template"] === "string",
    fileType: typeof meta["general.file_type"] === "number" ? (meta["general.file_type"] as number) : undefined,
  };
}

export interface Greedy {
  readonly promptTokens: number[];
  readonly tokens: number[];
  readonly text: string;
}

/**
 * Greedy (argmax) continuation of a prompt, token by token, in llama.cpp on the CPU. The prompt's special
 * tokens (<|start_header_id|> ...) are parsed as such, as transformers and mlx-lm do.
 */
export async function llamaCppGreedy(path: string, prompt: string, n: number): Promise<Greedy> {
  // Loaded on demand: the package is large and only this node needs it.
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  // build "never" + skipDownload: use the prebuilt binary from npm or fail; never compile or download.
  // maxThreads: its default (at least 4) oversubscribes a 2-core machine and runs ~40x slower.
  const llama = await getLlama({
    gpu: false,
    build: "never",
    skipDownload: true,
    progressLogs: false,
    logLevel: LlamaLogLevel.error,
    maxThreads: availableParallelism(),
  });
  try {
    const model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
    const context = await model.createContext({ contextSize: 512, sequences: 1 });
    const promptTokens = model.tokenize(prompt, true);
    const input = model.tokens.bos != null && model.tokens.shouldPrependBosToken && promptTokens[0] !== model.tokens.bos ? [model.tokens.bos, ...promptTokens] : promptTokens;
    const out: number[] = [];
    // Exactly n tokens, end-of-generation ones included (the fused model's smoke run ignores EOS too),
    // so the comparison always has tokens to compare.
    for await (const token of context.getSequence().evaluate(input, { temperature: 0 })) {
      out.push(Number(token));
      if (out.length >= n) break;
    }
    const text = model.detokenize(out as never[]);
    await context.dispose();
    await model.dispose();
    return { promptTokens: input.map(Number), tokens: out, text };
  } finally {
    await llama.dispose();
  }
}
