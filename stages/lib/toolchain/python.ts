// Finding a usable Python interpreter without starting it (inputs are computed on every build).
import { execFile } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync, readSync, realpathSync, renameSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, isAbsolute, join } from "node:path";
import { promisify } from "node:util";
import { sha256 } from "../../../engine/digest.ts";
import type { Verdict } from "../../../engine/types.ts";
import { executable, onPath, userCacheDir } from "./paths.ts";

const MIN_PYTHON: readonly [number, number] = [3, 10];

/** The interpreter named by pipeline.yaml, $PYTHON, or python3 on PATH, as an absolute path. */
export function findPython(configured?: string): { name: string; path: string | undefined } {
  const name = configured ?? process.env.PYTHON ?? "python3";
  if (isAbsolute(name) || name.includes("/")) return { name, path: executable(name) ? name : undefined };
  return { name, path: onPath(name) };
}

const resolved = new Map<string, Promise<string>>();

/** What Python says of itself: its version and the binary that really ran (`-S`: no site packages needed). */
const PROBE = "import os, sys; print('%d.%d.%d' % sys.version_info[:3]); print(os.path.realpath(sys.executable))";

/**
 * The version of the interpreter a name really runs. Asked of Python itself, since `python3` is often
 * a shim (pyenv, asdf) whose own file says nothing of the version behind it. Asked once per process, and
 * remembered across processes (see askedBefore): through pyenv's shim the answer takes ~100 ms of two busy
 * cores, the largest part of a warm no-op.
 */
function resolvePython(path: string): Promise<string> {
  let found = resolved.get(path);
  if (!found) {
    const key = choiceKey(path);
    const known = askedBefore(key);
    found = known !== undefined ? Promise.resolve(known) : askPython(path, key);
    resolved.set(path, found);
  }
  return found;
}

async function askPython(path: string, key: string): Promise<string> {
  const { stdout } = await promisify(execFile)(path, ["-S", "-c", PROBE], { encoding: "utf8" });
  const [version = "", binary = ""] = stdout.trim().split("\n");
  if (!version) return "0.0.0";
  if (isAbsolute(binary)) remember(key, { version, binary, stat: statKey(binary) });
  return version;
}

/**
 * What a shim reads to choose the Python behind it: its own file, PATH and its managers' variables (pyenv's
 * PYENV_VERSION, PYENV_ROOT; asdf's), and the version files pyenv and asdf look for from the working folder
 * up, then the global ones. The same key means the same choice; the chosen binary is compared by its stat
 * besides (an interpreter upgraded in place). The files count by their content in lookup order, not by
 * their folder: every project folder without a version file of its own shares one answer.
 */
function choiceKey(path: string): string {
  const env = Object.entries(process.env).filter(([k]) => k === "PATH" || k === "HOME" || /^(PYENV|ASDF)_/.test(k)).sort(([a], [b]) => (a < b ? -1 : 1));
  const lookup: string[] = [];
  for (let dir = process.cwd(); ; dir = dirname(dir)) {
    lookup.push(join(dir, ".python-version"), join(dir, ".tool-versions"));
    if (dirname(dir) === dir) break;
  }
  lookup.push(join(process.env.PYENV_ROOT ?? join(homedir(), ".pyenv"), "version"), join(homedir(), ".tool-versions"));
  const found = lookup.flatMap((f) => {
    try {
      return [`${f.endsWith(".tool-versions") ? "asdf" : "pyenv"}:${readFileSync(f, "utf8")}`];
    } catch {
      return []; // absent: a shim looks in the next place
    }
  });
  const shim = realpathSync(path);
  return sha256(JSON.stringify({ shim, stat: statKey(shim), env, found }));
}

function statKey(file: string): string {
  const s = statSync(file);
  return `${s.ino}:${s.size}:${s.mtimeMs}`;
}

interface Answer {
  readonly version: string;
  /** The real binary the shim ran, and its stat when it answered. */
  readonly binary: string;
  readonly stat: string;
}

const MEMO = () => userCacheDir("interpreters.json");
/** A few interpreters and launchers (npx and node set different PATHs), not one per project folder. */
const KEEP = 16;

/** The memo file's entries; its shape is checked here, not with zod, which a warm no-op does not load. */
function readMemo(): Record<string, Answer> {
  try {
    const data: unknown = JSON.parse(readFileSync(MEMO(), "utf8"));
    if (data === null || typeof data !== "object" || Array.isArray(data)) return {};
    const isAnswer = (a: unknown): a is Answer =>
      a !== null && typeof a === "object" && ["version", "binary", "stat"].every((k) => typeof (a as Record<string, unknown>)[k] === "string") && isAbsolute((a as Answer).binary);
    return Object.fromEntries(Object.entries(data).filter(([, a]) => isAnswer(a)));
  } catch {
    return {}; // missing or torn: ask Python
  }
}

/** The version remembered for this choice, if the binary that gave it is still the same file. */
function askedBefore(key: string): string | undefined {
  const answer = readMemo()[key];
  if (!answer) return undefined;
  try {
    return statKey(answer.binary) === answer.stat ? answer.version : undefined;
  } catch {
    return undefined; // the binary is gone: the shim chooses another, or fails when asked
  }
}

function remember(key: string, answer: Answer): void {
  const memo = { ...readMemo(), [key]: answer };
  for (const old of Object.keys(memo).slice(0, -KEEP)) delete memo[old];
  try {
    mkdirSync(dirname(MEMO()), { recursive: true });
    const tmp = `${MEMO()}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(memo));
    renameSync(tmp, MEMO());
  } catch {
    // A cache: without it every run asks Python
  }
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
