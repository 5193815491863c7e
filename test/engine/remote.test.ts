// The S3 remote of the build cache against a real S3 server on 127.0.0.1 (moto, installed and started here):
// push, pull, a build that misses locally and fetches, refused tampered objects, missing ones run, the one-line
// errors of a bad setup, and kill -9 in the middle of a push or a pull.
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type ServerResponse } from "node:http";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BASE_CONFIG, FakeProject } from "../helpers/fake-project.ts";
import { startS3, type S3Server } from "../helpers/s3-server.ts";
import { blobs, manifests, storeIsSound } from "../helpers/store.ts";

const BUCKET = "team-cache";
let server: S3Server;
let s3: S3Client;
let prefixes = 0;

beforeAll(async () => {
  server = await startS3();
  s3 = new S3Client({ endpoint: server.endpoint, forcePathStyle: true, region: "us-east-1", credentials: { accessKeyId: "testing", secretAccessKey: "testing" } });
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
});

afterAll(async () => {
  s3?.destroy();
  await server?.stop();
});

interface Team {
  readonly prefix: string;
  /** A clone with its own local store, sharing the remote; `lockFrom` gives it that project's pipeline.lock. */
  clone(options?: { lockFrom?: FakeProject; inputs?: Record<string, string>; extra?: string }): FakeProject;
}

/** Projects sharing one remote prefix, each with its own local store (as on teammates' machines). */
function team(remote: Record<string, string> = {}): Team {
  const prefix = `run-${process.pid}-${++prefixes}`;
  return {
    prefix,
    clone({ lockFrom, inputs, extra = "" } = {}) {
      const settings = { dir: mkdtempSync(join(tmpdir(), "store-")), remote: `s3://${BUCKET}/${prefix}`, endpoint: server.endpoint, ...remote };
      const yaml = `${BASE_CONFIG}cache:\n${Object.entries(settings).map(([k, v]) => `  ${k}: ${v}\n`).join("")}${extra}`;
      const p = new FakeProject(yaml, inputs);
      p.env = server.env;
      if (lockFrom) copyFileSync(lockFrom.path("pipeline.lock"), p.path("pipeline.lock"));
      return p;
    },
  };
}

const storeOf = (p: FakeProject) => /dir: (.*)/.exec(p.read("pipeline.yaml"))![1]!;
const fingerprintOf = (p: FakeProject, node: string) => new RegExp(`\\n  ${node}:\\n[\\s\\S]*?fingerprint: ([0-9a-f]{64})`).exec(p.read("pipeline.lock"))![1]!;
const exists = (key: string) => s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key })).then(() => true, () => false);
const outputs = (p: FakeProject) => ["source/all.txt", "lower/out.txt", "report/report.txt"].map((f) => p.read(`models/${f}`));

describe.concurrent("remote build cache (S3)", () => {
  it("push; a fresh clone pulls and builds nothing; one that does not pull fetches during its build; --no-remote runs", async () => {
    const t = team();
    const ci = t.clone();
    expect((await ci.build())._result.code).toBe(0);
    const push = await ci.run(["push", "--json"]);
    expect(push.code).toBe(0);
    expect(push.json).toMatchObject({ ok: true, results: { source: expect.stringMatching(/^pushed/), report: expect.stringMatching(/^pushed/) } });
    expect((await ci.run(["push", "--json"])).json).toMatchObject({ results: { source: "already on the remote" } });

    const pulled = t.clone({ lockFrom: ci });
    expect((await pulled.run(["pull"])).code).toBe(0);
    storeIsSound(storeOf(pulled));
    expect(await pulled.build()).toMatchObject({ source: "restored", lower: "restored", report: "restored" });
    expect(pulled.calls()).toEqual([]);
    expect(outputs(pulled)).toEqual(outputs(ci));
    expect((await pulled.run(["verify"])).code).toBe(0);

    const fetched = t.clone({ lockFrom: ci });
    expect((await fetched.run(["status", "--json"])).json.nodes.every((n) => n.restore)).toBe(true);
    expect(await fetched.build()).toMatchObject({ source: "restored", lower: "restored", report: "restored" });
    expect(fetched.calls()).toEqual([]);

    const offline = t.clone({ lockFrom: ci });
    expect(await offline.build("--no-remote")).toMatchObject({ source: "ran", lower: "ran", report: "ran" });
  });

  it("a tampered object is refused with a clear error and never used; a missing entry makes just that node run", async () => {
    const t = team();
    const ci = t.clone();
    await ci.build();
    expect((await ci.run(["push"])).code).toBe(0);
    const lock = ci.read("pipeline.lock");
    const digestOf = (file: string) => new RegExp(`${file.replace(".", "\\.")}: ([0-9a-f]{64})`).exec(lock)![1]!;
    const fingerprintOf = (node: string) => new RegExp(`\\n  ${node}:\\n[\\s\\S]*?fingerprint: ([0-9a-f]{64})`).exec(lock)![1]!;
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${t.prefix}/blobs/${digestOf("out.txt")}`, Body: "HELLO EVIL\n" }));
    await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: `${t.prefix}/manifests/report/${fingerprintOf("report")}.json` }));

    const clone = t.clone({ lockFrom: ci });
    const pull = await clone.run(["pull", "--json"]);
    expect(pull.code).toBe(1);
    expect(pull.json).toMatchObject({
      ok: false,
      results: {
        lower: expect.stringMatching(
          /^FAILED: remote cache: (s3:\/\/team-cache\/.*\/blobs\/[0-9a-f]{64}) does not hold the bytes its name promises.*: delete it \(aws s3 rm \1\), then push again/,
        ),
        report: "not on the remote: a build runs it",
      },
    });
    expect(manifests(storeOf(clone)).map((m) => m.split("/").at(-2))).toEqual(["source"]);
    storeIsSound(storeOf(clone));

    const built = await clone.build();
    expect(built).toMatchObject({ source: "restored", lower: "ran", report: "ran" });
    expect(built._result.stderr).toMatch(/does not hold the bytes its name promises.*running the node instead/);
    expect(outputs(clone)).toEqual(outputs(ci));
    expect((await clone.run(["verify"])).code).toBe(0);
  });

  it("a bad setup fails in one line naming the setting: URL, bucket, credentials, endpoint, push: false", async () => {
    const p = team().clone();
    const yaml = p.read("pipeline.yaml");
    const withCache = (edit: (y: string) => string) => writeFileSync(p.path("pipeline.yaml"), edit(yaml));

    withCache((y) => y.replace(/remote: .*/, "remote: s3://Bad_Bucket"));
    let r = await p.run(["pull"]);
    expect([r.code, r.stderr]).toEqual([2, expect.stringMatching(/pipeline\.yaml:\d+: cache\.remote: must be s3:\/\/bucket\/prefix/)]);

    withCache((y) => y.replace(/remote: .*/, "remote: s3://no-such-bucket/x"));
    r = await p.run(["pull"]);
    expect([r.code, r.stderr]).toEqual([2, expect.stringMatching(/cache\.remote: bucket "no-such-bucket" does not exist at http:\/\/127\.0\.0\.1:\d+\. Create it/)]);
    r = await p.run(["report"]); // a build warns once and goes on with the local store
    expect([r.code, p.calls()]).toEqual([0, ["source", "lower", "report"]]);
    expect(r.stderr.match(/warning: cache\.remote: bucket "no-such-bucket" does not exist.*Building with the local build cache only/g)).toHaveLength(1);

    withCache((y) => y);
    p.env = { ...server.env, AWS_ACCESS_KEY_ID: "", AWS_SECRET_ACCESS_KEY: "" };
    r = await p.run(["pull"]);
    expect([r.code, r.stderr]).toEqual([2, expect.stringMatching(/cache\.remote: no AWS credentials found\. Set AWS_ACCESS_KEY_ID/)]);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    p.env = server.env;

    withCache((y) => y.replace(/endpoint: .*/, "endpoint: http://127.0.0.1:9"));
    r = await p.run(["pull"]);
    expect([r.code, r.stderr]).toEqual([1, expect.stringMatching(/cache\.endpoint: cannot reach http:\/\/127\.0\.0\.1:9 \(ECONNREFUSED\)/)]);

    withCache((y) => `${y}  push: false\n`);
    r = await p.run(["push"]);
    expect([r.code, r.stderr]).toEqual([2, expect.stringMatching(/cache\.push is false: this clone reads the remote cache but does not write it/)]);
  });

  it("kill -9 during a push and during a pull: the next command completes and nothing corrupt is published", async () => {
    const t = team();
    const big = "Hello World\n".repeat(4 << 20); // 48 MiB: each node's output is as large
    const ci = t.clone({ inputs: { "a.txt": big } });
    expect((await ci.build())._result.code).toBe(0);
    const killWhen = async (p: FakeProject, args: string[], text: RegExp) => {
      const child = p.spawn(args);
      let err = "";
      await new Promise<void>((resolve) => {
        child.stderr!.on("data", (d: Buffer) => {
          err += d.toString();
          if (text.test(err)) child.kill("SIGKILL");
        });
        child.on("close", () => resolve());
      });
      return err;
    };
    await killWhen(ci, ["push"], /push \w+: /);
    const push = await ci.run(["push"]);
    expect(push.code).toBe(0);

    const clone = t.clone({ lockFrom: ci, inputs: { "a.txt": big } });
    await killWhen(clone, ["pull"], /pull \w+: /);
    storeIsSound(storeOf(clone));
    expect((await clone.run(["pull"])).code).toBe(0);
    storeIsSound(storeOf(clone));
    expect(await clone.build()).toMatchObject({ source: "restored", lower: "restored", report: "restored" });
    expect((await clone.run(["verify"])).code).toBe(0);
  });

  it("a remote that is unreachable, silent or without credentials: the build warns once, naming the setting, and goes on", async () => {
    // A server that takes connections and never answers: the remote as a stalled network shows it.
    const sockets: Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const port = (silent.address() as { port: number }).port;
    try {
      const cases = [
        { endpoint: "http://127.0.0.1:9", env: server.env, says: /warning: cache\.endpoint: cannot reach http:\/\/127\.0\.0\.1:9 \(ECONNREFUSED\)/ },
        { endpoint: `http://127.0.0.1:${port}`, env: server.env, says: /warning: cache\.endpoint: cannot reach .* \(no answer within 10 s\)/ },
        { endpoint: server.endpoint, env: { ...server.env, AWS_ACCESS_KEY_ID: "", AWS_SECRET_ACCESS_KEY: "" }, says: /warning: cache\.remote: no AWS credentials found/ },
      ];
      await Promise.all(
        cases.map(async ({ endpoint, env, says }) => {
          const p = team({ endpoint }).clone();
          p.env = env;
          const r = await p.build();
          expect(r, endpoint).toMatchObject({ source: "ran", lower: "ran", report: "ran" });
          expect(r._result.stderr.match(new RegExp(says.source, "g")), r._result.stderr).toHaveLength(1);
          expect(r._result.stderr).toMatch(/Building with the local build cache only/);
          // The next build restores from the local store, the remote still down.
          p.write("input/a.txt", "Goodbye\n");
          await p.build();
          p.write("input/a.txt", "Hello World\n");
          expect(await p.build(), endpoint).toMatchObject({ source: "restored", lower: "restored", report: "restored" });
        }),
      );
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });

  it("remote manifests that are invalid or reach outside are refused with their URL; the node runs; nothing outside is written", async () => {
    const t = team();
    const ci = t.clone();
    await ci.build();
    expect((await ci.run(["push"])).code).toBe(0);
    const key = `${t.prefix}/manifests/report/${fingerprintOf(ci, "report")}.json`;
    const valid = JSON.parse(await (await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))).Body!.transformToString()) as {
      output: { files: Record<string, string> };
    };
    const digest = Object.values(valid.output.files)[0]!;
    const cases = [
      { name: "a path with ..", body: JSON.stringify({ ...valid, output: { ...valid.output, files: { "../../../victim/x.txt": digest } }, sizes: { "../../../victim/x.txt": 21 } }) },
      { name: "a digest that names a path", body: JSON.stringify({ ...valid, output: { ...valid.output, files: { "report.txt": "../../../victim/important.conf" } } }) },
      { name: "no output", body: JSON.stringify({ ...valid, output: undefined }) },
      { name: "not JSON", body: "<Error>SlowDown</Error>" },
    ];
    for (const c of cases) {
      await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: c.body }));
      const clone = t.clone({ lockFrom: ci });
      mkdirSync(clone.path("victim"));
      clone.write("victim/important.conf", "precious\n");
      const r = await clone.build();
      expect(r, c.name).toMatchObject({ source: "restored", lower: "restored", report: "ran" });
      expect(r._result.stderr, c.name).toContain(`s3://${BUCKET}/${key}`);
      expect(r._result.stderr, c.name).toMatch(/refused\. Delete it \(aws s3 rm s3:\/\/.*\) and push the entry again/);
      expect(readdirSync(clone.path("victim")), c.name).toEqual(["important.conf"]);
      expect(clone.read("victim/important.conf")).toBe("precious\n");
      expect((await clone.run(["status"])).code, c.name).toBe(0);
    }
  });

  it("push completes a remote entry that lost a blob, so deleting a damaged blob and pushing repairs it", async () => {
    const t = team();
    const ci = t.clone();
    await ci.build();
    expect((await ci.run(["push"])).code).toBe(0);
    const digest = /out\.txt: ([0-9a-f]{64})/.exec(ci.read("pipeline.lock"))![1]!;
    await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: `${t.prefix}/blobs/${digest}` }));
    const push = await ci.run(["push", "--json"]);
    expect(push.json).toMatchObject({ ok: true, results: { source: "already on the remote", lower: "already on the remote; uploaded 1 missing file" } });
    expect(await exists(`${t.prefix}/blobs/${digest}`)).toBe(true);
    const clone = t.clone({ lockFrom: ci });
    expect((await clone.run(["pull"])).code).toBe(0);
    expect(await clone.build()).toMatchObject({ source: "restored", lower: "restored", report: "restored" });
  });

  it("push re-hashes local blobs: a blob rotted on disk is not uploaded, and the error says what to delete", async () => {
    const t = team();
    const ci = t.clone();
    await ci.build();
    const rotten = blobs(storeOf(ci)).find((b) => readFileSync(b, "utf8") === "hello world\n")!;
    chmodSync(rotten, 0o644);
    writeFileSync(rotten, "hellO world\n");
    const push = await ci.run(["push", "--json"]);
    expect(push.code).toBe(1);
    expect(push.json).toMatchObject({ ok: false, results: { lower: expect.stringMatching(new RegExp(`^FAILED: build cache: ${rotten} should hold sha256 .* Delete it \\(rm ${rotten}\\)`)) } });
    expect(await exists(`${t.prefix}/blobs/${rotten.split("/").at(-1)}`)).toBe(false);
    expect(await exists(`${t.prefix}/manifests/lower/${fingerprintOf(ci, "lower")}.json`)).toBe(false);
  });

  it("a 2 GB remote manifest is refused unread, by its size, and the node runs", async () => {
    // A server that says every manifest is 2 GiB long and then sends one byte: reading it would hang or fill memory.
    const held: ServerResponse[] = [];
    const fake = createHttpServer((req, res) => {
      if (req.method === "HEAD") return res.writeHead(200).end();
      if (req.url?.includes("/manifests/")) {
        res.writeHead(200, { "Content-Length": String(2 ** 31), "Content-Type": "application/json" }).write("{");
        return held.push(res);
      }
      res.writeHead(404, { "Content-Type": "application/xml" }).end('<?xml version="1.0"?><Error><Code>NoSuchKey</Code><Message>none</Message></Error>');
    });
    await new Promise<void>((resolve) => fake.listen(0, "127.0.0.1", resolve));
    try {
      const p = team({ endpoint: `http://127.0.0.1:${(fake.address() as { port: number }).port}` }).clone();
      const r = await p.build();
      expect(r).toMatchObject({ source: "ran", lower: "ran", report: "ran" });
      expect(r._result.stderr).toMatch(/build cache: s3:\/\/team-cache\/.*\/manifests\/source\/[0-9a-f]{64}\.json is 2147483648 bytes, more than a manifest can be .*: refused unread/);
    } finally {
      for (const res of held) res.destroy();
      fake.close();
    }
  });
});
