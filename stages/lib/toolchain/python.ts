// Finding a usable Python interpreter without starting it (inputs are computed on every build).
import { execFile } from "node:child_process";
import { closeSync, openSync, readSync, realpathSync } from "node:fs";
import { isAbsolute } from "node:path";
import { promisify } from "node:util";
import type { Verdict } from "../../../engine/types.ts";
import { executable, onPath } from "./paths.ts";

const MIN_PYTHON: readonly [number, number] = [3, 10];

/** The interpreter named by pipeline.yaml, $PYTHON, or python3 on PATH, as an absolute path. */
export function findPython(configured?: string): { name: string; path: string | undefined } {
  const name = configured ?? process.env.PYTHON ?? "python3";
  if (isAbsolute(name) || name.includes("/")) return { name, path: executable(name) ? name : undefined };
  return { name, path: onPath(name) };
}

const resolved = new Map<string, Promise<string>>();

/**
 * The version of the interpreter a name really runs. Asked of Python itself, since `python3` is often
 * a shim (pyenv, asdf) whose own file says nothing of the version behind it. Asynchronous and asked once
 * per process (`-S`: no site packages needed to say so): through pyenv's shim the answer takes ~100 ms.
 */
function resolvePython(path: string): Promise<string> {
  let found = resolved.get(path);
  if (!found) {
    found = promisify(execFile)(path, ["-S", "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"], { encoding: "utf8" }).then(({ stdout }) => stdout.trim() || "0.0.0");
    resolved.set(path, found);
  }
  return found;
}

/**
 * What identifies the interpreter in a fingerprint without starting it when possible: a real binary is
 * identified by its bytes (a file input, stat-cached); a shim script (pyenv, asdf) picks the Python behind
 * it at run time, so only asking Python says which: by its version, which is what keys the environment
 * made with it (its path, under a home folder, would differ between machines for nothing).
 */
export async function pythonIdentity(path: string): Promise<{ files: string[]; tools: Record<string, string> }> {
  const real = realpathSync(path);
  const fd = openSync(real, "r");
  const head = Buffer.alloc(2);
  readSync(fd, head, 0, 2, 0);
  closeSync(fd);
  if (head.toString("latin1") !== "#!") return { files: [real], tools: {} };
  return { files: [], tools: { python: await resolvePython(path) } };
}

/**
 * Starts identifying the default interpreter (`$PYTHON` or python3) now. Through a pyenv or asdf shim the
 * answer takes ~100 ms, about what loading the tool takes, so the entry point asks before it loads.
 */
export function prefetchPython(): void {
  const { path } = findPython();
  if (path) pythonIdentity(path).catch(() => undefined); // a failure is reported where the answer is used
}

export async function pythonVersion(path: string): Promise<string> {
  return resolvePython(path);
}

export async function pythonVerdicts(configured?: string): Promise<Verdict[]> {
  const { name, path } = findPython(configured);
  if (!path) {
    return [
      {
        level: "error",
        code: "python.missing",
        message: `Python interpreter "${name}" not found on PATH.`,
        fix: `Install Python ${MIN_PYTHON.join(".")} or newer, or name one with \`python:\` in pipeline.yaml or the PYTHON environment variable.`,
      },
    ];
  }
  let version: string;
  try {
    version = await pythonVersion(path);
  } catch (e) {
    return [{ level: "error", code: "python.broken", message: `${path} does not run: ${(e as Error).message.split("\n")[0]}`, fix: "Point `python:` at a working Python 3.10+." }];
  }
  const [major = 0, minor = 0] = version.split(".").map(Number);
  if (major < MIN_PYTHON[0] || (major === MIN_PYTHON[0] && minor < MIN_PYTHON[1])) {
    return [
      {
        level: "error",
        code: "python.old",
        message: `${path} is Python ${version}; mlx-lm needs ${MIN_PYTHON.join(".")} or newer.`,
        fix: "Install a newer Python and name it with `python:` in pipeline.yaml or $PYTHON.",
      },
    ];
  }
  return [{ level: "ok", code: "python.ok", message: `Python ${version} at ${path}` }];
}
