// Node llama-server: llama.cpp's OpenAI-compatible server, found on PATH or built once with cmake from the same
// llama.cpp source that converts the model (and builds llama-quantize). eval sends the test split through it
// when deploy.check is set: what LM Studio and Ollama users get is the GGUF's own template applied by a server.
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { PipelineConfig } from "../config/schema.ts";
import type { NodeSpec } from "../engine/types.ts";
import { fromCacheRoot, onPath, underCacheRoot } from "./lib/toolchain/paths.ts";
import { toolVersions } from "./lib/toolchain/tools.ts";

const SERVER_FILE = "llama-server.json";
const BINARY = "llama-server";

export const llamaServerNode: NodeSpec<PipelineConfig> = {
  id: "llama-server",
  deps: ["llama-cpp"],
  description: "llama.cpp's llama-server",
  inputs: async (ctx) => {
    const found = onPath(BINARY);
    return {
      files: found ? [found] : [],
      params: { from: found ? "PATH" : "source" },
      tools: await toolVersions(ctx.upstream("llama-cpp"), ["llama_cpp"]),
      command: found ? [found] : ["cmake -B build -DLLAMA_BUILD_SERVER=ON ...", `cmake --build build --target ${BINARY}`],
    };
  },
  guard() {
    if (onPath(BINARY)) return [{ level: "ok", code: "llama-server.path", message: `${BINARY} found on PATH` }];
    const missing = ["cmake", "c++"].filter((c) => !onPath(c));
    return missing.length > 0
      ? [
          {
            level: "error",
            code: "llama-server.cannot-build",
            message: `deploy.check needs ${BINARY}, which is not on PATH, and ${missing.join(" and ")} to build it ${missing.length > 1 ? "are" : "is"} missing.`,
            fix: `Install cmake and a C++ compiler (macOS: xcode-select --install; Debian: apt-get install cmake g++), put ${BINARY} on PATH, or set deploy.check: false.`,
          },
        ]
      : [{ level: "ok", code: "llama-server.build", message: `${BINARY} will be built once from llama.cpp's source with cmake (several minutes)` }];
  },
  async run(ctx) {
    const binary = onPath(BINARY) ?? (await (await import("./lib/llama/cmake-build.ts")).buildLlamaTarget(ctx, BINARY));
    await writeFile(join(ctx.staging, SERVER_FILE), JSON.stringify({ binary: underCacheRoot(binary) }, null, 2) + "\n");
  },
  intact: async (dir) => {
    const binary = await serverBinary(dir);
    return existsSync(binary) ? undefined : `${binary} is gone`;
  },
};

/** The llama-server the llama-server node published, on this machine. */
export async function serverBinary(output: string): Promise<string> {
  const { binary } = JSON.parse(await readFile(join(output, SERVER_FILE), "utf8")) as { binary: string };
  return fromCacheRoot(binary);
}
