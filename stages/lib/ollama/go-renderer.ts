// Drives render.go: Go's own text/template rendering a Modelfile's TEMPLATE the way Ollama does. The program
// is built once per user, keyed by its source's digest, into the per-user cache (a fresh clone reuses it).
import { execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { UserError } from "../../../engine/types.ts";
import type { Message } from "../data/dataset.ts";
import { onPath, toolFile, userCacheDir } from "../toolchain/paths.ts";

export const RENDER_GO = toolFile("stages", "lib", "ollama", "render.go");
/** The Ollama release whose template data render.go builds (template/template.go, server/routes.go). */
export const OLLAMA_VERSION = "v0.33.0";

/** The built checker, compiling it first if this source has not been built on this machine. */
export async function rendererBinary(): Promise<string> {
  const digest = createHash("sha256").update(await readFile(RENDER_GO)).digest("hex").slice(0, 16);
  const binary = userCacheDir("ollama-render", digest, "render");
  if (existsSync(binary)) return binary;
  const go = onPath("go");
  if (!go) {
    throw new UserError(
      "The ollama node checks its Modelfile TEMPLATE with Go's text/template (as Ollama renders it), and `go` is not on PATH. " +
        "Install Go 1.19 or newer (Debian/Ubuntu: apt install golang-go; macOS: brew install go) and run again.",
    );
  }
  await mkdir(join(binary, ".."), { recursive: true });
  const work = await mkdtemp(`${binary}.build-`);
  try {
    await promisify(execFile)(go, ["build", "-o", join(work, "render"), RENDER_GO], { cwd: work, env: { ...process.env, GO111MODULE: "off", CGO_ENABLED: "0" } });
    // Renamed whole: concurrent builds may compile the same source.
    await rename(join(work, "render"), binary);
  } catch (e) {
    throw new UserError(`go build ${RENDER_GO} failed: ${(e as { stderr?: string }).stderr ?? (e as Error).message}`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return binary;
}

export interface GoRendering {
  readonly template: string;
  readonly system: string;
  readonly renders: readonly string[];
}

function isRendering(v: unknown, count: number): v is GoRendering {
  const r = v as Partial<GoRendering> | null;
  return typeof r?.template === "string" && typeof r.system === "string" && Array.isArray(r.renders) && r.renders.length === count && r.renders.every((s) => typeof s === "string");
}

/** Ollama's prompt for each conversation under `modelfile` (its TEMPLATE and SYSTEM); throws what Go said. */
export async function renderWithGo(modelfile: string, conversations: readonly (readonly Message[])[]): Promise<GoRendering> {
  const binary = await rendererBinary();
  const child = spawn(binary, [], { stdio: ["pipe", "pipe", "pipe"] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on("data", (b: Buffer) => out.push(b));
  child.stderr.on("data", (b: Buffer) => err.push(b));
  const done = new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", resolve);
  });
  child.stdin.on("error", () => {}); // a renderer that exits unread is reported by its exit code and stderr below
  child.stdin.end(JSON.stringify({ modelfile, conversations: conversations.map((c) => c.map(({ role, content }) => ({ role, content }))) }));
  const code = await done;
  if (code !== 0) throw new Error(Buffer.concat(err).toString("utf8").trim() || `${binary} exited with ${code}`);
  const parsed: unknown = JSON.parse(Buffer.concat(out).toString("utf8"));
  if (!isRendering(parsed, conversations.length)) throw new Error(`${binary} answered something other than ${conversations.length} renderings`);
  return parsed;
}
