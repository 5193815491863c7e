// The remote build cache against each backend: a real S3 server on 127.0.0.1 (moto, installed and started
// here) and a shared folder (file://). The same scenarios run against both: push, pull, a build that misses
// locally and fetches, refused tampered objects, missing ones run, kill -9 in the middle of a push or a pull.
// Then the S3 remote's one-line errors of a bad setup; the folder's own cases are in remote-folder.test.ts.
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type ServerResponse } from "node:http";
import { createServer, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import type { FakeProject } from "../helpers/fake-project.ts";
import { digestOf, fingerprintOf, folderRemote, literal, outputs, s3Remote, storeOf, team } from "../helpers/remotes.ts";
import { blobs, manifests, storeIsSound } from "../helpers/store.ts";
import { backendOf } from "../../engine/caching/backends.ts";
import { LocalStore } from "../../engine/caching/local.ts";
import { cacheSettings, type CacheConfig } from "../../engine/caching/settings.ts";
import { ProjectEntries, projectIds } from "../../engine/experiments/entries.ts";
import { shareEntry } from "../../engine/experiments/share.ts";

const s3 = s3Remote();
const folder = folderRemote();

beforeAll(async () => {
  await Promise.all([s3.start(), folder.start()]);
});

afterAll(async () => {
  await Promise.all([s3.stop(), folder.stop()]);
});

describe.concurrent.each([s3, folder])("remote build cache ($name)", (remote) => {
  it("push; a fresh clone pulls and builds nothing; one that does not pull fetches during its build; --no-remote runs", async () => {
    const t = team(remote);
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
    const t = team(remote);
    const ci = t.clone();
    await ci.build();
    expect((await ci.run(["push"])).code).toBe(0);
    const blob = `${t.prefix}/blobs/${digestOf(ci, "out.txt")}`;
    await remote.put(blob, "HELLO EVIL\n");
    await remote.remove(`${t.prefix}/manifests/report/${fingerprintOf(ci, "report")}.json`);

    const clone = t.clone({ lockFrom: ci });
    const pull = await clone.run(["pull", "--json"]);
    expect(pull.code).toBe(1);
    expect(pull.json).toMatchObject({
      ok: false,
      results: {
        lower: expect.stringMatching(
          new RegExp(`^FAILED: remote cache: ${literal(remote.where(blob))} does not hold the bytes its name promises.*: delete it \\(${literal(remote.removal(blob))}\\), then push again`),
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

  it("kill -9 during a push and during a pull: the next command completes and nothing corrupt is published", async () => {
    const t = team(remote);
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

  it("remote manifests that are invalid or reach outside are refused with their URL; the node runs; nothing outside is written", async () => {
    const t = team(remote);
    const ci = t.clone();
    await ci.build();
    expect((await ci.run(["push"])).code).toBe(0);
    const key = `${t.prefix}/manifests/report/${fingerprintOf(ci, "report")}.json`;
    const valid = JSON.parse(await remote.read(key)) as {
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
      await remote.put(key, c.body);
      const clone = t.clone({ lockFrom: ci });
      mkdirSync(clone.path("victim"));
      clone.write("victim/important.conf", "precious\n");
      const r = await clone.build();
      expect(r, c.name).toMatchObject({ source: "restored", lower: "restored", report: "ran" });
      expect(r._result.stderr, c.name).toContain(remote.where(key));
      expect(r._result.stderr, c.name).toMatch(new RegExp(`refused\\. Delete it \\(${literal(remote.removal(key))}\\) and push the entry again`));
      expect(readdirSync(clone.path("victim")), c.name).toEqual(["important.conf"]);
      expect(clone.read("victim/important.conf")).toBe("precious\n");
      expect((await clone.run(["status"])).code, c.name).toBe(0);
    }
  });

  it("push completes a remote entry that lost a blob, so deleting a damaged blob and pushing repairs it", async () => {
    const t = team(remote);
    const ci = t.clone();
    await ci.build();
    expect((await ci.run(["push"])).code).toBe(0);
    const digest = /out\.txt: ([0-9a-f]{64})/.exec(ci.read("pipeline.lock"))![1]!;
    await remote.remove(`${t.prefix}/blobs/${digest}`);
    const push = await ci.run(["push", "--json"]);
    expect(push.json).toMatchObject({ ok: true, results: { source: "already on the remote", lower: "already on the remote; uploaded 1 missing file" } });
    expect(await remote.exists(`${t.prefix}/blobs/${digest}`)).toBe(true);
    const clone = t.clone({ lockFrom: ci });
    expect((await clone.run(["pull"])).code).toBe(0);
    expect(await clone.build()).toMatchObject({ source: "restored", lower: "restored", report: "restored" });
  });

  it("push re-hashes local blobs: a blob rotted on disk is not uploaded, and the error says what to delete", async () => {
    const t = team(remote);
    const ci = t.clone();
    await ci.build();
    const rotten = blobs(storeOf(ci)).find((b) => readFileSync(b, "utf8") === "hello world\n")!;
    chmodSync(rotten, 0o644);
    writeFileSync(rotten, "hellO world\n");
    const push = await ci.run(["push", "--json"]);
    expect(push.code).toBe(1);
    expect(push.json).toMatchObject({ ok: false, results: { lower: expect.stringMatching(new RegExp(`^FAILED: build cache: ${rotten} should hold sha256 .* Delete it \\(rm ${rotten}\\)`)) } });
    expect(await remote.exists(`${t.prefix}/blobs/${rotten.split("/").at(-1)}`)).toBe(false);
    expect(await remote.exists(`${t.prefix}/manifests/lower/${fingerprintOf(ci, "lower")}.json`)).toBe(false);
  });

  it("experiments shared: a sweep's runs pushed with what was built from them; a clone lists them through the remote and reads their records", async () => {
    Object.assign(process.env, remote.env);
    const t = team(remote);
    const ci = t.clone();
    await ci.build(); // pipeline.lock, and its project id, come from a plain build: -S leaves the lock alone
    expect((await ci.run(["report", "-S", "lower.mode=lower,upper"])).code).toBe(0);
    const open = async (p: FakeProject) => {
      const settings = cacheSettings((YAML.parse(p.read("pipeline.yaml")) as { cache: CacheConfig }).cache, p.dir, storeOf(p)).remote!;
      return backendOf(settings.url)!.open(settings, new LocalStore(storeOf(p)));
    };
    const here = new ProjectEntries(storeOf(ci), await projectIds(ci.dir, ci.path("pipeline.lock")));
    const lowers = await here.of("lower");
    expect(lowers).toHaveLength(2);
    const ciRemote = await open(ci);
    for (const { manifest } of lowers) {
      const run = await here.builtFrom(manifest, ["source", "lower", "report"]);
      expect(run.map((m) => m.node)).toEqual(["lower", "report"]);
      for (const m of run) expect(await shareEntry(ciRemote, here.store, m)).toMatch(/^pushed /);
      for (const m of run) expect(await shareEntry(ciRemote, here.store, m)).toBe("already on the remote");
    }
    // A stray object beside the manifests names no entry.
    await remote.put(`${t.prefix}/manifests/report/notes.txt`, "not a manifest");
    expect((await ciRemote.fingerprints("report")).sort()).toEqual((await here.of("report")).map((e) => e.manifest.fingerprint).sort());

    // A clone with its own, empty store: nothing locally, both runs through the remote, their records fetched when read.
    const clone = t.clone({ lockFrom: ci });
    const ids = await projectIds(clone.dir, clone.path("pipeline.lock"));
    expect(await new ProjectEntries(storeOf(clone), ids).of("lower")).toEqual([]);
    const there = new ProjectEntries(storeOf(clone), ids, await open(clone));
    const seen = await there.of("lower");
    expect(seen.map((e) => [e.manifest.fingerprint, e.remoteOnly]).sort()).toEqual(lowers.map((e) => [e.manifest.fingerprint, true]).sort());
    for (const { manifest } of seen) {
      const [report] = await there.downstream(manifest, [], "report");
      const upper = (manifest.params as { mode: string }).mode === "upper";
      expect(await there.text(report!.manifest, "report.txt")).toBe(`# Weekly\n${upper ? "HELLO WORLD" : "hello world"}\n`);
    }
    // Another project sharing the remote does not see them.
    const other = t.clone();
    expect(await new ProjectEntries(storeOf(other), await projectIds(other.dir, other.path("pipeline.lock")), await open(other)).of("lower")).toEqual([]);

    // A record whose bytes are not its name is refused with its URL, not read.
    const third = t.clone({ lockFrom: ci });
    const tampered = new ProjectEntries(storeOf(third), ids, await open(third));
    const [lower] = await tampered.of("lower");
    const [report] = await tampered.downstream(lower!.manifest, [], "report");
    await remote.put(`${t.prefix}/blobs/${report!.manifest.output.files["report.txt"]}`, "# Evil\n");
    expect(await tampered.text(report!.manifest, "report.txt")).toBeUndefined();
    expect(tampered.refused).toEqual([expect.stringMatching(/does not hold the bytes its name promises/)]);
  });
});

describe.concurrent("remote build cache (S3 setup)", () => {
  it("a bad setup fails in one line naming the setting: URL, bucket, credentials, endpoint, push: false", async () => {
    const p = team(s3).clone();
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
    p.env = { ...s3.server.env, AWS_ACCESS_KEY_ID: "", AWS_SECRET_ACCESS_KEY: "" };
    r = await p.run(["pull"]);
    expect([r.code, r.stderr]).toEqual([2, expect.stringMatching(/cache\.remote: no AWS credentials found\. Set AWS_ACCESS_KEY_ID/)]);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    p.env = s3.server.env;

    withCache((y) => y.replace(/endpoint: .*/, "endpoint: http://127.0.0.1:9"));
    r = await p.run(["pull"]);
    expect([r.code, r.stderr]).toEqual([1, expect.stringMatching(/cache\.endpoint: cannot reach http:\/\/127\.0\.0\.1:9 \(ECONNREFUSED\)/)]);

    withCache((y) => `${y}  push: false\n`);
    r = await p.run(["push"]);
    expect([r.code, r.stderr]).toEqual([2, expect.stringMatching(/cache\.push is false: this clone reads the remote cache but does not write it/)]);
  });

  it("a remote that is unreachable, silent or without credentials: the build warns once, naming the setting, and goes on", async () => {
    // A server that takes connections and never answers: the remote as a stalled network shows it.
    const sockets: Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const port = (silent.address() as { port: number }).port;
    try {
      const cases = [
        { endpoint: "http://127.0.0.1:9", env: s3.server.env, says: /warning: cache\.endpoint: cannot reach http:\/\/127\.0\.0\.1:9 \(ECONNREFUSED\)/ },
        { endpoint: `http://127.0.0.1:${port}`, env: s3.server.env, says: /warning: cache\.endpoint: cannot reach .* \(no answer within 10 s\)/ },
        { endpoint: s3.server.endpoint, env: { ...s3.server.env, AWS_ACCESS_KEY_ID: "", AWS_SECRET_ACCESS_KEY: "" }, says: /warning: cache\.remote: no AWS credentials found/ },
      ];
      await Promise.all(
        cases.map(async ({ endpoint, env, says }) => {
          const p = team(s3, { endpoint }).clone();
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
      const p = team(s3, { endpoint: `http://127.0.0.1:${(fake.address() as { port: number }).port}` }).clone();
      const r = await p.build();
      expect(r).toMatchObject({ source: "ran", lower: "ran", report: "ran" });
      expect(r._result.stderr).toMatch(/build cache: s3:\/\/team-cache\/.*\/manifests\/source\/[0-9a-f]{64}\.json is 2147483648 bytes, more than a manifest can be .*: refused unread/);
    } finally {
      for (const res of held) res.destroy();
      fake.close();
    }
  });
});
