// A throwaway project for the fake pipeline, and a way to run its CLI as a real subprocess.
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { collect, REPO, requireJson, spawnCli } from "./cli.ts";

export { waitFor } from "./cli.ts";
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
  /** The --json document; reading it throws when the run printed none (see requireJson). */
  json: {
    ok: boolean;
    nodes: { id: string; status: string; reason: string; stale?: boolean; changed?: boolean; restore?: boolean; reasons?: string[] }[];
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
  /** Extra environment for every run of this project. */
  env: Record<string, string> = {};

  spawn(args: string[], nodeArgs: readonly string[] = []): ChildProcess {
    return spawnCli(FAKE, args, { cwd: this.dir, env: { ...process.env, CI: "true", ...this.env }, nodeArgs });
  }

  /** Runs the CLI and returns its exit code, output and the parsed --json document (when there is one). */
  async run(args: string[], nodeArgs: readonly string[] = []): Promise<RunResult> {
    const r = await collect(this.spawn(args, nodeArgs));
    return {
      code: r.code,
      stdout: r.stdout,
      stderr: r.stderr,
      // Read lazily: a run without --json has no document, and only a test that reads it must fail.
      get json() {
        return requireJson(r) as RunResult["json"];
      },
    };
  }

  /** Runs a build with --json and returns node id → status. */
  async build(...extra: string[]): Promise<Record<string, string> & { _result: RunResult }> {
    const result = await this.run(["report", "--json", ...extra]);
    const { nodes, error } = result.json;
    if (!nodes) throw new Error(`the CLI reported no nodes: ${error ?? JSON.stringify(result.json)}`);
    const statuses = Object.fromEntries(nodes.map((n) => [n.id, n.status]));
    return Object.assign(statuses, { _result: result });
  }
}
