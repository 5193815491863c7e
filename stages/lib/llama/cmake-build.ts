// One llama.cpp program built with cmake from the llama-cpp node's source, once per user and version, kept
// under the per-user cache. Built in a temporary folder and renamed, so a half-built folder is never used.
import { existsSync } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import type { RunCtx } from "../../../engine/types.ts";
import { assertSuccess } from "../../../engine/exec.ts";
import { userCacheDir } from "../paths.ts";
import { readToolchain } from "../venv.ts";

/** Static, so the binary stands alone in the cache; no network code (curl, OpenSSL). */
const FLAGS = ["-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_OPENSSL=OFF", "-DLLAMA_CURL=OFF"];

/** The path of `target` built from the llama-cpp node's source (built now if it is not yet). */
export async function buildLlamaTarget<C>(ctx: RunCtx<C>, target: "llama-quantize" | "llama-server"): Promise<string> {
  const info = await readToolchain(ctx.upstream("llama-cpp"));
  const buildDir = userCacheDir(target, info.versions.llama_cpp ?? "unknown");
  const binary = join(buildDir, "bin", target);
  if (existsSync(binary)) return binary;
  const tmp = `${buildDir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  const server = target === "llama-server" ? "ON" : "OFF";
  ctx.progress("configuring llama.cpp with cmake");
  assertSuccess(await ctx.exec("cmake", ["-S", info.source!, "-B", tmp, ...FLAGS, `-DLLAMA_BUILD_SERVER=${server}`]), "cmake (configure)");
  ctx.progress(`building ${target} (a few minutes, once)`);
  const onLine = (line: string) => /^\[\s*\d+%\]/.test(line) && ctx.progress(`building ${target}: ${line.slice(0, 60)}`);
  // Every core: building is a heavy node, so nothing else heavy runs meanwhile.
  assertSuccess(await ctx.exec("cmake", ["--build", tmp, "--target", target, "-j", String(availableParallelism())], { onLine }), `cmake --build (${target})`);
  // Another build may have finished the same binary meanwhile: keep theirs.
  await rename(tmp, buildDir).catch(() => rm(tmp, { recursive: true, force: true }));
  return binary;
}
