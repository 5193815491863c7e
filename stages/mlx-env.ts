// Node mlx-env: the Python environment with mlx-lm, built from stages/requirements/mlx.txt.
import { readFileSync } from "node:fs";
import type { PipelineConfig } from "../config/schema.ts";
import type { NodeSpec, Verdict } from "../engine/types.ts";
import { assertSuccess } from "../engine/types.ts";
import { toolFile } from "./lib/toolchain/paths.ts";
import { findPython, pythonVerdicts } from "./lib/toolchain/python.ts";
import { ensureVenv, interpreterInputs, preloadEnv, publishToolchain, requirePython, TOOLCHAIN_INFO, toolchainGone, venvPython } from "./lib/toolchain/venv.ts";

const REQUIREMENTS = toolFile("stages", "requirements", "mlx.txt");
/** mlx-lm before 0.29 leaves quantization_config behind after a dequantizing fuse. */
const MIN_MLX_LM = "0.29.0";
const PACKAGES = ["mlx", "mlx-lm", "transformers", "huggingface_hub"];

/** Linux wheels of MLX need glibc 2.35 or newer. */
function glibcVerdicts(): Verdict[] {
  if (process.platform !== "linux") return [];
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  const glibc = report?.header?.glibcVersionRuntime;
  if (!glibc) return [];
  const [major = 0, minor = 0] = glibc.split(".").map(Number);
  return major > 2 || (major === 2 && minor >= 35)
    ? []
    : [{ level: "error", code: "mlx.glibc", message: `glibc ${glibc}: MLX's Linux wheels need glibc 2.35 or newer.`, fix: "Use a newer Linux (Ubuntu 22.04+, Debian 12+)." }];
}

function versionAtLeast(version: string, minimum: string): boolean {
  const a = version.split(".").map(Number);
  const b = minimum.split(".").map(Number);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d > 0;
  }
  return true;
}

/** The pinned mlx-lm must be new enough to fuse a quantized model correctly. */
function pinVerdicts(): Verdict[] {
  const pins = [...readFileSync(REQUIREMENTS, "utf8").matchAll(/^mlx-lm(?:\[\w+\])?==([\d.]+)/gm)].map((m) => m[1]!);
  const old = pins.filter((v) => !versionAtLeast(v, MIN_MLX_LM));
  if (pins.length === 0) return [{ level: "error", code: "mlx.unpinned", message: `${REQUIREMENTS} pins no mlx-lm version.`, fix: `Pin mlx-lm==X (X ≥ ${MIN_MLX_LM}).` }];
  if (old.length > 0) return [{ level: "error", code: "mlx.old", message: `${REQUIREMENTS} pins mlx-lm ${old.join(", ")}; before ${MIN_MLX_LM} a de-quantizing fuse leaves quantization_config behind and the result does not load.`, fix: `Pin mlx-lm ${MIN_MLX_LM} or newer.` }];
  return [{ level: "ok", code: "mlx.pin", message: `mlx-lm ${pins[0]} pinned` }];
}

export const mlxEnv: NodeSpec<PipelineConfig> = {
  id: "mlx-env",
  deps: [],
  description: "Python environment with mlx-lm",
  async inputs(ctx) {
    const python = await interpreterInputs(ctx.config.python);
    return {
      files: [REQUIREMENTS, TOOLCHAIN_INFO, ...python.files],
      params: { python: findPython(ctx.config.python).name },
      tools: python.tools,
      command: ["python -m venv", "pip install -r mlx.txt"],
    };
  },
  async guard(ctx) {
    // Loaded by the guard: a no-op build loads this module for its inputs alone.
    const { currentPlatform, mlxPlatformVerdicts } = await import("../guard/platform.ts");
    return [...(await pythonVerdicts(ctx.config.python)), ...mlxPlatformVerdicts(currentPlatform()), ...glibcVerdicts(), ...pinVerdicts()];
  },
  async run(ctx) {
    const venv = await ensureVenv(ctx, "mlx", REQUIREMENTS, requirePython(ctx.config.python));
    const { openblasPreload } = await import("./lib/toolchain/openblas.ts"); // a no-op loads this module for its inputs alone
    const preload = await openblasPreload(venv);
    // Proves the preload works (and that mlx imports at all) before anything relies on it.
    const probe = await ctx.exec(venvPython(venv), ["-c", "import mlx.core as mx; mx.eval(mx.ones((2, 2)) @ mx.ones((2, 2)))"], { env: preloadEnv(preload) });
    assertSuccess(probe, "importing mlx in the new environment");
    await publishToolchain(ctx, venv, REQUIREMENTS, PACKAGES, { preload });
  },
  intact: toolchainGone,
};
