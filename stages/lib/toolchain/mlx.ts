// The mlx environment as guards find it before anything is built: this project's, or the identical one another
// project already built (same pinned requirements, same Python), so even a first build can ask mlx-lm.
import { execFileSync } from "node:child_process";
import type { PipelineConfig } from "../../../config/schema.ts";
import type { BaseCtx } from "../../../engine/types.ts";
import { openblasEnv } from "./openblas.ts";
import { toolFile } from "./paths.ts";
import { findPython } from "./python.ts";
import { existingVenv, readToolchain, TOOLCHAIN_INFO, venvPython } from "./venv.ts";

const MLX_REQUIREMENTS = toolFile("stages", "requirements", "mlx.txt");

/** The mlx environment, with the version of its mlx-lm. */
export async function mlxToolchain(ctx: BaseCtx<PipelineConfig>): Promise<{ python: string; env: Record<string, string>; versions: Record<string, string> } | undefined> {
  if (ctx.isBuilt("mlx-env")) return readToolchain(ctx.upstream("mlx-env"));
  const venv = await mlxVenv(ctx);
  if (!venv) return undefined;
  const version = (pkg: string) => {
    const dist = execFileSync(venvPython(venv), [TOOLCHAIN_INFO, pkg], { encoding: "utf8" });
    return (JSON.parse(dist) as Record<string, string>)[pkg.replace("-", "_")] ?? "unknown";
  };
  return { python: venvPython(venv), env: await openblasEnv(venv), versions: { mlx_lm: version("mlx-lm") } };
}

/** The mlx environment's interpreter and process environment, found as mlxToolchain finds it, without asking versions. */
export async function mlxPython(ctx: BaseCtx<PipelineConfig>): Promise<{ python: string; env: Record<string, string> } | undefined> {
  if (ctx.isBuilt("mlx-env")) return readToolchain(ctx.upstream("mlx-env"));
  const venv = await mlxVenv(ctx);
  return venv ? { python: venvPython(venv), env: await openblasEnv(venv) } : undefined;
}

async function mlxVenv(ctx: BaseCtx<PipelineConfig>): Promise<string | undefined> {
  const python = findPython(ctx.config.python).path;
  return python ? existingVenv("mlx", MLX_REQUIREMENTS, python) : undefined;
}
