// The local store against what a hostile or broken store, a careless cache.dir and a concurrent gc can do:
// manifests are validated before any file system call (an invalid one is refused with its path and the node
// runs), nothing outside the staging folder and the store is written or removed, and gc and builds share the
// store safely (each interleaving held open with test/helpers/pause-at.mjs, no hook in the engine).
import { createHash } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, truncateSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import YAML from "yaml";
import { collect } from "../helpers/cli.ts";
import { BASE_CONFIG, FakeProject, waitFor } from "../helpers/fake-project.ts";
import { files, storeIsSound } from "../helpers/store.ts";

const PAUSE_AT = pathToFileURL(join(import.meta.dirname, "../helpers/pause-at.mjs")).href;
const sha = (text: string) => createHash("sha256").update(text).digest("hex");

/** Dates every file in the store back two hours: past gc's grace period. */
function age(store: string): void {
  const then = new Date(Date.now() - 2 * 3_600_000);
  for (const f of files(store)) utimesSync(f, then, then);
}

function fingerprint(lock: string, node: string): string {
  return (YAML.parse(lock) as { nodes: Record<string, { fingerprint: string }> }).nodes[node]!.fingerprint;
}

/** A hook that holds the process at the first `fn` on a path containing `path`, until the test says go. */
function pauseAt(fn: string, path: string): { args: string[]; reached: () => boolean; go: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "pause-"));
  const [mark, go] = [join(dir, "mark"), join(dir, "go")];
  return {
    args: ["--import", `${PAUSE_AT}?${new URLSearchParams({ fn, path, mark, go })}`],
    reached: () => existsSync(mark),
    go: () => writeFileSync(go, ""),
  };
}

/** Runs the CLI; `said(re)`: whether its stderr so far matches (a sign it is waiting, read while it runs). */
function watched(p: FakeProject, args: string[], nodeArgs: string[] = []): { done: ReturnType<typeof collect>; said: (re: RegExp) => boolean } {
  const child = p.spawn(args, nodeArgs);
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  return { done: collect(child), said: (re) => re.test(err) };
}

/** Resolves when `run` ends or says it waits: a process that waits for the other proves the lock; one that ends did not wait. */
const endsOrWaits = (run: ReturnType<typeof watched>, re: RegExp) => Promise.race([run.done, waitFor(() => run.said(re), 120_000)]);

describe.concurrent("local store: invalid manifests", () => {
  it("each manifest that is invalid or reaches outside is refused with its path, the node runs, and nothing outside is touched", async () => {
    const p = new FakeProject();
    expect((await p.build())._result.code).toBe(0);
    const fp = fingerprint(p.read("pipeline.lock"), "report");
    p.write("input/a.txt", "Goodbye\n");
    expect(await p.build()).toMatchObject({ report: "ran" });
    const path = p.path("cache/store/manifests/report", `${fp}.json`);
    const valid = JSON.parse(readFileSync(path, "utf8")) as { output: { files: Record<string, string> }; sizes: Record<string, number> };
    const digest = Object.values(valid.output.files)[0]!;
    // The victim: a user's file beside the project, which the staging folder (models/.builds/<x>) is three levels under.
    mkdirSync(p.path("victim"));
    p.write("victim/important.conf", "precious\n");
    const escape = (rel: string) => JSON.stringify({ ...valid, output: { ...valid.output, files: { [rel]: digest } }, sizes: { [rel]: 21 } });

    const cases: { name: string; write: () => void; says: RegExp }[] = [
      { name: "a path with ..", write: () => writeFileSync(path, escape("../../../victim/x.txt")), says: /output\.files.*not a normalized relative path/ },
      { name: "an absolute path", write: () => writeFileSync(path, escape(p.path("victim/y.txt"))), says: /not a normalized relative path/ },
      {
        // blobs/<first 2 chars>/<digest> = blobs/../../../victim/important.conf: the corrupt-blob cleanup deleted it.
        name: "a digest that names a path",
        write: () => writeFileSync(path, JSON.stringify({ ...valid, output: { ...valid.output, files: { "report.txt": "../../../victim/important.conf" } } })),
        says: /not a sha256/,
      },
      { name: "a manifest without output", write: () => writeFileSync(path, JSON.stringify({ ...valid, output: undefined })), says: /output: / },
      { name: "not JSON", write: () => writeFileSync(path, "<html>Access denied</html>"), says: /is not a manifest \(not JSON\)/ },
      {
        name: "a 2 GB manifest",
        write: () => {
          writeFileSync(path, "");
          truncateSync(path, 2 * 1024 ** 3); // sparse: costs no disk, and must cost no memory either
        },
        says: /is 2147483648 bytes, more than a manifest can be .*refused unread/,
      },
    ];
    for (const c of cases) {
      c.write();
      p.write("input/a.txt", "Hello World\n");
      const r = await p.build();
      expect(r.report, c.name).toBe("ran");
      expect(r._result.stderr, c.name).toContain(path);
      expect(r._result.stderr, c.name).toMatch(c.says);
      expect(r._result.stderr, c.name).toMatch(/refused( unread)?\. Delete it \(rm .*\); running the node instead/);
      expect(readdirSync(p.path("victim")).sort(), c.name).toEqual(["important.conf"]);
      expect(p.read("victim/important.conf")).toBe("precious\n");
      expect(p.read("models/report/report.txt")).toBe("# Weekly\nhello world\n");
      p.write("input/a.txt", "Goodbye\n");
      expect(await p.build(), c.name).toMatchObject({ report: "restored" });
    }
    storeIsSound(p.path("cache/store"));
  });

  it("a link in the store's own folders is never written through", async () => {
    const p = new FakeProject();
    const outside = p.path("outside");
    mkdirSync(outside);
    // The shard the report's blob goes to is a link to a folder of the user's.
    const shard = sha("# Weekly\nhello world\n").slice(0, 2);
    mkdirSync(p.path("cache/store/blobs"), { recursive: true });
    symlinkSync(outside, p.path("cache/store/blobs", shard));
    const r = await p.build();
    expect(r).toMatchObject({ report: "ran" });
    expect(r._result.stderr).toMatch(/not kept in the build cache .*blobs\/[0-9a-f]{2} is not a folder of the store/);
    expect(readdirSync(outside)).toEqual([]);
  });
});

describe.concurrent("local store: links", () => {
  it("a manifest that is a link is refused, not read through, and the file it points at is left as it was", async () => {
    const p = new FakeProject();
    expect((await p.build())._result.code).toBe(0);
    const fp = fingerprint(p.read("pipeline.lock"), "report");
    p.write("input/a.txt", "Goodbye\n");
    await p.build();
    // A valid manifest, but outside the store: the store must read only its own files.
    const path = p.path("cache/store/manifests/report", `${fp}.json`);
    p.write("elsewhere.json", readFileSync(path, "utf8"));
    const then = new Date(Date.now() - 3_600_000);
    utimesSync(p.path("elsewhere.json"), then, then);
    rmSync(path);
    symlinkSync(p.path("elsewhere.json"), path);
    p.write("input/a.txt", "Hello World\n");
    const r = await p.build();
    expect(r).toMatchObject({ report: "ran" });
    expect(r._result.stderr).toContain(`${path} is a link, not a manifest: refused`);
    // Not touched through the link (that would make it now); mtimeMs is nanoseconds over 1e6, so rounded to the ms utimes set.
    expect(Math.round(statSync(p.path("elsewhere.json")).mtimeMs)).toBe(then.getTime());
    expect(lstatSync(path).isFile()).toBe(true); // the run's record replaced the link
    storeIsSound(p.path("cache/store"));
  });
});

describe.concurrent("local store: cache.dir", () => {
  it("an existing folder that is not a store is refused before anything is written or deleted in it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "my-files-"));
    writeFileSync(join(dir, "notes.txt"), "mine\n");
    mkdirSync(join(dir, "tmp"));
    writeFileSync(join(dir, "tmp", "draft.txt"), "mine too\n");
    age(dir);
    const p = new FakeProject(`${BASE_CONFIG}cache:\n  dir: ${dir}\n`);
    for (const args of [["gc"], ["report"]]) {
      const r = await p.run(args);
      expect(r.code, args[0]).toBe(2);
      expect(r.stderr).toMatch(/cache\.dir: .* exists and holds files that are not a build cache \(notes\.txt\): refused/);
    }
    expect(readdirSync(dir).sort()).toEqual(["notes.txt", "tmp"]);
    expect(readdirSync(join(dir, "tmp"))).toEqual(["draft.txt"]);
  });

  it("~/ in cache.dir is the home folder", async () => {
    const home = mkdtempSync(join(tmpdir(), "home-"));
    const p = new FakeProject(`${BASE_CONFIG}cache:\n  dir: ~/team-store\n`);
    p.env = { HOME: home };
    expect((await p.build())._result.code).toBe(0);
    expect(p.exists("~")).toBe(false);
    expect(readdirSync(join(home, "team-store", "manifests")).sort()).toEqual(["lower", "report", "source"]);
  });

  it("an endpoint without a scheme is a config error naming the key", async () => {
    const p = new FakeProject(`${BASE_CONFIG}cache:\n  remote: s3://bucket/x\n  endpoint: localhost:9000\n`);
    const r = await p.run(["status"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cache\.endpoint: must be an http:\/\/ or https:\/\/ URL/);
  });
});

describe.concurrent("gc beside builds", () => {
  it("gc held between its scan and its deletes while a build records the same bytes again: the new entry stays whole", async () => {
    const store = mkdtempSync(join(tmpdir(), "shared-store-"));
    const config = `${BASE_CONFIG}cache:\n  dir: ${store}\n  max_size: 1B\n`;
    const a = new FakeProject(config);
    expect((await a.build())._result.code).toBe(0);
    age(store);
    // gc from a clone without a lock (nothing pinned): it means to delete all of a's entries and blobs.
    const collector = new FakeProject(config);
    const pause = pauseAt("rm", "/manifests/");
    const gc = collect(collector.spawn(["gc"], pause.args));
    await waitFor(pause.reached, 60_000);
    // b's lower and report outputs are a's bytes: its record finds those blobs there and keeps them.
    const b = new FakeProject(config, { "a.txt": "HELLO world\n" });
    const built = watched(b, ["report"]);
    // Held until b is done (a build that does not wait for gc), or says it waits for gc.
    await endsOrWaits(built, /waiting for gc \(pid \d+\)/);
    pause.go();
    const [g, rb] = await Promise.all([gc, built.done]);
    expect(g.code, g.stderr).toBe(0);
    expect(rb.code, rb.stderr).toBe(0);
    storeIsSound(store);
    // b's entries are all there: a clone of its lock restores everything.
    const c = new FakeProject(config, { "a.txt": "HELLO world\n" });
    writeFileSync(c.path("pipeline.lock"), b.read("pipeline.lock"));
    expect(await c.build()).toMatchObject({ source: "restored", lower: "restored", report: "restored" });
    expect(c.calls()).toEqual([]);
  });

  it("a restore held in the middle of its copy keeps gc off its entry: it is restored, then gc finishes", async () => {
    const store = mkdtempSync(join(tmpdir(), "shared-store-"));
    const config = `${BASE_CONFIG}cache:\n  dir: ${store}\n  max_size: 1B\n`;
    const p = new FakeProject(config);
    expect((await p.build())._result.code).toBe(0);
    p.write("input/a.txt", "Goodbye\n");
    expect((await p.build())._result.code).toBe(0);
    age(store);
    p.write("input/a.txt", "Hello World\n");
    const pause = pauseAt("copyFile", "/blobs/");
    const restoring = collect(p.spawn(["report", "--json"], pause.args));
    await waitFor(pause.reached, 60_000);
    const gc = watched(new FakeProject(config), ["gc"]);
    // Held until gc is done (a gc that does not wait for the restore), or says it waits for it.
    await endsOrWaits(gc, /gc: waiting for the build using .* \(pid \d+\)/);
    pause.go();
    const [r, g] = await Promise.all([restoring, gc.done]);
    expect(g.code, g.stderr).toBe(0);
    const nodes = (JSON.parse(r.stdout) as { nodes: { id: string; status: string }[] }).nodes;
    expect(Object.fromEntries(nodes.map((n) => [n.id, n.status]))).toEqual({ source: "restored", lower: "restored", report: "restored" });
    expect(p.calls()).toEqual(["source", "lower", "report", "source", "lower", "report"]); // the two builds only
    storeIsSound(store);
  });
});
