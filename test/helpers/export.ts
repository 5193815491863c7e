// What the export tests share: the f16 checks of a built GGUF, a greedy run in llama.cpp of our own, and the
// project's Python toolchains asked directly.
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "vitest";
import { execLogged } from "../../engine/exec.ts";
import { askLlamaCpp, type LlamaAnswer, type LlamaRequest } from "../../stages/lib/llama/child.ts";
import { ggufTypes, shareIn } from "./gguf.ts";
import type { Project } from "./project.ts";

/** Two iterations: these files test the conversion, not the training. */
export const LORA = { iters: 2, steps_per_report: 2, steps_per_eval: 2, save_every: 2 };
/** Every node on the way to gguf. */
export const ALL = ["mlx-env", "model", "data", "formatted", "adapters", "fused", "llama-cpp", "hf", "gguf"];

export interface GgufReport {
  type: string;
  bytes: number;
  header: { architecture: string; tensorCount: number; tokenizerModel: string | null };
  llamaCpp: { prompt: string; tokens: number[] };
  mlx: { tokens: number[] };
  agreeOnFirst: number;
  checks: { level: string; code: string; message: string }[];
}

/** Loads a GGUF in llama.cpp ourselves (in a child, as the pipeline does) and takes `n` greedy tokens. */
export async function generate(path: string, prompt: string, n = 4): Promise<number[]> {
  return (await askLlama({ model: path, greedy: { prompt, n } })).greedy!.tokens;
}

/** The answer of llama.cpp's child (the one the stages run) to `request`, its log in a temp folder. */
export function askLlama(request: LlamaRequest): Promise<LlamaAnswer> {
  const log = join(mkdtempSync(join(tmpdir(), "llama-test-")), "llama.log");
  const exec = (command: string, args: readonly string[], options?: Parameters<typeof execLogged>[4]) => execLogged(command, args, log, new AbortController().signal, options);
  return askLlamaCpp(exec, request);
}

/** transformers (the converter's environment) loads the hf folder as it is. */
export function loadsInTransformers(p: Project): void {
  const tc = p.toolchain("llama-cpp");
  const hf = p.path("models/hf");
  const out = execFileSync(tc.python, ["-c", `from transformers import AutoModelForCausalLM as M; m = M.from_pretrained(${JSON.stringify(hf)}); print("PARAMS", sum(x.numel() for x in m.parameters()))`], {
    env: { ...process.env, ...tc.env, HF_HUB_OFFLINE: "1" },
    encoding: "utf8",
  });
  expect(Number(/PARAMS (\d+)/.exec(out)?.[1])).toBeGreaterThan(1_000_000);
}

/** A project's python in one of its toolchains, running `code`; what it printed, trimmed. */
export function pythonSays(p: Project, toolchain: "mlx-env" | "llama-cpp", code: string): string {
  const tc = p.toolchain(toolchain);
  return execFileSync(tc.python, ["-c", code], { env: { ...process.env, ...tc.env, HF_HUB_OFFLINE: "1" }, encoding: "utf8" }).trim();
}

/** The f16 GGUF of `p`: its header, gguf.json's parity checks, and our own greedy run agreeing with the recorded one. */
export async function checkF16(p: Project, architecture: string): Promise<void> {
  const report = p.readJson<GgufReport>("models/gguf/gguf.json");
  // The header, not gguf.json's echo of the config: llama.cpp's file type, and every matrix really in f16.
  const types = await ggufTypes(p.path("models/gguf/model.gguf"));
  expect(types.fileType).toBe("F16");
  expect(shareIn(types, ["F16"])).toBe(1);
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
