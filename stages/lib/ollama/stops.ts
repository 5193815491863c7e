// The base model's end-of-generation tokens, as text for `PARAMETER stop`: its EOS, and every id in
// generation_config.json's eos_token_id (Llama 3 and Gemma 3 list several) mapped to its token.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { UserError } from "../../../engine/types.ts";
import { zod } from "../../../engine/packages.ts";

async function readJson(path: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, "utf8"));
  } catch (e) {
    throw new UserError(`${path}: not readable JSON (${(e as Error).message}); rebuild the model with --force model.`);
  }
}

/** The stop tokens, EOS first, without repeats; `extra` (the template's end-of-turn token) last. */
export async function endTokens(modelDir: string, eosToken: string | undefined, extra: string | undefined): Promise<string[]> {
  const { z } = zod();
  const ids = z.object({ eos_token_id: z.union([z.number().int(), z.array(z.number().int())]).optional() }).passthrough();
  const tokens = z.object({ added_tokens_decoder: z.record(z.string(), z.object({ content: z.string() }).passthrough()).optional() }).passthrough();
  const vocab = z.object({ added_tokens: z.array(z.object({ id: z.number().int(), content: z.string() }).passthrough()).optional() }).passthrough();

  const genPath = join(modelDir, "generation_config.json");
  const parsed = existsSync(genPath) ? ids.safeParse(await readJson(genPath)) : undefined;
  if (parsed && !parsed.success) throw new UserError(`${genPath}: eos_token_id must be a token id or a list of them (${parsed.error.issues[0]?.message}).`);
  const eosIds = [parsed?.data.eos_token_id ?? []].flat();

  const names = new Map<number, string>();
  if (eosIds.length > 0) {
    const tokPath = join(modelDir, "tokenizer.json");
    const added = existsSync(tokPath) ? vocab.safeParse(await readJson(tokPath)) : undefined;
    for (const t of added?.success ? (added.data.added_tokens ?? []) : []) names.set(t.id, t.content);
    const cfgPath = join(modelDir, "tokenizer_config.json");
    const decoder = existsSync(cfgPath) ? tokens.safeParse(await readJson(cfgPath)) : undefined;
    for (const [id, t] of Object.entries(decoder?.success ? (decoder.data.added_tokens_decoder ?? {}) : {})) names.set(Number(id), t.content);
  }
  const unnamed = eosIds.filter((id) => !names.has(id));
  if (unnamed.length > 0) {
    throw new UserError(`${genPath}: eos_token_id ${unnamed.join(", ")} is no added token of ${modelDir}/tokenizer.json, so it cannot be written as a PARAMETER stop; fix generation_config.json.`);
  }
  const all = [eosToken, ...eosIds.map((id) => names.get(id)), extra].filter((t): t is string => t !== undefined && t !== "");
  return [...new Set(all)];
}
