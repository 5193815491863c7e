// pipeline.lock is the truth (issue 20, points 1-3), with the fake pipeline's `lower` made not reproducible as
// training is (`noise`): records of a run stay out of the output digest, a rebuild that differs from the lock
// says so, and only the lock's output is restored, from the remote too when the local store holds another
// build of the same inputs (S3 is a real moto_server on 127.0.0.1).
import { copyFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BASE_CONFIG, FakeProject } from "../helpers/fake-project.ts";
import { startS3, type S3Server } from "../helpers/s3-server.ts";
import { storeIsSound } from "../helpers/store.ts";

const reasonsOf = (r: { json: { nodes: { id: string; reasons?: string[] }[] } }, id: string) => r.json.nodes.find((n) => n.id === id)!.reasons!;
const outputs = (p: FakeProject) => ["lower/out.txt", "lower/timing.txt", "report/report.txt"].map((f) => p.read(`models/${f}`));

describe.concurrent("records and a rebuild that differs from the lock", () => {
  it("a rebuild whose records alone differ cuts off and leaves pipeline.lock byte-identical; records are restored", async () => {
    const p = new FakeProject(`${BASE_CONFIG}noise: record\n`);
    expect((await p.build())._result.code).toBe(0);
    const lock = p.read("pipeline.lock");
    const timing = p.read("models/lower/timing.txt");

    const forced = await p.build("--force", "lower");
    expect(forced).toMatchObject({ lower: "ran", report: "cutoff" });
    expect(forced._result.stderr).not.toMatch(/other bytes/);
    expect(p.read("models/lower/timing.txt")).not.toBe(timing); // the record is this run's
    expect(p.read("pipeline.lock")).toBe(lock);
    expect(lock).toMatch(/records:\n\s+timing\.txt: [0-9a-f]{64}/); // listed apart from the result's files
    expect((await p.run(["verify"])).code).toBe(0);
    expect(await p.build()).toMatchObject({ source: "fresh", lower: "fresh", report: "fresh" });

    // A record comes back with a restore, as the rest of the output.
    const restoredTiming = p.read("models/lower/timing.txt");
    p.write("input/a.txt", "Goodbye\n");
    await p.build();
    p.write("input/a.txt", "Hello World\n");
    expect(await p.build()).toMatchObject({ source: "restored", lower: "restored", report: "restored" });
    expect(p.read("models/lower/timing.txt")).toBe(restoredTiming);
    // The store's entry is the forced run's, so its record is the one the rewritten entry lists.
    const withoutRecords = (text: string) => text.replace(/timing\.txt: [0-9a-f]{64}/, "");
    expect(withoutRecords(p.read("pipeline.lock"))).toBe(withoutRecords(lock));
  });

  it("a rebuild with other bytes says so in one line; with the lock put back, status names it and --frozen fails", async () => {
    const p = new FakeProject(`${BASE_CONFIG}noise: output\n`);
    await p.build();
    const lock = p.read("pipeline.lock");
    const forced = await p.build("--force", "lower");
    expect(forced).toMatchObject({ lower: "ran", report: "ran" });
    const warnings = forced._result.stderr.split("\n").filter((l) => /other bytes/.test(l));
    expect(warnings).toEqual([expect.stringMatching(/^\[lower\] warning: rebuilt from the same inputs as pipeline\.lock's entry, with other bytes .*`pull`, or a build cache that holds the lock's output, gets the committed bytes\.$/)]);
    expect(p.read("pipeline.lock")).not.toBe(lock); // the lock follows what is published, and the line said so

    p.write("pipeline.lock", lock); // `git checkout pipeline.lock`
    const status = await p.run(["status", "--json"]);
    expect(reasonsOf(status, "lower")).toEqual([expect.stringMatching(/^output differs from pipeline\.lock's: rebuilt here from the same inputs with other bytes .*`pull`/)]);
    expect(reasonsOf(status, "report")).toEqual([
      expect.stringMatching(/^output is not the one pipeline\.lock records: it was built here from other inputs/),
      expect.stringMatching(/^upstream lower will rebuild/),
    ]);
    expect(status.stdout).not.toMatch(/was modified/);
    const frozen = await p.run(["report", "--frozen"]);
    expect(frozen.code).toBe(1);
    expect(frozen.stderr).toMatch(/lower stale\n\s+output differs from pipeline\.lock's: rebuilt here/);

    // An edit by hand is still called one.
    p.write("models/lower/out.txt", "edited\n");
    expect(reasonsOf(await p.run(["status", "--json"]), "lower")).toEqual(["output file out.txt was modified"]);
  });

  it("a rebuild with other bytes names the recorded conditions that differ from the lock's build", async () => {
    const p = new FakeProject(`${BASE_CONFIG}noise: output\n`);
    p.env = { FAKE_LANES: "2" };
    await p.build();
    expect(p.read("pipeline.lock")).toMatch(/facts:\n\s+lanes: 2\n/);
    const warningOf = (r: { _result: { stderr: string } }) => r._result.stderr.split("\n").filter((l) => /other bytes/.test(l));

    // The same condition: nothing to name but the tools.
    expect(warningOf(await p.build("--force", "lower"))).toEqual([expect.stringContaining("with other bytes (not every tool is bit-reproducible")]);
    p.env = { FAKE_LANES: "1" };
    expect(warningOf(await p.build("--force", "lower"))).toEqual([expect.stringContaining("with other bytes (made with lanes 2 in pipeline.lock, 1 here); pipeline.lock now records this build.")]);
    expect(p.read("pipeline.lock")).toMatch(/facts:\n\s+lanes: 1\n/);
    p.env = {};
    expect(warningOf(await p.build("--force", "lower"))).toEqual([expect.stringContaining("(made with lanes 1 in pipeline.lock, unrecorded here)")]);
  });
});

describe("the lock decides what is restored (remote: moto_server)", () => {
  let server: S3Server;

  beforeAll(async () => {
    server = await startS3();
    const s3 = new S3Client({ endpoint: server.endpoint, forcePathStyle: true, region: "us-east-1", credentials: { accessKeyId: "testing", secretAccessKey: "testing" } });
    await s3.send(new CreateBucketCommand({ Bucket: "team-cache" }));
    s3.destroy();
  });

  afterAll(async () => {
    await server?.stop();
  });

  /** A clone with its own local store on a shared remote prefix, `lower` not reproducible. */
  const clone = (prefix: string): FakeProject => {
    const p = new FakeProject(`${BASE_CONFIG}noise: output\ncache:\n  dir: ${mkdtempSync(join(tmpdir(), "store-"))}\n  remote: s3://team-cache/${prefix}\n  endpoint: ${server.endpoint}\n`);
    p.env = server.env;
    return p;
  };
  const storeOf = (p: FakeProject) => /dir: (.*)/.exec(p.read("pipeline.yaml"))![1]!;

  it("a teammate who trained the commit locally, then pulls, gets CI's bytes and CI's lock; so does one who just builds", async () => {
    const prefix = `lock-${process.pid}`;
    const ci = clone(prefix);
    expect((await ci.build())._result.code).toBe(0);
    expect((await ci.run(["push"])).code).toBe(0);
    const ciLock = ci.read("pipeline.lock");

    for (const pulls of [true, false]) {
      const mate = clone(prefix);
      expect(await mate.build("--no-remote")).toMatchObject({ source: "ran", lower: "ran", report: "ran" });
      const ran = mate.calls().length;
      // With its own lock, the teammate's entry is the truth: pull brings nothing that differs from it.
      if (pulls) {
        const own = await mate.run(["pull", "--json"]);
        expect(own.json).toMatchObject({ ok: true, results: { source: "already in the local store", lower: "already in the local store" } });
      }

      copyFileSync(ci.path("pipeline.lock"), mate.path("pipeline.lock")); // git pull
      const status = await mate.run(["status", "--json"]);
      expect(status.json.nodes.map((n) => [n.id, n.stale, n.restore])).toEqual([["source", false, undefined], ["lower", true, true], ["report", true, true]]);
      expect(reasonsOf(status, "lower")).toEqual([expect.stringMatching(/^output differs from pipeline\.lock's: rebuilt here from the same inputs/)]);
      if (pulls) {
        const pull = await mate.run(["pull", "--json"]);
        expect(pull.json).toMatchObject({
          ok: true,
          results: { source: "already in the local store", lower: expect.stringMatching(/^pulled .*the local store's entry was another build of the same inputs: replaced/), report: expect.stringMatching(/^pulled/) },
        });
        storeIsSound(storeOf(mate));
      }
      expect(await mate.build()).toMatchObject({ source: "fresh", lower: "restored", report: "restored" });
      expect(mate.calls()).toHaveLength(ran);
      expect(mate.read("pipeline.lock")).toBe(ciLock);
      expect(outputs(mate)).toEqual(outputs(ci));
      expect((await mate.run(["verify"])).code).toBe(0);
    }
  });

  it("offline, a local entry that is not the lock's is not restored: the node runs and says its bytes differ", async () => {
    const prefix = `offline-${process.pid}`;
    const ci = clone(prefix);
    await ci.build();
    const mate = clone(prefix);
    await mate.build("--no-remote");
    copyFileSync(ci.path("pipeline.lock"), mate.path("pipeline.lock"));
    const status = await mate.run(["status", "--json", "--no-remote"]);
    expect(status.json.nodes.map((n) => [n.id, n.restore])).toEqual([["source", undefined], ["lower", undefined], ["report", undefined]]);
    const built = await mate.build("--no-remote");
    expect(built).toMatchObject({ source: "fresh", lower: "ran", report: "ran" });
    expect(built._result.stderr).toMatch(/\[lower\] warning: rebuilt from the same inputs as pipeline\.lock's entry, with other bytes/);
  });
});
