// llama.cpp out of process: every load, tokenization and generation with a GGUF runs in a child node process
// (worker.mjs). A crash, an abort or a hang there becomes an error naming llama.cpp's last lines and
// the log, and the build goes on to clean up and exit 1 instead of vanishing with the child.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ExecOptions, ExecResult } from "../../../engine/types.ts";
import { UserError } from "../../../engine/types.ts";
import { toolFile } from "../toolchain/paths.ts";

/** Runs a process, logging its output: RunCtx.exec in a node, guardExec in a guard. */
export type Exec = (command: string, args: readonly string[], options?: ExecOptions) => Promise<ExecResult>;

export interface LlamaRequest {
  readonly model: string;
  /** A LoRA GGUF applied on the model (scale 1: its own lora_alpha / r scales it) for greedy and answers. */
  readonly lora?: string;
  /** Load the vocabulary only (a --vocab-only GGUF has no tensors). */
  readonly vocabOnly?: boolean;
  /** Texts to tokenize, special tokens parsed, no BOS added. */
  readonly tokenize?: readonly string[];
  /** Token ids to ask "does generation stop here?" about. */
  readonly eogCandidates?: readonly number[];
  /** Greedy continuation of a prompt (its special tokens parsed, BOS added when the model wants one). */
  readonly greedy?: { readonly prompt: string; readonly n: number };
  /** Greedy answers to several prompts, each ending at an end-of-generation token (not included) or maxTokens. */
  readonly answers?: { readonly prompts: readonly string[]; readonly maxTokens: number };
}

export interface Greedy {
  readonly promptTokens: number[];
  readonly tokens: number[];
  readonly text: string;
}

export interface SpecialTokens {
  readonly bos: number | null;
  readonly eos: number | null;
  readonly eot: number | null;
  readonly addBos: boolean;
}

export interface LlamaAnswer {
  special: SpecialTokens;
  tokenized: number[][];
  /** The eogCandidates llama.cpp ends generation at. */
  eog: number[];
  greedy?: Greedy;
  answers?: Greedy[];
  /** llama.cpp's own warnings while loading (e.g. "special_eos_id is not in special_eog_ids"). */
  warnings?: string[];
}

const WORKER = toolFile("stages", "lib", "llama", "worker.mjs");
/** Loading a small GGUF takes seconds; a minute without an answer is a hang. */
const DEFAULT_TIMEOUT_MS = 120_000;

/** llama.cpp died or hung in the child: the node fails with its last lines and the log. */
export class LlamaCrash extends UserError {}

function describe(result: ExecResult, timeoutMs: number): string {
  if (result.timedOut) return `hung (no answer in ${Math.round(timeoutMs / 1000)} s) and was killed`;
  if (result.signal) return `crashed (${result.signal}${result.signal === "SIGABRT" ? ": llama.cpp aborted" : ""})`;
  return `failed (exit code ${result.exitCode})`;
}

/** Asks llama.cpp, in a child process, about a GGUF. Throws LlamaCrash when the child does not answer. */
export async function askLlamaCpp(exec: Exec, request: LlamaRequest, options: { timeoutMs?: number; what?: string } = {}): Promise<LlamaAnswer> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const dir = await mkdtemp(join(tmpdir(), "llama-child-"));
  try {
    const requestPath = join(dir, "request.json");
    const answerPath = join(dir, "answer.json");
    await writeFile(requestPath, JSON.stringify(request));
    const warnings: string[] = [];
    const result = await exec(process.execPath, [WORKER, requestPath, answerPath], {
      timeoutMs,
      onLine: (line) => {
        if (/^\[llama\.cpp warn\]/.test(line)) warnings.push(line.replace(/^\[llama\.cpp warn\]\s*/, ""));
      },
    });
    const answer = result.exitCode === 0 ? await readFile(answerPath, "utf8").catch(() => undefined) : undefined;
    if (answer === undefined) {
      const tail = result.tail.slice(-12).map((l) => `    ${l}`).join("\n");
      throw new LlamaCrash(`llama.cpp ${describe(result, timeoutMs)} while ${options.what ?? `loading ${request.model}`}. Last lines of ${result.logPath}:\n${tail}`);
    }
    return { ...(JSON.parse(answer) as LlamaAnswer), warnings };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
