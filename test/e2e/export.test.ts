// From nothing to a GGUF with the real converter, and the GGUF run in llama.cpp: tiny:llama, tiny:qwen3 and
// tiny:gemma3 in f16 (tokenizer parity and special tokens checked), q8_0 (only gguf reruns), a K-quant through
// llama-quantize, a converter that refuses the architecture, and a GGUF that makes llama.cpp abort.
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { execLogged } from "../../engine/exec.ts";
import { askLlamaCpp } from "../../stages/lib/llama-child.ts";
import { pipelineYaml, Project, ran, sample, type RunResult } from "../helpers/project.ts";

const LORA = { iters: 2, steps_per_report: 2, steps_per_eval: 2, save_every: 2 };
const ALL = ["mlx-env", "model", "data", "formatted", "adapters", "fused", "llama-cpp", "hf", "gguf"];

interface GgufReport {
  type: string;
  bytes: number;
  header: { architecture: string; tensorCount: number; tokenizerModel: string | null };
  llamaCpp: { prompt: string; tokens: number[] };
  mlx: { tokens: number[] };
  agreeOnFirst: number;
  checks: { level: string; code: string; message: string }[];
}

/** Loads a GGUF in llama.cpp ourselves (in a child, as the pipeline does) and takes `n` greedy tokens. */
async function generate(path: string, prompt: string, n = 4): Promise<number[]> {
  const log = join(mkdtempSync(join(tmpdir(), "llama-test-")), "llama.log");
  const exec = (command: string, args: readonly string[], options?: Parameters<typeof execLogged>[4]) => execLogged(command, args, log, new AbortController().signal, options);
  const answer = await askLlamaCpp(exec, { model: path, greedy: { prompt, n } });
  return answer.greedy!.tokens;
}

/** transformers (the converter's environment) loads the hf folder as it is. */
function loadsInTransformers(p: Project): void {
  const tc = p.toolchain("llama-cpp");
  const hf = p.path("models/hf");
  const out = execFileSync(tc.python, ["-c", `from transformers import AutoModelForCausalLM as M; m = M.from_pretrained(${JSON.stringify(hf)}); print("PARAMS", sum(x.numel() for x in m.parameters()))`], {
    env: { ...process.env, ...tc.env, HF_HUB_OFFLINE: "1" },
    encoding: "utf8",
  });
  expect(Number(/PARAMS (\d+)/.exec(out)?.[1])).toBeGreaterThan(1_000_000);
}

async function checkF16(p: Project, architecture: string): Promise<void> {
  const report = p.readJson<GgufReport>("models/gguf/gguf.json");
  expect(report.type).toBe("f16");
  // llama.cpp tokenized every probe text like the Hugging Face tokenizer, and stops where the model stops.
  const checks = Object.fromEntries(report.checks.map((c) => [c.code, c]));
  expect(checks["export.tokenizer-parity"]?.level, JSON.stringify(report.checks)).toBe("ok");
  expect(checks["export.tokenizer-parity"]?.message).toMatch(/chat template/);
  expect(checks["export.special-tokens"]?.level, JSON.stringify(report.checks)).toBe("ok");
  expect(report.header.architecture).toBe(architecture);
  expect(report.header.tensorCount).toBeGreaterThan(0);
  expect(report.agreeOnFirst).toBeGreaterThan(0);
  expect(report.llamaCpp.tokens.slice(0, report.agreeOnFirst)).toEqual(report.mlx.tokens.slice(0, report.agreeOnFirst));
  const tokens = await generate(p.path("models/gguf/model.gguf"), report.llamaCpp.prompt);
  expect(tokens).toHaveLength(4);
  // Our own greedy run agrees with the one the pipeline recorded.
  const n = Math.min(report.llamaCpp.tokens.length, 4);
  expect(tokens.slice(0, n)).toEqual(report.llamaCpp.tokens.slice(0, n));
}

describe("tiny:llama to GGUF", () => {
  let p: Project;
  let first: RunResult;

  beforeAll(async () => {
    p = new Project(pipelineYaml({ lora: LORA }), { "data/train.jsonl": sample(40) });
    first = await p.mustBuild("gguf");
  });

  it("builds every node and an f16 GGUF that llama.cpp runs like mlx-lm", async () => {
    expect(ran(first)).toEqual([...ALL].sort());
    await checkF16(p, "llama");
  });

  it("the hf folder loads in transformers", () => {
    loadsInTransformers(p);
  });

  it("a second run is a no-op", async () => {
    const again = await p.build("gguf");
    expect(again.code, again.stderr).toBe(0);
    expect(ran(again)).toEqual([]);
    expect(again.statuses).toEqual(Object.fromEntries(ALL.map((id) => [id, "fresh"])));
  });

  it("gguf.outtype q8_0 reruns gguf only, and the q8_0 file runs", async () => {
    const f16Bytes = p.readJson<GgufReport>("models/gguf/gguf.json").bytes;
    p.write("pipeline.yaml", pipelineYaml({ lora: LORA, gguf: { outtype: "q8_0" } }));
    const result = await p.build("gguf");
    expect(result.code, result.stderr.slice(-3000)).toBe(0);
    expect(ran(result)).toEqual(["gguf"]);
    const report = p.readJson<GgufReport>("models/gguf/gguf.json");
    expect(report.type).toBe("q8_0");
    expect(report.bytes).toBeLessThan(f16Bytes);
    expect(await generate(p.path("models/gguf/model.gguf"), report.llamaCpp.prompt)).toHaveLength(4);
  });

  it("gguf.quantize Q4_K_M builds llama-quantize (once) and a K-quant GGUF that runs", { timeout: 1_800_000 }, async () => {
    const q8Bytes = p.readJson<GgufReport>("models/gguf/gguf.json").bytes;
    p.write("pipeline.yaml", pipelineYaml({ lora: LORA, gguf: { outtype: "q8_0", quantize: "Q4_K_M" } }));
    const result = await p.build("gguf");
    expect(result.code, result.stderr.slice(-3000)).toBe(0);
    expect(ran(result)).toEqual(["gguf", "quantizer"]);
    const report = p.readJson<GgufReport>("models/gguf/gguf.json");
    expect(report.type).toBe("Q4_K_M");
    // The tiny model's rows (128) are not a multiple of 256: llama-quantize falls back per tensor, so the file
    // need not be smaller than q8_0 by much, but it is not larger.
    expect(report.bytes).toBeLessThanOrEqual(q8Bytes);
    expect(await generate(p.path("models/gguf/model.gguf"), report.llamaCpp.prompt)).toHaveLength(4);
  });

  it("a converter that refuses the architecture: exit 1, a clear message, the previous GGUF kept", async () => {
    const source = p.toolchain("llama-cpp").extra.source!;
    const mine = join(mkdtempSync(join(tmpdir(), "llama-cpp-no-llama-")), "llama.cpp");
    cpSync(source, mine, { recursive: true, filter: (from) => !["ggml", "models", ".git", "build"].map((d) => join(source, d)).includes(from) });
    const init = join(mine, "conversion", "__init__.py");
    const text = readFileSync(init, "utf8");
    const edited = text.replace(/^\s*"LlamaForCausalLM": "llama",\n/m, "");
    expect(edited).not.toBe(text);
    writeFileSync(init, edited);

    const before = p.sha256("models/gguf/model.gguf");
    const beforeLock = p.lock().gguf!.output.digest;
    p.write("pipeline.yaml", pipelineYaml({ lora: LORA, gguf: { outtype: "q8_0" }, llama_cpp: mine }));
    const result = await p.build("gguf");
    expect(result.code).toBe(1);
    const said = `${result.stderr}\n${result.json.error ?? ""}\n${JSON.stringify(result.json.verdicts ?? [])}`;
    expect(said).toMatch(/LlamaForCausalLM/);
    expect(said).toMatch(/not supported|does not support/i);
    expect(result.statuses.gguf ?? "not run").not.toBe("ran");
    expect(p.sha256("models/gguf/model.gguf")).toBe(before);
    expect(p.lock().gguf!.output.digest).toBe(beforeLock);
  });

  it("a GGUF that makes llama.cpp abort is a clean node failure: exit 1, llama.cpp's last lines, the previous GGUF kept, and the next build works", async () => {
    // A converter that writes a SentencePiece tokenizer type over the BPE vocabulary in full conversions only
    // (the guard's --vocab-only run stays clean): loading that file, llama.cpp throws std::out_of_range and aborts.
    const source = p.toolchain("llama-cpp").extra.source!;
    const mine = join(mkdtempSync(join(tmpdir(), "llama-cpp-abort-")), "llama.cpp");
    cpSync(source, mine, { recursive: true, filter: (from) => !["ggml", "models", ".git", "build"].map((d) => join(source, d)).includes(from) });
    const script = join(mine, "convert_hf_to_gguf.py");
    const text = readFileSync(script, "utf8");
    const patched = text.replace(
      "        if args.vocab_only:\n",
      "        if not args.vocab_only:\n            _w = model_instance.gguf_writer; _add = _w.add_tokenizer_model; _w.add_tokenizer_model = lambda _m: _add(\"llama\")\n        if args.vocab_only:\n",
    );
    expect(patched).not.toBe(text);
    writeFileSync(script, patched);

    const before = p.sha256("models/gguf/model.gguf");
    p.write("pipeline.yaml", pipelineYaml({ lora: LORA, gguf: { outtype: "q8_0" }, llama_cpp: mine }));
    const result = await p.build("gguf");
    expect(result.code, result.stderr.slice(-3000)).toBe(1);
    expect(result.statuses.gguf).toBe("failed");
    const failure = result.json.nodes.find((n) => n.id === "gguf")!.reason;
    expect(failure).toMatch(/llama\.cpp crashed \(SIGABRT: llama\.cpp aborted\)/);
    expect(failure).toMatch(/terminate called after throwing an instance of 'std::out_of_range'/);
    expect(failure).toMatch(/cache\/logs\/gguf\.log/);
    expect(p.sha256("models/gguf/model.gguf")).toBe(before);
    // No staging folder is left behind.
    expect(readdirSync(p.path("models/.builds")).filter((n) => n.includes(".staging-"))).toEqual([]);

    p.write("pipeline.yaml", pipelineYaml({ lora: LORA, gguf: { outtype: "q8_0" } }));
    const next = await p.build("gguf");
    expect(next.code, next.stderr.slice(-3000)).toBe(0);
    expect(existsSync(p.path("models/gguf/model.gguf"))).toBe(true);
    expect(await generate(p.path("models/gguf/model.gguf"), p.readJson<GgufReport>("models/gguf/gguf.json").llamaCpp.prompt)).toHaveLength(4);
  });
});

describe("tiny:gemma3 to GGUF", () => {
  it("builds an f16 GGUF whose tokenizer llama.cpp reads like Hugging Face, and that runs like mlx-lm", async () => {
    const p = new Project(pipelineYaml({ model: "tiny:gemma3", lora: LORA }), { "data/train.jsonl": sample(40) });
    const result = await p.mustBuild("gguf");
    expect(ran(result)).toEqual([...ALL].sort());
    await checkF16(p, "gemma3");
  });
});

describe("tiny:qwen3 to GGUF", () => {
  it("builds an f16 GGUF that llama.cpp runs like mlx-lm, from an hf folder transformers loads", async () => {
    const p = new Project(pipelineYaml({ model: "tiny:qwen3", lora: LORA }), { "data/train.jsonl": sample(40) });
    const result = await p.mustBuild("gguf");
    expect(ran(result)).toEqual([...ALL].sort());
    await checkF16(p, "qwen3");
    loadsInTransformers(p);
  });
});
