// A llama-server for the length of one check: on 127.0.0.1 and a free port, the GGUF's embedded chat template
// applied (--jinja), answering chat requests greedily. It runs under ctx.exec, whose wrapper kills its
// process group when the build is aborted (Ctrl-C) or the tool dies, even by kill -9 (engine/exec.ts); it is
// stopped when the check ends, whichever way.
import { createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import type { ExecResult, RunCtx } from "../../../engine/types.ts";
import { UserError } from "../../../engine/types.ts";
import type { Message } from "../data/dataset.ts";
import { freeCores } from "../toolchain/threads.mjs";
import { zod } from "../../../engine/packages.ts";

/** Loading a small GGUF takes seconds; this long without /health answering 200 is a failure. */
const START_TIMEOUT_MS = 180_000;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      const port = typeof address === "object" && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

export interface ServerOptions {
  readonly binary: string;
  readonly model: string;
  readonly maxTokens: number;
}

/** An answer of the server: its text, and the token ids it generated (the end-of-generation one that stopped it left out). */
export interface ServedAnswer {
  readonly text: string;
  readonly tokens: readonly number[];
}

/**
 * Greedy answers of llama-server to each conversation through /v1/chat/completions, with their token ids
 * (`return_tokens`, read from `__verbose`): the text alone cannot be compared with llama.cpp's own answers, as the
 * server joins token pieces where llama_detokenize also drops a space before punctuation (Llama 3's " =." vs " = .").
 */
export async function serverAnswers<C>(ctx: RunCtx<C>, options: ServerOptions, conversations: readonly (readonly Message[])[]): Promise<ServedAnswer[]> {
  const { z } = zod();
  const reply = z.object({
    choices: z.array(z.object({ message: z.object({ content: z.string().nullable() }), finish_reason: z.string().nullable() })).min(1),
    __verbose: z.object({ tokens: z.array(z.number().int().nonnegative()) }),
  });
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const stop = new AbortController();
  // Same context and threads as worker.mjs; no prompt cache, so every answer starts from an empty context.
  const args = ["-m", options.model, "--host", "127.0.0.1", "--port", String(port), "--jinja", "--reasoning-format", "none", "-c", "1024", "-np", "1", "-t", String(await freeCores()), "--cache-ram", "0", "--no-webui"];
  let exited: ExecResult | undefined;
  const running = ctx.exec(options.binary, args, { signal: stop.signal }).then((r) => (exited = r));
  const said = (r: ExecResult) => `llama-server exited (${r.exitCode ?? r.signal}). Last lines of ${r.logPath}:\n${r.tail.slice(-12).map((l) => `    ${l}`).join("\n")}`;
  try {
    ctx.progress(`llama-server: starting on ${base}`);
    const started = Date.now();
    for (;;) {
      if (exited) throw new UserError(said(exited));
      if (Date.now() - started > START_TIMEOUT_MS) throw new UserError(`llama-server on ${base} did not answer /health within ${START_TIMEOUT_MS / 1000} s (log: cache/logs).`);
      const ok = await fetch(`${base}/health`, { signal: ctx.signal }).then((r) => r.ok, () => false);
      if (ok) break;
      await sleep(250, undefined, { signal: ctx.signal });
    }
    const answers: ServedAnswer[] = [];
    for (const [i, messages] of conversations.entries()) {
      ctx.progress(`llama-server on ${base}: answering ${i + 1}/${conversations.length} test prompts (/v1/chat/completions, greedy)`);
      const body = { messages, temperature: 0, max_tokens: options.maxTokens, cache_prompt: false, stream: false, return_tokens: true, verbose: true };
      const response = await fetch(`${base}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal: ctx.signal });
      const text = await response.text();
      if (!response.ok) throw new UserError(`llama-server answered ${response.status} to test prompt ${i + 1}: ${text.slice(0, 300)}`);
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      const parsed = reply.safeParse(json);
      if (!parsed.success) throw new UserError(`llama-server's reply to test prompt ${i + 1} is not a chat completion (${parsed.error.issues[0]?.message}): ${text.slice(0, 300)}`);
      const choice = parsed.data.choices[0]!;
      const tokens = parsed.data.__verbose.tokens;
      // "stop": an end-of-generation token ended it, which the server counts among the generated ones and llama.cpp's answers do not.
      answers.push({ text: choice.message.content ?? "", tokens: choice.finish_reason === "stop" ? tokens.slice(0, -1) : tokens });
    }
    return answers;
  } finally {
    stop.abort();
    await running;
  }
}
