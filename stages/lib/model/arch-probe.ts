// mlx-lm's own answer about an architecture, for the adapters guard: arch_probe.py run in the mlx environment.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { PipelineConfig } from "../../../config/schema.ts";
import { sha256 } from "../../../engine/digest.ts";
import type { BaseCtx } from "../../../engine/types.ts";
import { countParameters } from "../../../guard/parameters.ts";
import type { ArchAnswer } from "../../../guard/training.ts";
import type { ModelFacts, ProbeResult } from "../../../guard/verdicts.ts";
import { mlxToolchain } from "../toolchain/mlx.ts";
import { userCacheDir } from "../toolchain/paths.ts";
import { pyScript, PY_ENV } from "../toolchain/tools.ts";

/** Layers the probe keeps (more for layer patterns such as Gemma 3's), and the size it still trains quickly. */
const PROBE_LAYERS = 6;
const PROBE_MAX_PARAMS = 150e6;

/**
 * mlx-lm's answer about the base model's architecture, or why it gave none; undefined without an mlx
 * environment. One LoRA step proves training works, but on a cut-down copy of a large model it costs more than
 * a guard should: there mlx-lm's own module lookup is the answer.
 */
export async function askMlxLm(ctx: BaseCtx<PipelineConfig>, facts: ModelFacts): Promise<ArchAnswer | undefined> {
  const perLayer = countParameters(facts.shape).blocks / facts.shape.numLayers;
  try {
    return await probeArchitecture(ctx, join(facts.dir, "config.json"), perLayer * PROBE_LAYERS <= PROBE_MAX_PARAMS);
  } catch (e) {
    return { failed: (e as { stderr?: string }).stderr?.trim().split("\n").at(-1) ?? (e as Error).message };
  }
}

/**
 * mlx-lm's own verdict on an architecture: its model module (after its remapping), and one LoRA step on
 * a cut-down copy. Cached per config and mlx-lm version, since the step takes seconds.
 */
async function probeArchitecture(
  ctx: BaseCtx<PipelineConfig>,
  configPath: string,
  withStep: boolean,
): Promise<{ probe: ProbeResult; mlxLm: string } | undefined> {
  const info = await mlxToolchain(ctx);
  if (!info) return undefined;
  const mlxLm = info.versions.mlx_lm ?? "unknown";
  const config = readFileSync(configPath, "utf8");
  const cache = userCacheDir("arch-probes", `${sha256(`${config}\n${mlxLm}\n${withStep}`).slice(0, 24)}.json`);
  if (existsSync(cache)) return { probe: JSON.parse(readFileSync(cache, "utf8")) as ProbeResult, mlxLm };
  const out = execFileSync(info.python, [pyScript("arch_probe.py"), configPath, ...(withStep ? ["--lora-step"] : [])], {
    encoding: "utf8",
    env: { ...process.env, ...PY_ENV, ...info.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const probe = JSON.parse(out.trim().split("\n").at(-1) ?? "{}") as ProbeResult;
  mkdirSync(userCacheDir("arch-probes"), { recursive: true });
  // Written whole, then renamed: concurrent builds may probe the same config.
  writeFileSync(`${cache}.${process.pid}`, JSON.stringify(probe));
  renameSync(`${cache}.${process.pid}`, cache);
  return { probe, mlxLm };
}
