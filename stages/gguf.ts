// Node gguf: llama.cpp's convert_hf_to_gguf.py (then llama-quantize for K-quants), proven by parsing the
// header and running the file in llama.cpp (in a child process), which must tokenize like the Hugging Face
// tokenizer, agree on special tokens, and continue greedily like mlx-lm. Its guard runs the converter on the
// base model's vocabulary before anything trains.
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { PipelineConfig } from "../config/schema.ts";
import { existsSync } from "node:fs";
import type { Json, NodeSpec, RunCtx } from "../engine/types.ts";
import { bundledRelease, converterCode, converterRegistry, converterSource, userCheckout } from "./lib/llama/converter.ts";
import { guardModelDir } from "./lib/model/model-ref.ts";
import { assertSuccess, UserError } from "../engine/types.ts";
import { formatVerdicts } from "../engine/verdicts.ts";
import { toolVersions } from "./lib/toolchain/tools.ts";
import { toolFile } from "./lib/toolchain/paths.ts";
import { readToolchain } from "./lib/toolchain/venv.ts";
import { llamaCppVersion } from "./llama-cpp.ts";
import { SMOKE_FILE, type SmokeResult } from "./fused.ts";
import { trainingTexts } from "./formatted.ts";

export const GGUF_FILE = "model.gguf";
const REPORT_FILE = "gguf.json";
/** Greedy tokens that must agree between mlx-lm (fused) and llama.cpp (GGUF) for unquantized outtypes. */
const MATCH_TOKENS = 4;

/** The code that runs in child processes (llama.cpp, the Hugging Face tokenizer): its edits rerun the node. */
const CHILD_SCRIPTS = [toolFile("stages", "lib", "llama", "worker.mjs"), toolFile("stages", "py", "hf_tokens.py")];

/** The hf folder as a GGUF of `outtype` (eval converts an f16 one beside a quantized GGUF). */
export async function convert(ctx: RunCtx<PipelineConfig>, outfile: string, outtype: string): Promise<void> {
  const { convertModel } = await import("./lib/llama/convert.ts");
  await convertModel(ctx, ctx.upstream("hf"), outfile, outtype);
}

async function quantize(ctx: RunCtx<PipelineConfig>, from: string, to: string, type: string): Promise<void> {
  // Imported here: a config that does not quantize has no quantizer node, and its no-op need not load one.
  const { quantizerBinary } = await import("./quantizer.ts");
  const binary = await quantizerBinary(ctx.upstream("quantizer"));
  ctx.progress(`quantizing to ${type} with llama-quantize`);
  assertSuccess(await ctx.exec(binary, [from, to, type]), `llama-quantize ${type}`);
}

export function ggufNode(config: PipelineConfig): NodeSpec<PipelineConfig> {
  const quantized = config.gguf.quantize !== undefined;
  return {
    id: "gguf",
    // mlx-env: the Hugging Face tokenizer the model was trained with, for the parity check.
    // llama-cpp first, so a first build makes the converter before training: once the model is built, the
    // engine's look-ahead runs this guard's vocab check on it before the expensive nodes in between.
    deps: ["llama-cpp", "mlx-env", "hf", "fused", ...(quantized ? ["quantizer"] : [])],
    description: "a GGUF file llama.cpp runs",
    inputs: async (ctx) => ({
      files: [...converterCode(ctx), ...CHILD_SCRIPTS],
      params: { ...ctx.config.gguf, match_tokens: MATCH_TOKENS },
      tools: await toolVersions(ctx.upstream("llama-cpp"), ["llama_cpp", "torch", "transformers"]),
      command: ["convert_hf_to_gguf.py --outtype", ctx.config.gguf.outtype, ...(ctx.config.gguf.quantize ? ["llama-quantize", ctx.config.gguf.quantize] : [])],
    }),
    async guard(ctx) {
      const dir = await guardModelDir(ctx);
      const source = converterSource(ctx);
      const registry = converterRegistry(source, ctx.config.python);
      const label = userCheckout(ctx) ? `llama.cpp at ${source}` : `llama.cpp ${bundledRelease()}`;
      // The guards' knowledge is loaded by the guard: a no-op build loads this module for its inputs alone.
      const { judgeExport, TOKENIZER_MODELS } = await import("../guard/export.ts");
      const model =
        dir && existsSync(join(dir, "config.json"))
          ? { dir, config: JSON.parse(await readFile(join(dir, "config.json"), "utf8")) as Record<string, unknown>, tokenizers: TOKENIZER_MODELS.filter((f) => existsSync(join(dir, f))) }
          : undefined;
      const verdicts = judgeExport({ outtype: ctx.config.gguf.outtype, converter: { label, ...registry }, ...(model ? { model } : {}) });
      if (!model || verdicts.some((v) => v.level === "error")) return verdicts;
      // The converter itself, on the base model's vocabulary: seconds, and cached.
      const [{ vocabVerdicts }, { sampleTexts }] = await Promise.all([import("./lib/llama/vocab-check.ts"), import("./lib/llama/tokenizer-parity.ts")]);
      const texts = await trainingTexts(ctx.config, ctx.root, model.dir);
      return [...verdicts, ...(await vocabVerdicts(ctx, model.dir, source, llamaCppVersion(ctx), label, texts && sampleTexts(texts)))];
    },
    async run(ctx) {
      const out = join(ctx.staging, GGUF_FILE);
      // Loaded here: the GGUF parser weighs more than the rest of the CLI. The Hugging Face side of the
      // parity check runs while the converter does.
      const [{ readGgufHeader }, { checkTokenizer, hfSide, sampleTexts }] = await Promise.all([import("./lib/llama/gguf-check.ts"), import("./lib/llama/tokenizer-parity.ts")]);
      // The training texts decide parity, as in the guard: read from the project's data, which the model was
      // trained on (a data edit reruns the nodes up to this one).
      const texts = await trainingTexts(ctx.config, ctx.root, ctx.upstream("hf"));
      const hf = hfSide(ctx.exec, await readToolchain(ctx.upstream("mlx-env")), ctx.upstream("hf"), texts && sampleTexts(texts));
      hf.catch(() => undefined); // awaited after the conversion; a failed conversion is the error to report
      const type = ctx.config.gguf.quantize;
      if (type) {
        // K-quants are made from a full-precision file: convert to f16 in scratch, then quantize.
        const f16 = join(ctx.scratch, "model-f16.gguf");
        await convert(ctx, f16, "f16");
        await quantize(ctx, f16, out, type);
      } else {
        await convert(ctx, out, ctx.config.gguf.outtype);
      }

      const header = await readGgufHeader(out);
      const missing = [!header.tokenizerModel && "a tokenizer", !header.hasChatTemplate && "a chat template"].filter(Boolean);
      if (header.tensorCount === 0 || !header.tokenizerModel) throw new UserError(`${out} has ${header.tensorCount} tensors and ${missing.join(" and ") || "?"}: the conversion is broken.`);

      ctx.progress("loading the GGUF in llama.cpp: tokenizer parity, special tokens, greedy answer");
      const smoke = JSON.parse(await readFile(join(ctx.upstream("fused"), SMOKE_FILE), "utf8")) as SmokeResult;
      const size = (await stat(out)).size;
      const check = await checkTokenizer(ctx.exec, await hf, {
        gguf: out,
        ggufTemplate: header.chatTemplate,
        extra: { greedy: { prompt: smoke.prompt, n: Math.max(smoke.tokens.length, 1) } },
        // Loading takes about a second per GB here; far past that, llama.cpp hangs.
        timeoutMs: 120_000 + (size / 1e9) * 60_000,
      });
      const errors = check.verdicts.filter((v) => v.level === "error");
      if (errors.length > 0) throw new UserError(`The GGUF does not behave like the model it was converted from:\n${formatVerdicts(errors.map((v) => ({ node: "gguf", ...v })))}`);
      for (const v of check.verdicts.filter((v) => v.level === "warn")) ctx.note(`warning: ${v.message} → ${v.fix ?? ""}`);
      const greedy = check.answer.greedy!;
      const compared = Math.min(MATCH_TOKENS, smoke.tokens.length);
      const agree = greedy.tokens.length >= compared && smoke.tokens.slice(0, compared).every((t, i) => t === greedy.tokens[i]);
      const exact = !type && ["f32", "f16", "bf16"].includes(ctx.config.gguf.outtype);
      if (exact && !agree) {
        throw new UserError(
          `The GGUF does not answer like the fused model: llama.cpp's greedy tokens ${JSON.stringify(greedy.tokens)} ` +
            `vs mlx-lm's ${JSON.stringify(smoke.tokens)} for the same prompt (the first ${compared} must agree). ` +
            `The conversion lost something (tokenizer, rope or norm settings); see cache/logs/gguf.log.`,
        );
      }
      const { chatTemplate: _template, ...shown } = header;
      const report: Record<string, Json> = {
        file: GGUF_FILE,
        bytes: size,
        type: type ?? ctx.config.gguf.outtype,
        header: { ...shown, tokenizerModel: header.tokenizerModel ?? null, tokenizerPre: header.tokenizerPre ?? null, fileType: header.fileType ?? null },
        special: { ...check.answer.special },
        checks: check.verdicts.map((v) => ({ level: v.level, code: v.code, message: v.message })),
        llamaCpp: { prompt: smoke.prompt, tokens: greedy.tokens, text: greedy.text },
        mlx: { tokens: [...smoke.tokens], text: smoke.text },
        agreeOnFirst: agree ? compared : 0,
      };
      await writeFile(join(ctx.staging, REPORT_FILE), JSON.stringify(report, null, 2) + "\n");
      ctx.record({ bytes: size, architecture: header.architecture });
      ctx.note(
        `${(size / 1e6).toFixed(1)} MB ${report.type} GGUF (${header.architecture}, ${header.tensorCount} tensors); llama.cpp says ${JSON.stringify(greedy.text)}` +
          (agree ? `, matching mlx-lm's first ${compared} tokens` : " (differs from mlx-lm's greedy tokens, as quantization may)"),
      );
    },
  };
}
