// Node llama-server: llama.cpp's OpenAI-compatible server, found on PATH or built once with cmake from the same
// llama.cpp source that converts the model (and builds llama-quantize). eval sends the test split through it
// when deploy.check is set: what LM Studio and Ollama users get is the GGUF's own template applied by a server.
import type { PipelineConfig } from "../config/schema.ts";
import type { NodeSpec } from "../engine/types.ts";
import { programBinary, programInputs, programIntact, programVerdict, runProgram, type LlamaProgram } from "./lib/llama/program.ts";

const SERVER: LlamaProgram = { binary: "llama-server", file: "llama-server.json", configure: "cmake -B build -DLLAMA_BUILD_SERVER=ON ..." };

export const llamaServerNode: NodeSpec<PipelineConfig> = {
  id: "llama-server",
  deps: ["llama-cpp"],
  description: "llama.cpp's llama-server",
  inputs: (ctx) => programInputs(ctx, SERVER),
  guard: () => [programVerdict(SERVER, "llama-server", "deploy.check", "set deploy.check: false")],
  run: (ctx) => runProgram(ctx, SERVER),
  intact: (dir) => programIntact(dir, SERVER),
};

/** The llama-server the llama-server node published, on this machine. */
export const serverBinary = (output: string): Promise<string> => programBinary(output, SERVER);
