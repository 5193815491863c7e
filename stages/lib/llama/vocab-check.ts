// The gguf guard's real check, before training: llama.cpp's converter run with --vocab-only on the base model
// (seconds: no weights are read), its verdict in its own words, then the vocab-only GGUF loaded by llama.cpp
// (in a child) and tokenizer parity checked on it. Cached by the tokenizer files' digests and the converter.
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { zod } from "../../../engine/packages.ts";
import type { PipelineConfig } from "../../../config/schema.ts";
import { execLogged } from "../../../engine/exec.ts";
import type { BaseCtx, ExecResult, Verdict } from "../../../engine/types.ts";
import { readToolchain, venvPython, existingVenv } from "../toolchain/venv.ts";
import { findPython } from "../toolchain/python.ts";
import { toolFile, userCacheDir } from "../toolchain/paths.ts";
import type { Exec } from "./child.ts";
import { CONVERTER_ENV } from "./convert.ts";
import { HF_TOKENS_SCRIPT, hfSide, type HfSide, type TrainingTexts } from "./tokenizer-parity.ts";
import { mlxPython } from "../toolchain/mlx.ts";
import { TOKENIZER_FILES } from "../model/model-ref.ts";

const { z } = zod();

/** The check's own code: an edit to it must not reuse verdicts the old code cached. */
const CHECK_CODE = [import.meta.filename, toolFile("stages", "lib", "llama", "tokenizer-parity.ts"), toolFile("stages", "formatted.ts"), toolFile("stages", "lib", "llama", "worker.mjs"), HF_TOKENS_SCRIPT];
const CONVERTER_REQUIREMENTS = toolFile("stages", "requirements", "converter.txt");
/** What decides the converter's vocabulary: the tokenizer files, and config.json (architecture, vocab size). */
const VOCAB_FILES = ["config.json", ...TOKENIZER_FILES];
/** Converter files whose edits change its verdict even when a checkout's commit does not (local edits). */
const CONVERTER_FILES = ["convert_hf_to_gguf.py", join("conversion", "base.py"), join("conversion", "__init__.py")];

/** The converter's own error line from its output (not the traceback around it). */
export function converterSaid(tail: readonly string[]): string | undefined {
  const lines = [...tail].reverse();
  const at = lines.findIndex((l) => /^(ERROR:[a-z]+-to-gguf:|[A-Za-z_.]*(Error|Exception)\b)/.test(l));
  if (at < 0) return undefined;
  const line = lines[at]!.replace(/^ERROR:[a-z]+-to-gguf:/, "");
  if (line !== "AssertionError") return line;
  // A bare assert says nothing: the statement that failed is the last code line of the traceback.
  const statement = lines.slice(at).find((l) => /^\s+assert /.test(l));
  return statement ? `AssertionError: ${statement.trim()}` : line;
}

/** Runs processes for a guard, logging to cache/logs/<name>.log like a node's tools. */
function guardExec(root: string, name: string): Exec {
  const logPath = join(root, "cache", "logs", `${name}.log`);
  // Unbuffered as a node's tools are (pipeline.ts toolEnv): the converter's stdout stays in order with its errors.
  return (command, args, options) => execLogged(command, args, logPath, new AbortController().signal, { ...options, env: { PYTHONUNBUFFERED: "1", ...options?.env } });
}

/** The converter's environment: this project's, or the identical one another project already built. */
async function converterEnv(ctx: BaseCtx<PipelineConfig>): Promise<{ python: string; env: Readonly<Record<string, string>> } | undefined> {
  if (ctx.isBuilt("llama-cpp")) {
    const info = await readToolchain(ctx.upstream("llama-cpp")).catch(() => undefined);
    if (info) return info;
  }
  const python = findPython(ctx.config.python).path;
  const venv = python ? await existingVenv("llama-cpp-convert", CONVERTER_REQUIREMENTS, python) : undefined;
  return venv ? { python: venvPython(venv), env: {} } : undefined;
}

const sha = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");

/** True when a tokenizer.json part (pre_tokenizer, decoder) is or contains a ByteLevel step. */
function hasByteLevel(part: unknown): boolean {
  if (!part || typeof part !== "object") return false;
  const p = part as { type?: unknown; pretokenizers?: unknown[]; decoders?: unknown[] };
  return p.type === "ByteLevel" || [...(p.pretokenizers ?? []), ...(p.decoders ?? [])].some(hasByteLevel);
}

/** A byte-level BPE tokenizer.json dressed as a SentencePiece one (what transformers writes back from a GGUF). */
function spmOverByteLevel(dir: string): boolean {
  const path = join(dir, "tokenizer.json");
  if (!existsSync(path) || existsSync(join(dir, "tokenizer.model"))) return false;
  try {
    const tok = JSON.parse(readFileSync(path, "utf8")) as { model?: { type?: string }; pre_tokenizer?: unknown; decoder?: unknown };
    return tok.model?.type === "BPE" && (hasByteLevel(tok.pre_tokenizer) || hasByteLevel(tok.decoder));
  } catch {
    return false;
  }
}

const ORIGINAL_FILES =
  "Use the model's original tokenizer files (tokenizer.json, tokenizer_config.json, special_tokens_map.json from its release), not ones transformers rebuilt from a GGUF.";

/**
 * The tokenizer_class tokenizer_config.json declares when it is not the class that reads tokenizer.json as it
 * is: the converter's transformers builds that class, whose own vocabulary rules can make it refuse the file.
 */
function foreignClass(dir: string): string | undefined {
  const path = join(dir, "tokenizer_config.json");
  if (!existsSync(path)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch {
    return undefined; // an unreadable config is the converter's to report
  }
  const declared = z.object({ tokenizer_class: z.string() }).safeParse(parsed).data?.tokenizer_class;
  return declared !== undefined && declared !== "PreTrainedTokenizerFast" && declared !== "TokenizersBackend" ? declared : undefined;
}

/** What the converter's failure means, with its own words and a fix; undefined when it is not a verdict on the model. */
function converterFailure(result: ExecResult, hash: string | undefined, converter: string, dir: string): Verdict | undefined {
  if (result.exitCode === null) return undefined; // killed or timed out: says nothing about the model
  const said = converterSaid(result.tail);
  if (!said) return undefined;
  const log = ` (log: ${result.logPath})`;
  if (/pre-tokenizer was not recognized/.test(said)) {
    return {
      level: "error",
      code: "export.pre-tokenizer",
      message: `${converter}'s converter does not know this tokenizer's pre-tokenizer: "${said}"${hash ? ` (chkhsh ${hash})` : ""}${log}. The GGUF step would fail after training.`,
      fix:
        "Point `llama_cpp:` in pipeline.yaml (or LLAMA_CPP_DIR) at a newer llama.cpp checkout whose convert_hf_to_gguf.py recognizes it (git clone https://github.com/ggml-org/llama.cpp), " +
        "or add the model to that checkout's convert_hf_to_gguf_update.py and run it to regenerate get_vocab_base_pre() (the upstream procedure: https://github.com/ggml-org/llama.cpp/pull/6920). " +
        "The llama.cpp that runs the GGUF must know the new pre-tokenizer too.",
    };
  }
  const declared = foreignClass(dir);
  if (/is not supported/.test(said)) {
    return { level: "error", code: "export.unsupported", message: `${converter}'s converter refuses the model: "${said}"${log}.`, fix: "Use a model llama.cpp converts, or point llama_cpp: at a newer llama.cpp checkout." };
  }
  return {
    level: "error",
    code: "export.tokenizer-unreadable",
    message: `${converter}'s converter cannot read the tokenizer of ${dir}: "${said}"${log}. The GGUF step would fail after training.`,
    fix:
      (spmOverByteLevel(dir) ? ORIGINAL_FILES : "Check that the folder's tokenizer files are complete, unedited copies of the model's release (tokenizer.json, tokenizer_config.json, tokenizer.model where it has one).") +
      (declared && existsSync(join(dir, "tokenizer.json"))
        ? ` tokenizer_config.json declares "tokenizer_class": "${declared}": if that is not the class of the model's release, set "PreTrainedTokenizerFast" in a copy of the folder (transformers then reads tokenizer.json as it is) and point \`model:\` at the copy.`
        : ""),
  };
}

/**
 * The converter's verdict on the base model's vocabulary, and llama.cpp's tokenization of it against the
 * Hugging Face tokenizer's. `converter` names the llama.cpp in messages; `data`, the training texts, decide
 * parity when given (see tokenizer-parity.ts).
 */
export async function vocabVerdicts(ctx: BaseCtx<PipelineConfig>, dir: string, source: string, version: string, converter: string, data?: TrainingTexts): Promise<Verdict[]> {
  const env = await converterEnv(ctx);
  if (!env) {
    return [
      {
        level: "warn",
        code: "export.vocab-later",
        message: `${converter}'s converter environment is not built yet, so it has not checked this tokenizer; it will before the gguf node runs, which is after training.`,
        fix: "To have it checked before training, run `npx tsx pipeline.ts llama-cpp` (builds the converter's environment), then build.",
      },
    ];
  }
  const hf = await mlxPython(ctx).catch(() => undefined);
  const inputs = [...VOCAB_FILES.filter((f) => existsSync(join(dir, f))).map((f) => `${f}:${sha(readFileSync(join(dir, f)))}`)];
  const converterFiles = CONVERTER_FILES.filter((f) => existsSync(join(source, f))).map((f) => `${f}:${sha(readFileSync(join(source, f)))}`);
  const code = CHECK_CODE.map((f) => sha(readFileSync(f)));
  // The converter's vocab-only GGUF is kept by what decides it, so a data edit reruns the parity check alone
  // (tokenizers and llama.cpp on the texts), not the converter.
  const vocabKey = sha(JSON.stringify([code, version, source, converterFiles, env.python, inputs])).slice(0, 32);
  const texts = data ? sha(JSON.stringify([data.checked, data.all])) : null;
  const key = sha(JSON.stringify([vocabKey, hf?.python ?? null, texts])).slice(0, 32);
  const cached = userCacheDir("vocab-checks", `${key}.json`);
  if (existsSync(cached)) return JSON.parse(await readFile(cached, "utf8")) as Verdict[];
  const kept = userCacheDir("vocab-checks", `${vocabKey}.gguf`);

  const run = guardExec(ctx.root, "gguf.guard");
  const work = await mkdtemp(join(tmpdir(), "vocab-check-"));
  try {
    // The Hugging Face side runs while the converter does.
    const hfTokens = hf ? hfSide(run, hf, dir, data) : undefined;
    hfTokens?.catch(() => undefined); // awaited below only if the converter succeeds
    let verdicts: Verdict[];
    if (existsSync(kept)) {
      verdicts = await vocabGgufVerdicts(run, kept, dir, converter, hfTokens);
    } else {
      const vocab = join(work, "vocab.gguf");
      // The tokenizer's hash is printed above a long traceback: caught as it passes, not looked for in the tail.
      let hash: string | undefined;
      const result = await run(env.python, [join(source, "convert_hf_to_gguf.py"), dir, "--vocab-only", "--outfile", vocab], {
        env: { ...CONVERTER_ENV, ...env.env },
        timeoutMs: 600_000,
        onLine: (line) => (hash = /chkhsh:\s*([0-9a-f]{64})/.exec(line)?.[1] ?? hash),
      });
      if (result.exitCode !== 0) {
        const failure = converterFailure(result, hash, converter, dir);
        // A crash or a hang of the converter is not the model's verdict: report it, do not remember it.
        if (!failure) return [{ level: "error", code: "export.vocab-crashed", message: `${converter}'s converter ${result.timedOut ? "hung" : `ended with ${result.signal ?? `exit code ${result.exitCode}`}`} converting the vocabulary (log: ${result.logPath}).`, fix: "Run `check` again; if it persists, see the log." }];
        verdicts = [failure];
      } else {
        await mkdir(userCacheDir("vocab-checks"), { recursive: true });
        // Copied whole, then renamed (the temp folder may be on another file system): concurrent builds may keep the same file.
        await copyFile(vocab, `${kept}.${process.pid}`);
        await rename(`${kept}.${process.pid}`, kept);
        verdicts = await vocabGgufVerdicts(run, vocab, dir, converter, hfTokens);
      }
    }
    if (verdicts.some((v) => v.code === "export.llama-crashed")) return verdicts; // not remembered either
    await mkdir(userCacheDir("vocab-checks"), { recursive: true });
    // Written whole, then renamed: concurrent builds may check the same model.
    await writeFile(`${cached}.${process.pid}`, JSON.stringify(verdicts));
    await rename(`${cached}.${process.pid}`, cached);
    return verdicts;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** The converter accepted the vocabulary: does llama.cpp load it, and tokenize and stop like the model? */
async function vocabGgufVerdicts(run: Exec, vocab: string, dir: string, converter: string, hfTokens: Promise<HfSide> | undefined): Promise<Verdict[]> {
  const { readGgufHeader } = await import("./gguf-check.ts");
  const header = await readGgufHeader(vocab);
  const converted: Verdict = { level: "ok", code: "export.vocab", message: `${converter}'s converter reads the tokenizer (${header.tokenizerModel}${header.tokenizerPre ? `, pre-tokenizer ${header.tokenizerPre}` : ""})` };
  if (header.tokenizerModel === "llama" && spmOverByteLevel(dir)) {
    return [
      {
        level: "error",
        code: "export.spm-over-bpe",
        message: `${converter}'s converter wrote a SentencePiece vocabulary (tokenizer.ggml.model = llama) for ${dir}'s byte-level BPE tokenizer.json (it has byte_fallback and a SentencePiece decoder step, as transformers writes when it rebuilds a tokenizer from a GGUF): llama.cpp aborts loading such a file (std::out_of_range).`,
        fix: ORIGINAL_FILES,
      },
    ];
  }
  if (!hfTokens) return [converted, { level: "ok", code: "export.parity-later", message: "tokenizer parity is checked once the mlx environment is built" }];
  const { checkTokenizer } = await import("./tokenizer-parity.ts");
  const { LlamaCrash } = await import("./child.ts");
  const hf = await hfTokens.catch((e: Error) => e);
  if (hf instanceof Error) {
    // mlx-lm trains with this tokenizer: training would fail as well.
    return [converted, { level: "error", code: "export.hf-tokenizer", message: hf.message, fix: "Check the folder's tokenizer files: transformers (in the mlx environment) must load them." }];
  }
  try {
    const { verdicts } = await checkTokenizer(run, hf, { gguf: vocab, ggufTemplate: header.chatTemplate, vocabOnly: true });
    return [converted, ...verdicts];
  } catch (e) {
    if (!(e instanceof LlamaCrash)) throw e;
    return [
      converted,
      {
        level: "error",
        code: "export.llama-crashed",
        message: `${e.message}\n  (the converter's vocab-only GGUF of the base model: the full GGUF would fail the same way after training)`,
        fix: spmOverByteLevel(dir) ? ORIGINAL_FILES : "Point llama_cpp: at a llama.cpp whose converter and runtime agree on this tokenizer, or use another model.",
      },
    ];
  }
}
