// A throwaway project for the fake pipeline, and a way to run its CLI as a real subprocess.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const REPO = resolve(import.meta.dirname, "../..");
/** Run as `node --import tsx`, not through the tsx wrapper, so the child's pid is the engine's own. */
const NODE_ARGS = ["--import", pathToFileURL(join(REPO, "node_modules/tsx/dist/loader.mjs")).href];
export const FAKE = join(REPO, "test/fixtures/fake-pipeline.ts");

export const BASE_CONFIG = `# fake pipeline
report:
  title: Weekly   # the title
tools:
  fake: "1.0"
`;

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  json: {
    ok: boolean;
    nodes: { id: string; status: string; reason: string; stale?: boolean; reasons?: string[] }[];
    hashed?: { files: number; bytes: number };
    [k: string]: unknown;
  };
}

export class FakeProject {
  readonly dir: string;

  constructor(config = BASE_CONFIG, inputs: Record<string, string> = { "a.txt": "Hello World\n" }) {
    this.dir = mkdtempSync(join(tmpdir(), "fake-pipeline-"));
    mkdirSync(join(this.dir, "input"));
    for (const [name, text] of Object.entries(inputs)) writeFileSync(join(this.dir, "input", name), text);
    this.write("pipeline.yaml", config);
  }

  path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  write(rel: string, text: string): void {
    writeFileSync(this.path(rel), text);
  }

  read(rel: string): string {
    return readFileSync(this.path(rel), "utf8");
  }

  exists(rel: string): boolean {
    return existsSync(this.path(rel));
  }

  /** Node ids in the order their commands ran, since the project was made. */
  calls(): string[] {
    return this.exists("calls.log") ? this.read("calls.log").split("\n").filter(Boolean) : [];
  }

  /** `nodeArgs` go before tsx's loader, e.g. another `--import` hook. */
  spawn(args: string[], nodeArgs: readonly string[] = []): ChildProcess {
    return spawn(process.execPath, [...nodeArgs, ...NODE_ARGS, FAKE, ...args], { cwd: this.dir, env: { ...process.env, CI: "true" }, stdio: ["ignore", "pipe", "pipe"] });
  }

  /** Runs the CLI and returns its exit code, output and the parsed --json document (when there is one). */
  run(args: string[], nodeArgs: readonly string[] = []): Promise<RunResult> {
    return new Promise((resolvePromise) => {
      const child = this.spawn(args, nodeArgs);
      let stdout = "";
      let stderr = "";
      child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
      child.on("close", (code) => {
        let json = { ok: false, nodes: [] } as RunResult["json"];
        try {
          json = JSON.parse(stdout) as RunResult["json"];
        } catch {
          // Not a --json run.
        }
        resolvePromise({ code, stdout, stderr, json });
      });
    });
  }

  /** Runs a build with --json and returns node id → status. */
  async build(...extra: string[]): Promise<Record<string, string> & { _result: RunResult }> {
    const result = await this.run(["report", "--json", ...extra]);
    const statuses = Object.fromEntries(result.json.nodes.map((n) => [n.id, n.status]));
    return Object.assign(statuses, { _result: result });
  }
}

/** Resolves once `predicate` holds, polling every 50 ms, or rejects after `ms`. */
export async function waitFor(predicate: () => boolean, ms = 20_000): Promise<void> {
  const start = Date.now();
  while (!predicate()) {
    if (Date.now() - start > ms) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 50));
  }
}
