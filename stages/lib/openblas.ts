// mlx-cpu's Linux wheel bundles the reference BLAS: a 512×128×128k matmul takes 3.8 s with it and 0.29 s
// with OpenBLAS on the project's 2-core machine. LoRA training on the CPU is mostly such matmuls (the
// logits over a 128k-262k vocabulary), so every mlx process gets OpenBLAS (from PyPI's cmeel-openblas)
// preloaded. Its libgfortran dependency is met by the copy mlx-cpu itself ships.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, readdir, symlink } from "node:fs/promises";
import { join } from "node:path";

function sitePackages(venv: string): string | undefined {
  const lib = join(venv, "lib");
  if (!existsSync(lib)) return undefined;
  return readdirSync(lib)
    .filter((d) => d.startsWith("python"))
    .map((d) => join(lib, d, "site-packages"))
    .find((p) => existsSync(p));
}

/**
 * cmeel-openblas is built for one target (DYNAMIC_ARCH=OFF, SKYLAKEX): on a CPU without AVX-512 (AMD EPYC
 * before Zen 4, many laptops) its first matmul dies of SIGILL, so it is preloaded only where it can run.
 */
function cpuHasAvx512(): boolean {
  try {
    return /^flags\s*:.*\bavx512f\b/m.test(readFileSync("/proc/cpuinfo", "utf8"));
  } catch {
    return false;
  }
}

/** The environment that makes mlx use OpenBLAS, or {} where that does not apply (macOS, other wheels, no AVX-512). */
export async function openblasEnv(venv: string): Promise<Record<string, string>> {
  if (process.platform !== "linux" || !cpuHasAvx512()) return {};
  const site = sitePackages(venv);
  if (!site) return {};
  const openblas = join(site, "cmeel.prefix", "lib", "libopenblas.so.0");
  const mlxLibs = join(site, "mlx_cpu.libs");
  if (!existsSync(openblas) || !existsSync(mlxLibs)) return {};
  const gfortran = (await readdir(mlxLibs)).find((n) => n.startsWith("libgfortran-"));
  if (!gfortran) return {};
  const shim = join(venv, "openblas-shim");
  const link = join(shim, "libgfortran.so.5");
  if (!existsSync(link)) {
    // Several builds may get here at once: whoever makes the link first wins, the others use it.
    await mkdir(shim, { recursive: true });
    await symlink(join(mlxLibs, gfortran), link).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== "EEXIST") throw e;
    });
  }
  return { LD_PRELOAD: openblas, LD_LIBRARY_PATH: `${shim}:${mlxLibs}` };
}
