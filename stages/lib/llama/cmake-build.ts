// llama.cpp programs (llama-quantize, llama-server) built with cmake from the llama-cpp node's source, once per
// user and version. All targets share one build folder, so the second program reuses the ggml and llama
// objects the first compiled (llama-server after llama-quantize compiles the server alone). The folder is
// built in place under a lock (cmake's files name their folder, so it cannot be built elsewhere and moved);
// each finished program is copied out to <cache>/<target>/<version>/bin/ and renamed into place, so a
// half-built program is never used.
import { existsSync } from "node:fs";
import { copyFile, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { RunCtx } from "../../../engine/types.ts";
import { assertSuccess } from "../../../engine/types.ts";
import { running } from "../../../engine/durable.ts";
import { userCacheDir } from "../toolchain/paths.ts";
import { readToolchain } from "../toolchain/venv.ts";

/** The programs built here; all share one build folder. */
export type LlamaTarget = "llama-quantize" | "llama-server";

/** Static, so each program stands alone in the cache; no network code (curl, OpenSSL). */
const FLAGS = ["-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=ON", "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_OPENSSL=OFF", "-DLLAMA_CURL=OFF"];

/** Holds `lock` (a folder with the owner's pid) while `fn` runs; a lock whose owner died is taken over. */
async function locked<T>(ctx: RunCtx<unknown>, lock: string, fn: () => Promise<T>): Promise<T> {
  await mkdir(dirname(lock), { recursive: true });
  for (;;) {
    try {
      await mkdir(lock);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const owner = Number(await readFile(join(lock, "pid"), "utf8").catch(() => "0"));
      if (owner > 0 && !running(owner)) await rm(lock, { recursive: true, force: true });
      else {
        ctx.progress(`waiting for another build of llama.cpp (${lock})`);
        await sleep(2000, undefined, { signal: ctx.signal });
      }
    }
  }
  await writeFile(join(lock, "pid"), String(process.pid));
  try {
    return await fn();
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

/** The path of `target` built from the llama-cpp node's source (built now if it is not yet). */
export async function buildLlamaTarget<C>(ctx: RunCtx<C>, target: LlamaTarget): Promise<string> {
  const info = await readToolchain(ctx.upstream("llama-cpp"));
  const version = info.versions.llama_cpp ?? "unknown";
  const binary = userCacheDir(target, version, "bin", target);
  if (existsSync(binary)) return binary;
  const buildDir = userCacheDir("llama-build", version);
  await locked(ctx as RunCtx<unknown>, `${buildDir}.lock`, async () => {
    if (existsSync(binary)) return; // built by the lock's previous owner
    ctx.progress("configuring llama.cpp with cmake");
    assertSuccess(await ctx.exec("cmake", ["-S", info.source!, "-B", buildDir, ...FLAGS]), "cmake (configure)");
    ctx.progress(`building ${target} (minutes, once)`);
    const onLine = (line: string) => /^\[\s*\d+%\]/.test(line) && ctx.progress(`building ${target}: ${line.slice(0, 60)}`);
    // Every core: building is a heavy node, so nothing else heavy runs meanwhile.
    assertSuccess(await ctx.exec("cmake", ["--build", buildDir, "--target", target, "-j", String(availableParallelism())], { onLine }), `cmake --build (${target})`);
    await mkdir(dirname(binary), { recursive: true });
    const tmp = `${binary}.tmp-${process.pid}`;
    await copyFile(join(buildDir, "bin", target), tmp);
    await rename(tmp, binary);
  });
  return binary;
}
