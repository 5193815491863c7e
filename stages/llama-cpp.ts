// Node llama-cpp: llama.cpp's converter and its Python environment. The source is the llama.cpp release
// node-llama-cpp was built from (a git bundle inside the npm package), so the version that converts a
// model is the version that then loads it; a user's own checkout may replace it.
import { existsSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import type { PipelineConfig } from "../config/schema.ts";
import type { BaseCtx, NodeSpec, Verdict } from "../engine/types.ts";
import { BUNDLE, bundledRelease, converterSource, userCheckout } from "./lib/llama/converter.ts";
import { onPath, toolFile } from "./lib/toolchain/paths.ts";
import { pythonVerdicts } from "./lib/toolchain/python.ts";
import { ensureVenv, interpreterInputs, publishToolchain, readToolchain, requirePython, TOOLCHAIN_INFO, toolchainGone } from "./lib/toolchain/venv.ts";

const REQUIREMENTS = toolFile("stages", "requirements", "converter.txt");
const PACKAGES = ["torch", "transformers", "sentencepiece", "numpy", "gguf"];

/** The checkout's commit, read from .git without starting git (inputs are computed on every build). */
function checkoutCommit(dir: string): string {
  try {
    // In a worktree (or a submodule) .git is a file naming the real git folder; refs live in its common folder.
    let gitDir = join(dir, ".git");
    if (statSync(gitDir).isFile()) gitDir = resolve(dir, readFileSync(gitDir, "utf8").replace(/^gitdir:\s*/, "").trim());
    const common = existsSync(join(gitDir, "commondir")) ? resolve(gitDir, readFileSync(join(gitDir, "commondir"), "utf8").trim()) : gitDir;
    const head = readFileSync(join(gitDir, "HEAD"), "utf8").trim();
    if (!head.startsWith("ref: ")) return head;
    const ref = head.slice(5);
    for (const base of [gitDir, common]) {
      if (existsSync(join(base, ref))) return readFileSync(join(base, ref), "utf8").trim();
    }
    const packed = readFileSync(join(common, "packed-refs"), "utf8").split("\n").find((l) => l.endsWith(` ${ref}`));
    return packed?.split(" ")[0] ?? "unknown";
  } catch {
    return "unknown";
  }
}

/** The llama.cpp version that converts: the checkout's commit, or the bundled release. */
export function llamaCppVersion(ctx: BaseCtx<PipelineConfig>): string {
  const own = userCheckout(ctx);
  return own ? checkoutCommit(own) : bundledRelease();
}

function sourceVerdicts(ctx: BaseCtx<PipelineConfig>): Verdict[] {
  const own = userCheckout(ctx);
  if (own) {
    return existsSync(join(own, "convert_hf_to_gguf.py"))
      ? [{ level: "ok", code: "converter.source", message: `llama.cpp checkout ${own} (${checkoutCommit(own).slice(0, 12)})` }]
      : [{ level: "error", code: "converter.missing", message: `${own} has no convert_hf_to_gguf.py: it is not a llama.cpp checkout.`, fix: "Point llama_cpp: (or LLAMA_CPP_DIR) at a llama.cpp clone, or remove it to use the bundled one." }];
  }
  if (!existsSync(BUNDLE)) {
    return [{ level: "error", code: "converter.no-bundle", message: `${BUNDLE} is missing.`, fix: "Run `npm install` (node-llama-cpp ships llama.cpp's source)." }];
  }
  if (!onPath("git")) {
    return [{ level: "error", code: "converter.no-git", message: "git is not installed; it is needed once to unpack llama.cpp's source.", fix: "Install git." }];
  }
  return [{ level: "ok", code: "converter.source", message: `llama.cpp ${bundledRelease()} (bundled with node-llama-cpp)` }];
}

export const llamaCppNode: NodeSpec<PipelineConfig> = {
  id: "llama-cpp",
  deps: [],
  description: "llama.cpp's converter and its Python environment",
  async inputs(ctx) {
    const own = userCheckout(ctx);
    const python = await interpreterInputs(ctx.config.python);
    return {
      files: [REQUIREMENTS, TOOLCHAIN_INFO, ...python.files, ...(own ? [] : [BUNDLE])],
      params: { llama_cpp: own ?? "bundled" },
      tools: { llama_cpp: llamaCppVersion(ctx), ...python.tools },
      command: ["python -m venv", "pip install -r converter.txt"],
    };
  },
  guard: async (ctx) => [...(await pythonVerdicts(ctx.config.python)).filter((v) => v.level !== "ok"), ...sourceVerdicts(ctx)],
  async run(ctx) {
    if (!userCheckout(ctx)) ctx.progress(`unpacking llama.cpp ${bundledRelease()} from node-llama-cpp's bundle`);
    const source = converterSource(ctx);
    const venv = await ensureVenv(ctx, "llama-cpp-convert", REQUIREMENTS, requirePython(ctx.config.python));
    await publishToolchain(ctx, venv, REQUIREMENTS, PACKAGES, { versions: { llama_cpp: llamaCppVersion(ctx) }, source });
  },
  intact: async (dir) => {
    const gone = await toolchainGone(dir);
    if (gone) return gone;
    const info = await readToolchain(dir);
    return existsSync(join(info.source ?? "", "convert_hf_to_gguf.py")) ? undefined : `its llama.cpp source ${info.source} is gone`;
  },
};
