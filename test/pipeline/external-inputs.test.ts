// What lives outside the project and decides an output: a user's llama.cpp checkout (its commit, also in a
// worktree, and its uncommitted edits) and a hub model's files in the Hugging Face cache.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { pipelineSchema, type PipelineConfig } from "../../config/schema.ts";
import { closeHashWorkers, Digester } from "../../engine/digest.ts";
import type { BaseCtx } from "../../engine/types.ts";
import { ggufNode } from "../../stages/gguf.ts";
import { llamaCppNode } from "../../stages/llama-cpp.ts";
import { modelNode } from "../../stages/model.ts";

function ctxFor(root: string, config: PipelineConfig, upstream: Record<string, string> = {}): BaseCtx<PipelineConfig> {
  return { config, root, upstream: (id) => upstream[id] ?? join(root, "models", id), isBuilt: (id) => id in upstream };
}

const git = (cwd: string, ...args: string[]) =>
  execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@t", ...args], { cwd, encoding: "utf8" }).trim();

/** A minimal llama.cpp-shaped checkout with one commit. */
function checkout(): string {
  const dir = mkdtempSync(join(tmpdir(), "llama.cpp-"));
  writeFileSync(join(dir, "convert_hf_to_gguf.py"), "print('convert')\n");
  mkdirSync(join(dir, "gguf-py", "gguf"), { recursive: true });
  writeFileSync(join(dir, "gguf-py", "gguf", "constants.py"), "A = 1\n");
  git(dir, "init", "-q", "-b", "master");
  git(dir, "add", ".");
  git(dir, "commit", "-q", "-m", "init");
  return dir;
}

describe("inputs outside the project", () => {
  it("a llama_cpp: worktree reads as its commit, not 'unknown'", async () => {
    const main = checkout();
    const worktree = join(mkdtempSync(join(tmpdir(), "wt-")), "llama.cpp");
    git(main, "worktree", "add", "-q", "-b", "feature", worktree);
    const root = mkdtempSync(join(tmpdir(), "project-"));
    const inputs = await llamaCppNode.inputs(ctxFor(root, pipelineSchema.parse({ llama_cpp: worktree })));
    expect(inputs.tools.llama_cpp).toBe(git(main, "rev-parse", "HEAD"));
  });

  it("an uncommitted edit to the checkout's converter changes gguf's input digests", async () => {
    const dir = checkout();
    const root = mkdtempSync(join(tmpdir(), "project-"));
    const toolchain = join(root, "toolchain");
    mkdirSync(toolchain);
    writeFileSync(join(toolchain, "toolchain.json"), JSON.stringify({ venv: "/v", versions: {}, requirements: "", preload: [] }));
    const config = pipelineSchema.parse({ llama_cpp: dir });
    const inputs = await ggufNode(config).inputs(ctxFor(root, config, { "llama-cpp": toolchain }));
    const digester = await Digester.open(join(root, "stat-cache.json"));
    const before = await digester.inputs(root, inputs.files);
    expect(Object.keys(before).filter((f) => f.startsWith(dir))).toEqual([join(dir, "convert_hf_to_gguf.py"), join(dir, "gguf-py", "gguf", "constants.py")]);
    writeFileSync(join(dir, "gguf-py", "gguf", "constants.py"), "A = 2\n"); // same commit, dirty tree
    const after = await digester.inputs(root, inputs.files);
    expect(after[join(dir, "gguf-py", "gguf", "constants.py")]).not.toBe(before[join(dir, "gguf-py", "gguf", "constants.py")]);
    await closeHashWorkers();
  });

  it("a hub model whose files were deleted from the Hugging Face cache is not intact", async () => {
    const cache = mkdtempSync(join(tmpdir(), "hf-cache-"));
    const hf = join(cache, "models--org--model");
    const snapshot = join(hf, "snapshots", "abc");
    mkdirSync(join(hf, "blobs"), { recursive: true });
    mkdirSync(snapshot, { recursive: true });
    for (const [name, blob] of [["config.json", "b1"], ["model.safetensors", "b2"]] as const) {
      writeFileSync(join(hf, "blobs", blob), "{}");
      symlinkSync(join(hf, "blobs", blob), join(snapshot, name));
    }
    const root = mkdtempSync(join(tmpdir(), "project-"));
    const output = join(root, "models", "model");
    mkdirSync(output, { recursive: true });
    // model.json names the revision; the snapshot is found in this machine's Hugging Face cache.
    writeFileSync(join(output, "model.json"), JSON.stringify({ ref: "org/model", kind: "hub", revision: "abc", files: {} }));
    const node = modelNode(pipelineSchema.parse({ model: "org/model" }), root);
    vi.stubEnv("HF_HUB_CACHE", cache);
    onTestFinished(() => void vi.unstubAllEnvs());
    expect(await node.intact?.(output)).toBeUndefined();
    rmSync(join(hf, "blobs", "b2"));
    expect(await node.intact?.(output)).toBe(`the model files model.safetensors at ${snapshot} are gone`);
    rmSync(hf, { recursive: true });
    expect(await node.intact?.(output)).toBe(`the model files at ${snapshot} are gone`);
  });
});
