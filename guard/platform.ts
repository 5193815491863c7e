// Where MLX's wheels exist. MLX 0.32 publishes macOS wheels only for Apple silicon on macOS 14 or newer
// (macosx_14_0_arm64): on an Intel Mac or an older macOS, pip fails with "no matching distribution" after
// minutes of resolving, so the mlx-env guard says so first.
import { arch, release } from "node:os";
import type { Verdict } from "../engine/types.ts";

export interface PlatformFacts {
  readonly platform: NodeJS.Platform;
  readonly arch: string;
  /** The kernel release (os.release()): Darwin 23 is macOS 14. */
  readonly release: string;
}

export function currentPlatform(): PlatformFacts {
  return { platform: process.platform, arch: arch(), release: release() };
}

/** macOS's version from Darwin's: 20–24 are macOS 11–15; after 15 came macOS 26 (Darwin 25). */
function macosMajor(darwinRelease: string): number {
  const darwin = Number.parseInt(darwinRelease, 10);
  return darwin >= 25 ? darwin + 1 : darwin - 9;
}

const MIN_MACOS = 14;

export function mlxPlatformVerdicts(facts: PlatformFacts): Verdict[] {
  if (facts.platform !== "darwin") return [];
  const macos = macosMajor(facts.release);
  const problems = [
    facts.arch !== "arm64" && `an ${facts.arch} Mac (or Node running under Rosetta)`,
    macos < MIN_MACOS && `macOS ${macos}`,
  ].filter(Boolean);
  if (problems.length === 0) return [{ level: "ok", code: "mlx.platform", message: `macOS ${macos} on Apple silicon: MLX's wheels exist` }];
  return [
    {
      level: "error",
      code: "mlx.platform",
      message: `MLX publishes macOS wheels only for Apple silicon on macOS ${MIN_MACOS} or newer (macosx_${MIN_MACOS}_0_arm64); this is ${problems.join(" with ")}, so pip would find no MLX to install.`,
      fix:
        facts.arch !== "arm64"
          ? "Train on an Apple-silicon Mac (M1 or later) with an arm64 Node and Python, or on Linux (MLX's CPU or CUDA wheels)."
          : `Update macOS to ${MIN_MACOS} (Sonoma) or newer, or train on Linux (MLX's CPU or CUDA wheels).`,
    },
  ];
}
