// A stage's own TypeScript decides its output, so it is an input: a `git pull` that changes how the data
// node writes its splits reruns it. Run on a copy of the tool, whose stages this test edits.
import { cpSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { collect, spawnCli } from "../helpers/cli.ts";
import { pipelineYaml, REPO, sample } from "../helpers/project.ts";

interface Build {
  code: number | null;
  stderr: string;
  nodes: { id: string; status: string; reason: string }[];
}

/** A copy of the tool in a folder of its own, as another machine (or another clone) has it. */
function copyOfTheTool(): string {
  const tool = join(mkdtempSync(join(tmpdir(), "tool-copy-")), "mlx-lora-pipeline");
  for (const part of ["pipeline.ts", "package.json", "engine", "stages", "config", "guard"]) cpSync(join(REPO, part), join(tool, part), { recursive: true });
  symlinkSync(join(REPO, "node_modules"), join(tool, "node_modules"));
  return tool;
}

function dataProject(): string {
  const project = mkdtempSync(join(tmpdir(), "stage-code-"));
  mkdirSync(join(project, "data"));
  writeFileSync(join(project, "data", "train.jsonl"), sample(40));
  writeFileSync(join(project, "pipeline.yaml"), pipelineYaml());
  return project;
}

async function buildData(tool: string, project: string): Promise<Build> {
  // A store of the project's own: its builds are restored by fingerprint, and other tests build the same one.
  const env = { ...process.env, CI: "true", MLX_PIPELINE_STORE: join(project, "cache", "store") };
  const r = await collect(spawnCli(join(tool, "pipeline.ts"), ["data", "--json"], { cwd: project, env }));
  return { code: r.code, stderr: r.stderr, nodes: (r.json as { nodes?: Build["nodes"] } | undefined)?.nodes ?? [] };
}

describe("stage code as an input", () => {
  it("an edit of a stage's helper that changes its output reruns the stage, naming the file", async () => {
    const tool = copyOfTheTool();
    const project = dataProject();
    const build = () => buildData(tool, project);
    const first = await build();
    expect(first.code, first.stderr).toBe(0);
    expect(first.nodes).toMatchObject([{ id: "data", status: "ran" }]);
    expect(await build()).toMatchObject({ nodes: [{ id: "data", status: "fresh" }] });

    // The fix a `git pull` might bring: each example written with one more key.
    const helper = join(tool, "stages", "lib", "data", "dataset.ts");
    const before = readFileSync(helper, "utf8");
    const after = before.replace(": { messages: example.messages });", ": { messages: example.messages, edited: true });");
    expect(after).not.toBe(before);
    writeFileSync(helper, after);
    const rebuilt = await build();
    expect(rebuilt.code, rebuilt.stderr).toBe(0);
    expect(rebuilt.nodes).toMatchObject([{ id: "data", status: "ran" }]);
    expect(rebuilt.nodes[0]!.reason).toContain("file //stages/lib/data/dataset.ts changed"); // its path in the tool
    expect(readFileSync(join(project, "models", "data", "train.jsonl"), "utf8")).toContain('"edited":true');
  }, 120_000);

  it("two checkouts of the tool in different folders give one project the same fingerprints", async () => {
    const [here, there] = [copyOfTheTool(), copyOfTheTool()];
    const project = dataProject();
    const first = await buildData(here, project);
    expect(first.code, first.stderr).toBe(0);
    const lock = readFileSync(join(project, "pipeline.lock"), "utf8");
    const other = await buildData(there, project);
    expect(other.code, other.stderr).toBe(0);
    expect(other.nodes).toMatchObject([{ id: "data", status: "fresh" }]);
    expect(readFileSync(join(project, "pipeline.lock"), "utf8")).toBe(lock);
    expect(lock).toContain("//stages/data.ts:");
    expect(lock).not.toContain(here);
  }, 120_000);
});
