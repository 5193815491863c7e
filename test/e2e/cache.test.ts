// The build cache with the real tools (tiny:llama to GGUF, from the shared training): a reverted data edit and an
// older commit come back restored, byte-identical, without starting mlx or the converter; a fresh clone pulls from
// a real S3 server (moto on 127.0.0.1) and builds the GGUF with nothing heavy running, and verify passes.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pipelineYaml, Project, ran, type RunResult } from "../helpers/project.ts";
import { sharedTraining } from "../helpers/shared-project.ts";
import { startS3, type S3Server } from "../helpers/s3-server.ts";

const HEAVY = ["adapters", "fused", "hf", "gguf"];
const DERIVED = ["data", "formatted", ...HEAVY];
const TOOLCHAINS = ["mlx-env", "llama-cpp", "model"];

/** sha256 of every file of every node's output, by "node/relative path". */
function outputs(p: Project, nodes: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const node of nodes) {
    const dir = p.path("models", node);
    for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
      if (!e.isFile()) continue;
      const path = join(e.parentPath, e.name);
      out[`${node}/${path.slice(dir.length + 1)}`] = createHash("sha256").update(readFileSync(path)).digest("hex");
    }
  }
  return out;
}

/** The tools' logs: a node that runs rewrites its log, a restored one leaves it alone. */
function logs(p: Project): Record<string, string> {
  const dir = p.path("cache", "logs");
  return existsSync(dir) ? Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f), "utf8")])) : {};
}

const statusesOf = (r: RunResult, nodes: readonly string[]) => Object.fromEntries(nodes.map((n) => [n, r.statuses[n]]));

/** The adapters' records (tokens/s, memory): this run's own, not part of its result. */
const RECORDS = ["adapters/metrics.jsonl", "adapters/memory.json"];
const results = (o: Record<string, string>) => Object.fromEntries(Object.entries(o).filter(([k]) => !RECORDS.includes(k)));

describe("build cache, real tools", () => {
  let server: S3Server;
  let p: Project;
  let config: string;
  let firstLock: string;
  let firstOutputs: Record<string, string>;

  beforeAll(async () => {
    server = await startS3();
    const s3 = new S3Client({ endpoint: server.endpoint, forcePathStyle: true, region: "us-east-1", credentials: { accessKeyId: "testing", secretAccessKey: "testing" } });
    await s3.send(new CreateBucketCommand({ Bucket: "models" }));
    s3.destroy();
    config = pipelineYaml({ cache: { remote: "s3://models/team", endpoint: server.endpoint } });
    // The shared training of these defaults and data (trained through fused), with the remote configured: the cache
    // settings are no node's input, so only the converter's nodes run.
    ({ project: p } = await sharedTraining());
    p.write("pipeline.yaml", config);
    p.env = server.env;
    expect(ran(await p.mustBuild("gguf"))).toEqual(["gguf", "hf", "llama-cpp"]);
    firstLock = p.read("pipeline.lock");
    firstOutputs = outputs(p, DERIVED);
  }, 1_800_000);

  afterAll(async () => {
    await server?.stop();
  });

  it("a data edit reverted, and an older commit's lock, are restored byte-identical without running a tool", async () => {
    const original = p.read("data/train.jsonl");
    const lines = original.split("\n");
    // An example the training sees: its 6 batches of 2 hold 12 of the 36 training examples, and an edit to one it
    // never sees leaves the adapters byte-identical (the cascade then stops there, as it should).
    lines[4] = JSON.stringify({ messages: [{ role: "user", content: "Convert 3 km to m." }, { role: "assistant", content: "3 km = 3000 m." }] });
    const edited = lines.join("\n");
    p.write("data/train.jsonl", edited);
    const rebuilt = await p.mustBuild("gguf");
    expect(statusesOf(rebuilt, DERIVED)).toEqual(Object.fromEntries(DERIVED.map((n) => [n, "ran"])));
    const editedLock = p.read("pipeline.lock");
    const editedOutputs = outputs(p, DERIVED);

    p.write("data/train.jsonl", original);
    const status = await p.run(["status", "gguf", "--json"]);
    expect(status.json.nodes.filter((n) => (n as { restore?: boolean }).restore).map((n) => n.id)).toEqual(DERIVED);
    const logsBefore = logs(p);
    const restored = await p.mustBuild("gguf");
    expect(statusesOf(restored, [...TOOLCHAINS, ...DERIVED])).toEqual({ "mlx-env": "fresh", "llama-cpp": "fresh", model: "fresh", ...Object.fromEntries(DERIVED.map((n) => [n, "restored"])) });
    expect(restored.stderr).not.toMatch(/rebuilding/);
    expect(logs(p)).toEqual(logsBefore); // no mlx, converter or llama.cpp process ran
    expect(outputs(p, DERIVED)).toEqual(firstOutputs);
    expect(p.read("pipeline.lock")).toBe(firstLock);

    // Checking out the later commit again (its data and its pipeline.lock): restoring only.
    p.write("data/train.jsonl", edited);
    p.write("pipeline.lock", editedLock);
    const later = await p.mustBuild("gguf");
    expect(statusesOf(later, DERIVED)).toEqual(Object.fromEntries(DERIVED.map((n) => [n, "restored"])));
    expect(logs(p)).toEqual(logsBefore);
    expect(outputs(p, DERIVED)).toEqual(editedOutputs);
    expect((await p.run(["verify"])).code).toBe(0);
  });

  it("a fresh clone pulls from S3 and builds the GGUF with nothing heavy running; verify passes", async () => {
    const push = await p.run(["push"]);
    expect(push.code, push.stderr).toBe(0);
    const clone = new Project(config, { "data/train.jsonl": p.read("data/train.jsonl") });
    clone.env = server.env;
    clone.write("pipeline.lock", p.read("pipeline.lock"));
    const pull = await clone.run(["pull", "gguf", "--json"]);
    expect(pull.code, pull.stderr).toBe(0);
    const built = await clone.mustBuild("gguf");
    expect(statusesOf(built, [...TOOLCHAINS, ...DERIVED])).toEqual(Object.fromEntries([...TOOLCHAINS, ...DERIVED].map((n) => [n, "restored"])));
    expect(logs(clone)).toEqual({}); // no tool ran at all
    expect(outputs(clone, DERIVED)).toEqual(outputs(p, DERIVED));
    const verify = await clone.run(["verify"]);
    expect(verify.code, verify.stderr).toBe(0);
  });

  it("a teammate gets CI's build and an unchanged pipeline.lock: from an empty store, and after training the commit locally", async () => {
    const push = await p.run(["push"]); // CI
    expect(push.code, push.stderr).toBe(0);
    const ciLock = p.read("pipeline.lock");
    const ciResults = results(outputs(p, DERIVED));
    const teammate = () => {
      const mate = new Project(config, { "data/train.jsonl": p.read("data/train.jsonl") });
      mate.env = server.env;
      mate.write("pipeline.lock", ciLock);
      return mate;
    };
    const pullAndBuild = async (mate: Project) => {
      const pull = await mate.run(["pull", "gguf"]);
      expect(pull.code, pull.stderr).toBe(0);
      const logsBefore = logs(mate);
      const built = await mate.mustBuild("gguf");
      expect(built.json.nodes.filter((n) => n.status === "ran").map((n) => n.id)).toEqual([]);
      expect(logs(mate)).toEqual(logsBefore); // no mlx, converter or llama.cpp process ran
      expect(mate.read("pipeline.lock")).toBe(ciLock);
      expect(results(outputs(mate, DERIVED))).toEqual(ciResults);
      const verify = await mate.run(["verify"]);
      expect(verify.code, verify.stderr).toBe(0);
    };

    await pullAndBuild(teammate());

    // Trained here before CI's build reached the bucket (--no-remote, empty store): whatever bytes that gave, the
    // committed lock and a pull bring CI's back without training again.
    const trained = teammate();
    const local = await trained.mustBuild("gguf", "--no-remote");
    expect(statusesOf(local, HEAVY)).toEqual(Object.fromEntries(HEAVY.map((n) => [n, "ran"])));
    // Training here is bit-identical to CI's on one machine: then only the records differ, and the lock must not.
    const sorted = (o: Record<string, string>) => JSON.stringify(Object.entries(o).sort());
    if (sorted(results(outputs(trained, DERIVED))) === sorted(ciResults)) expect(trained.read("pipeline.lock")).toBe(ciLock);
    else expect(local.stderr).toMatch(/warning: rebuilt from the same inputs as pipeline\.lock's entry, with other bytes/);
    trained.write("pipeline.lock", ciLock); // `git checkout pipeline.lock`, if the build rewrote it
    await pullAndBuild(trained);
  });
});
