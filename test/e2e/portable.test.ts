// Two machines that differ only in where things live (the per-user cache root, the project folder) publish
// byte-identical toolchain and model outputs, so every downstream fingerprint is the same and one machine's
// build cache serves the other. The cache roots share only the Python environments (a pip install takes
// minutes); each unpacks its own llama.cpp source and keeps its own build cache.
import { createHash } from "node:crypto";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { toolFile, userCacheDir } from "../../stages/lib/toolchain/paths.ts";
import { pipelineYaml, Project, sample, type RunResult } from "../helpers/project.ts";

const NODES = ["mlx-env", "llama-cpp", "model", "data", "formatted"];
const PUBLISHED = ["models/mlx-env/toolchain.json", "models/llama-cpp/toolchain.json", "models/model/model.json"];

/** A per-user cache root of its own whose venvs/ is this user's (the environments are keyed by requirements and Python version). */
function cacheRoot(): string {
  const root = mkdtempSync(join(tmpdir(), "mlx-pipeline-cache-"));
  const venvs = userCacheDir("venvs");
  mkdirSync(venvs, { recursive: true });
  symlinkSync(venvs, join(root, "venvs"));
  return root;
}

/** A project of its own, in a folder of its own, with the per-user cache root `root`. */
function machine(root: string): Project {
  const p = new Project(pipelineYaml(), { "data/train.jsonl": sample(40) });
  p.env = { MLX_PIPELINE_CACHE: root };
  return p;
}

async function buildEarlyNodes(p: Project): Promise<RunResult[]> {
  return [await p.mustBuild("formatted"), await p.mustBuild("llama-cpp")];
}

/** Each node's fingerprint and output digest, as pipeline.lock records them. */
function lockFacts(p: Project): Record<string, { fingerprint: string; output: string }> {
  const lock = p.lock();
  return Object.fromEntries(NODES.map((n) => [n, { fingerprint: lock[n]!.fingerprint, output: lock[n]!.output.digest }]));
}

const statuses = (runs: RunResult[]) => Object.assign({}, ...runs.map((r) => r.statuses)) as Record<string, string>;

describe("outputs that do not depend on where the cache and the project are", () => {
  let rootA: string, rootB: string;
  let a: Project, b: Project;

  beforeAll(async () => {
    rootA = cacheRoot();
    rootB = cacheRoot();
    a = machine(rootA);
    b = machine(rootB);
    await buildEarlyNodes(a);
    await buildEarlyNodes(b);
  });

  it("two cache roots and project folders publish byte-identical toolchain and model files", () => {
    for (const file of PUBLISHED) {
      expect(b.read(file), file).toBe(a.read(file));
      for (const place of [rootA, a.dir, homedir()]) expect(a.read(file), `${file} names ${place}`).not.toContain(place);
    }
  });

  it("and so the same fingerprints and output digests for every node", () => {
    expect(lockFacts(b)).toEqual(lockFacts(a));
  });

  it("what decides results is recorded: versions, platform, the requirements' digest", () => {
    const mlx = a.readJson<{ versions: Record<string, string>; requirements: string }>("models/mlx-env/toolchain.json");
    expect(mlx.versions.python).toMatch(/^3\.\d+\.\d+$/);
    expect(mlx.versions.platform).toMatch(new RegExp(`^${process.platform}-\\w+$`));
    expect(mlx.versions.mlx_lm).toMatch(/^\d+\.\d+/);
    expect(mlx.requirements).toBe(createHash("sha256").update(readFileSync(toolFile("stages", "requirements", "mlx.txt"))).digest("hex"));
    expect(a.readJson<{ versions: Record<string, string> }>("models/llama-cpp/toolchain.json").versions.llama_cpp).toMatch(/^v?\d/);
  });

  it("each machine reads the paths as its own", () => {
    for (const [p, root] of [[a, rootA], [b, rootB]] as const) {
      const mlx = p.toolchain("mlx-env");
      expect(mlx.venv.startsWith(join(root, "venvs") + "/")).toBe(true);
      expect(mlx.python).toBe(join(mlx.venv, "bin", "python"));
      for (const lib of (mlx.env.LD_PRELOAD ?? "").split(":").filter(Boolean)) expect(lib.startsWith(mlx.venv + "/")).toBe(true);
      expect(p.toolchain("llama-cpp").source?.startsWith(join(root, "llama.cpp") + "/")).toBe(true);
    }
  });

  it("a local model folder is named by model: as written, its files by their path in it", async () => {
    const [c, d] = [machine(cacheRoot()), machine(cacheRoot())];
    for (const p of [c, d]) {
      cpSync(a.path("models/model/model"), p.path("base"), { recursive: true });
      p.write("pipeline.yaml", pipelineYaml({ model: "./base" }));
      await p.mustBuild("model");
    }
    expect(d.read("models/model/model.json")).toBe(c.read("models/model/model.json"));
    const info = c.readJson<{ ref: string; path?: string; files: Record<string, string> }>("models/model/model.json");
    expect(info.ref).toBe("./base");
    expect(info.path).toBeUndefined();
    expect(Object.keys(info.files)).toContain("config.json");
    expect(d.lock().model!.output.digest).toBe(c.lock().model!.output.digest);
  });

  it("a third machine with the first one's build cache restores what the first built", async () => {
    const c = machine(cacheRoot());
    c.env.MLX_PIPELINE_STORE = a.path(".store");
    // status already finds the toolchain's fingerprint in the first machine's cache (the nodes whose inputs
    // read the toolchain's output cannot be planned before it is there).
    const status = await c.run(["status", "formatted", "--json"]);
    const planned = status.json.nodes as unknown as { id: string; restore?: boolean }[];
    expect(planned.filter((n) => n.restore).map((n) => n.id)).toEqual(expect.arrayContaining(["mlx-env", "data"]));
    const runs = await buildEarlyNodes(c);
    // llama-cpp's entry is there too, but this machine has not unpacked its llama.cpp source yet: it runs, and
    // publishes the same bytes.
    expect(statuses(runs)).toEqual({ "mlx-env": "restored", model: "restored", data: "restored", formatted: "restored", "llama-cpp": "ran" });
    expect(lockFacts(c)).toEqual(lockFacts(a));
  });
});
