// The per-user Python environments (stages/lib/venv.ts): where an environment for a pinned requirements file
// lives (keyed by the file's text, the Python version and the platform, not its path or project), how a
// published toolchain.json is read back on this machine, and what makes one unusable. The environments here
// are real (python -m venv, pip install -r) from requirement files that install nothing: seconds, no download.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sha256 } from "../../engine/digest.ts";
import { REPO, TSX_ARGS } from "../helpers/cli.ts";
import { execLogged } from "../../engine/exec.ts";
import type { RunCtx } from "../../engine/types.ts";
import { UserError } from "../../engine/types.ts";
import { findPython } from "../../stages/lib/toolchain/python.ts";
import {
  ensureVenv,
  existingVenv,
  interpreterInputs,
  preloadEnv,
  publishToolchain,
  readToolchain,
  requirePython,
  resolveToolchain,
  toolchainGone,
  venvPython,
} from "../../stages/lib/toolchain/venv.ts";

const temp = (prefix: string) => mkdtempSync(join(tmpdir(), prefix));

/** A folder holding toolchain.json with this text (or this object as JSON). */
function published(body: string | object): string {
  const dir = join(temp("toolchain-"), "mlx-env");
  mkdirSync(dir);
  writeFileSync(join(dir, "toolchain.json"), typeof body === "string" ? body : JSON.stringify(body));
  return dir;
}

describe("toolchain.json", () => {
  let cacheRoot: string;
  const saved = process.env.MLX_PIPELINE_CACHE;
  beforeAll(() => {
    cacheRoot = temp("cache-root-");
    process.env.MLX_PIPELINE_CACHE = cacheRoot;
  });
  afterAll(() => {
    if (saved === undefined) delete process.env.MLX_PIPELINE_CACHE;
    else process.env.MLX_PIPELINE_CACHE = saved;
  });

  it("paths under the cache root are resolved against this machine's root; one outside stays absolute", () => {
    const stored = { venv: "venvs/mlx-0123", versions: { mlx_lm: "0.31.2" }, requirements: "ab", source: "/home/me/llama.cpp", preload: ["openblas/lib/libopenblas.so"] };
    expect(resolveToolchain(stored, "/elsewhere/cache")).toEqual({
      venv: "/elsewhere/cache/venvs/mlx-0123",
      python: "/elsewhere/cache/venvs/mlx-0123/bin/python",
      versions: { mlx_lm: "0.31.2" },
      source: "/home/me/llama.cpp",
      env: { LD_PRELOAD: "/elsewhere/cache/openblas/lib/libopenblas.so" },
    });
    // Without a root: this machine's (MLX_PIPELINE_CACHE here); no source, no preload, no environment.
    expect(resolveToolchain({ ...stored, source: undefined, preload: [] })).toEqual({
      venv: join(cacheRoot, "venvs/mlx-0123"),
      python: join(cacheRoot, "venvs/mlx-0123/bin/python"),
      versions: { mlx_lm: "0.31.2" },
      env: {},
    });
  });

  it("preloads join with a colon, and none sets no LD_PRELOAD", () => {
    expect(preloadEnv([])).toEqual({});
    expect(preloadEnv(["/a/libx.so", "/b/liby.so"])).toEqual({ LD_PRELOAD: "/a/libx.so:/b/liby.so" });
    expect(venvPython("/v")).toBe("/v/bin/python");
  });

  it("is read with its defaults (no requirements digest, no preload from older files)", async () => {
    const dir = published({ venv: "venvs/mlx-1", versions: { python: "3.11.7" } });
    expect(await readToolchain(dir)).toEqual({ venv: join(cacheRoot, "venvs/mlx-1"), python: join(cacheRoot, "venvs/mlx-1/bin/python"), versions: { python: "3.11.7" }, env: {} });
  });

  it("an unreadable one is an error naming the file, what was wrong and the node to rebuild", async () => {
    const cases: [string | object | undefined, RegExp][] = [
      ["{ not json", /is unreadable \(.*JSON.*\)/],
      [{ versions: {} }, /is unreadable \(.*venv.*\)/s],
      [{ venv: "v", versions: { mlx: 3 } }, /is unreadable \(.*versions.*\)/s],
      [undefined, /is unreadable \(ENOENT/],
    ];
    for (const [body, why] of cases) {
      const dir = body === undefined ? join(temp("toolchain-"), "mlx-env") : published(body);
      const error = await readToolchain(dir).catch((e: unknown) => e);
      expect(error, JSON.stringify(body)).toBeInstanceOf(UserError);
      const message = (error as Error).message;
      expect(message.startsWith(`${join(dir, "toolchain.json")} is unreadable (`), message).toBe(true);
      expect(message).toMatch(why);
      expect(message).toMatch(/; rebuild it with --force mlx-env\.$/);
    }
  });

  it("is gone when it cannot be read, or when its environment was never completed or was removed", async () => {
    expect(await toolchainGone(published("{"))).toMatch(/toolchain\.json is unreadable$/);
    const venv = join(cacheRoot, "venvs", "mlx-gone");
    mkdirSync(venv, { recursive: true });
    const dir = published({ venv: "venvs/mlx-gone", versions: {} });
    expect(await toolchainGone(dir)).toBe(`its environment ${venv} is gone`);
    writeFileSync(join(venv, ".complete"), "");
    expect(await toolchainGone(dir)).toBeUndefined();
  });
});

describe("the interpreter", () => {
  it("a configured Python that is not there: no identity to hash, and an error saying to run check", async () => {
    expect(await interpreterInputs("/no/such/python3")).toEqual({ files: [], tools: { python: "missing" } });
    expect(() => requirePython("/no/such/python3")).toThrow(new UserError("Python not found: run `check` for what to do."));
  });

  it("a real one is identified by its bytes (a binary) or its version (a shim script)", async () => {
    const { path } = findPython();
    expect(path, "python3 on PATH").toBeDefined();
    expect(requirePython()).toBe(path);
    const identity = await interpreterInputs();
    const byFile = identity.files.length === 1 && Object.keys(identity.tools).length === 0;
    const byVersion = identity.files.length === 0 && /^3\.\d+\.\d+$/.test(identity.tools.python ?? "");
    expect(byFile || byVersion, JSON.stringify(identity)).toBe(true);
  });
});

describe("a shim's answer, remembered across runs", () => {
  // A pyenv-like shim: it runs the interpreter named by $PYENV_VERSION, else ./.python-version, else
  // $PYENV_ROOT/version. Each fake interpreter answers the probe as Python does (version, then its real
  // path) and logs the run, so a test sees whether a build asked it or trusted the memo.
  const dir = temp("python-shim-");
  const root = join(dir, "pyenv");
  const runs = join(dir, "runs.log");
  const shim = join(dir, "bin", "python3");
  const interpreter = (name: string, version: string) => {
    const file = join(root, "versions", name, "python");
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `#!/bin/sh\necho ${name} >> '${runs}'\nprintf '%s\\n%s\\n' ${version} "$0"\n`, { mode: 0o755 });
  };
  mkdirSync(dirname(shim));
  writeFileSync(
    shim,
    `#!/bin/sh\nv=$(cat "$PYENV_ROOT/version")\n[ -f .python-version ] && v=$(cat .python-version)\n[ -n "$PYENV_VERSION" ] && v=$PYENV_VERSION\nexec "$PYENV_ROOT/versions/$v/python" "$@"\n`,
    { mode: 0o755 },
  );
  const project = join(dir, "project");
  const another = join(dir, "another-project");
  mkdirSync(project);
  mkdirSync(another);

  /** interpreterInputs() in a new process (the in-process answer is kept for the process's life), and the runs so far. */
  function identity(env: Record<string, string> = {}, cwd = project): { tools: Record<string, string>; asked: number } {
    const venvTs = pathToFileURL(join(REPO, "stages/lib/toolchain/venv.ts")).href;
    const code = `const { interpreterInputs } = await import(${JSON.stringify(venvTs)}); console.log(JSON.stringify(await interpreterInputs()));`;
    const out = execFileSync(process.execPath, [...TSX_ARGS, "--input-type=module", "-e", code], {
      cwd,
      env: { ...process.env, PYTHON: shim, PYENV_ROOT: root, PYENV_VERSION: "", MLX_PIPELINE_CACHE: join(dir, "cache"), ...env },
      encoding: "utf8",
    });
    const asked = existsSync(runs) ? readFileSync(runs, "utf8").split("\n").filter(Boolean).length : 0;
    return { tools: (JSON.parse(out) as { tools: Record<string, string> }).tools, asked };
  }

  it("is not asked again while the shim would choose the same binary; a changed choice or binary is asked again", () => {
    interpreter("a", "3.10.1");
    interpreter("b", "3.12.0");
    writeFileSync(join(root, "version"), "a\n");
    expect(identity()).toEqual({ tools: { python: "3.10.1" }, asked: 1 });
    expect(identity()).toEqual({ tools: { python: "3.10.1" }, asked: 1 }); // remembered: no interpreter ran
    expect(identity({}, another)).toEqual({ tools: { python: "3.10.1" }, asked: 1 }); // another folder, no version file of its own
    writeFileSync(join(root, "version"), "b\n"); // `pyenv global b`
    expect(identity()).toEqual({ tools: { python: "3.12.0" }, asked: 2 });
    interpreter("b", "3.12.10"); // upgraded in place: the same choice, another binary
    expect(identity()).toEqual({ tools: { python: "3.12.10" }, asked: 3 });
    expect(identity({ PYENV_VERSION: "a" })).toEqual({ tools: { python: "3.10.1" }, asked: 4 }); // `pyenv shell a`
    writeFileSync(join(project, ".python-version"), "a\n"); // `pyenv local a`
    expect(identity()).toEqual({ tools: { python: "3.10.1" }, asked: 5 });
    expect(identity()).toEqual({ tools: { python: "3.10.1" }, asked: 5 });
    expect(identity({}, another)).toEqual({ tools: { python: "3.12.10" }, asked: 5 }); // the global choice, remembered above
  });

  it("a torn memo is not trusted: Python is asked", () => {
    writeFileSync(join(dir, "cache", "interpreters.json"), '{"x": {"version": 3');
    const before = identity().asked;
    expect(identity().asked).toBe(before);
    writeFileSync(join(dir, "cache", "interpreters.json"), '{"x": {"version": 3');
    expect(identity().asked).toBe(before + 1);
  });
});

describe("environments from pinned requirements", () => {
  let cacheRoot: string;
  let log: string;
  let commands: string[];
  let notes: string[];
  const saved = process.env.MLX_PIPELINE_CACHE;
  const python = requirePython();

  /** What ensureVenv and publishToolchain use of a node's context: real processes, their command lines counted. */
  const ctx = (staging = temp("staging-")) =>
    ({
      staging,
      signal: new AbortController().signal,
      exec: (command: string, args: readonly string[], options?: Parameters<typeof execLogged>[4]) => {
        commands.push([command, ...args].join(" "));
        return execLogged(command, args, log, new AbortController().signal, options);
      },
      progress: () => undefined,
      note: (text: string) => notes.push(text),
    }) as unknown as RunCtx<unknown>;

  const requirements = (text: string) => {
    const path = join(temp("requirements-"), "requirements.txt");
    writeFileSync(path, text);
    return path;
  };

  beforeAll(() => {
    cacheRoot = temp("cache-root-");
    process.env.MLX_PIPELINE_CACHE = cacheRoot;
    log = join(temp("logs-"), "venv.log");
  });
  afterAll(() => {
    if (saved === undefined) delete process.env.MLX_PIPELINE_CACHE;
    else process.env.MLX_PIPELINE_CACHE = saved;
  });

  it("is made once per requirements text, reused by any project, and published as toolchain.json", async () => {
    commands = [];
    notes = [];
    const pinned = requirements("# nothing to install\n");
    expect(await existingVenv("tiny", pinned, python)).toBeUndefined();

    const venv = await ensureVenv(ctx(), "tiny", pinned, python);
    expect(venv).toMatch(new RegExp(`^${cacheRoot}/venvs/tiny-[0-9a-f]{16}$`));
    expect(commands).toEqual([`${python} -m venv ${venv}`, `${venv}/bin/python -m pip install --disable-pip-version-check --progress-bar off -r ${pinned}`]);
    expect(readFileSync(join(venv, ".complete"), "utf8")).toBe("# nothing to install\n");
    expect(await existingVenv("tiny", pinned, python)).toBe(venv);

    // The same text in another project's file: the same environment, reused without running anything.
    commands = [];
    const copy = requirements("# nothing to install\n");
    expect(await ensureVenv(ctx(), "tiny", copy, python)).toBe(venv);
    expect(commands).toEqual([]);
    expect(notes).toEqual([`reusing the environment ${venv}`]);
    // Another name, or a byte more in the requirements: another environment.
    expect(await existingVenv("other", copy, python)).toBeUndefined();
    expect(await existingVenv("tiny", requirements("# nothing to install\n\n"), python)).toBeUndefined();

    // toolchain.json: the environment relative to the cache root, the versions asked of it, the requirements' digest.
    const staging = temp("staging-");
    await publishToolchain(ctx(staging), venv, pinned, ["pip", "no-such-package"], { versions: { llama_cpp: "b1" }, preload: [join(cacheRoot, "openblas", "libopenblas.so")] });
    const stored = JSON.parse(readFileSync(join(staging, "toolchain.json"), "utf8")) as Record<string, unknown>;
    expect(stored).toEqual({
      venv: venv.slice(cacheRoot.length + 1),
      versions: { python: expect.stringMatching(/^3\.\d+\.\d+$/), platform: expect.stringMatching(new RegExp(`^${process.platform}-`)), pip: expect.stringMatching(/^\d+\./), no_such_package: "missing", llama_cpp: "b1" },
      requirements: sha256(readFileSync(pinned)),
      preload: ["openblas/libopenblas.so"],
    });
    expect(await toolchainGone(staging)).toBeUndefined();
    expect((await readToolchain(staging)).python).toBe(venvPython(venv));
  });

  it("a half-made environment (a killed build) is made again; a failed install leaves none to reuse", async () => {
    // The environment of the test before, as a build killed before it completed leaves it: no .complete marker.
    const pinned = requirements("# nothing to install\n");
    const first = (await existingVenv("tiny", pinned, python))!;
    expect(first).toBeDefined();
    const marker = join(first, "left-by-a-killed-build");
    writeFileSync(marker, "");
    rmSync(join(first, ".complete"));
    expect(await existingVenv("tiny", pinned, python)).toBeUndefined();
    expect(await ensureVenv(ctx(), "tiny", pinned, python)).toBe(first);
    expect(existsSync(marker)).toBe(false);
    expect(existsSync(join(first, ".complete"))).toBe(true);

    const broken = requirements(`${join(temp("nothing-"), "no-such-package")}\n`);
    const error = await ensureVenv(ctx(), "broken", broken, python).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(new RegExp(`pip install -r ${broken}`));
    expect(await existingVenv("broken", broken, python)).toBeUndefined();
    expect(readdirSync(join(cacheRoot, "venvs")).filter((n) => n.endsWith(".lock"))).toEqual([]); // the creation lock is released
  });
});
