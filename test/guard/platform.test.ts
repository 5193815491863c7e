// Where MLX's wheels exist, decided from injected platform facts (this machine is neither Mac).
import { describe, expect, it } from "vitest";
import { mlxPlatformVerdicts } from "../../guard/platform.ts";

const levels = (platform: NodeJS.Platform, arch: string, release: string) => mlxPlatformVerdicts({ platform, arch, release }).map((v) => v.level);

describe("mlx-env platform guard", () => {
  it("refuses an Intel Mac, even on a new macOS", () => {
    const [v] = mlxPlatformVerdicts({ platform: "darwin", arch: "x64", release: "24.1.0" });
    expect(v?.level).toBe("error");
    expect(v?.message).toMatch(/macosx_14_0_arm64/);
    expect(v?.message).toMatch(/x64 Mac/);
    expect(v?.fix).toMatch(/Apple-silicon/);
  });

  it("refuses macOS 13 on Apple silicon and says which macOS it is", () => {
    const [v] = mlxPlatformVerdicts({ platform: "darwin", arch: "arm64", release: "22.6.0" });
    expect(v?.level).toBe("error");
    expect(v?.message).toMatch(/macOS 13/);
    expect(v?.fix).toMatch(/Sonoma/);
  });

  it("accepts macOS 14, 15 and 26 on Apple silicon", () => {
    expect(levels("darwin", "arm64", "23.0.0")).toEqual(["ok"]);
    expect(levels("darwin", "arm64", "24.6.0")).toEqual(["ok"]);
    const [tahoe] = mlxPlatformVerdicts({ platform: "darwin", arch: "arm64", release: "25.0.0" });
    expect(tahoe?.message).toMatch(/macOS 26/);
  });

  it("has nothing to say on Linux", () => {
    expect(levels("linux", "x64", "6.8.0")).toEqual([]);
  });
});
