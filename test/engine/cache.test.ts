// The local build cache, with the fake pipeline: what was built once comes back restored, byte-identical,
// without running; the lock, cutoff and verify behave as for a built node; corrupt or partial entries are
// never published; gc keeps what the lock references; clones share one store.
import { chmodSync, copyFileSync, mkdtempSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BASE_CONFIG, FakeProject, waitFor } from "../helpers/fake-project.ts";
import { blobs, files, storeIsSound } from "../helpers/store.ts";

const SLOW_COPY = ["--import", join(import.meta.dirname, "../helpers/slow-copy.mjs")];

/** Dates every file in the store back two hours: past gc's grace period for blobs a build may be using. */
function age(store: string): void {
  const then = new Date(Date.now() - 2 * 3_600_000);
  for (const f of files(store)) utimesSync(f, then, then);
}

/** Built once with "Hello World", then with "Goodbye": the store holds both, the first no longer published. */
async function builtTwice(p = new FakeProject()): Promise<{ p: FakeProject; firstLock: string; firstReport: string }> {
  expect((await p.build())._result.code).toBe(0);
  const firstLock = p.read("pipeline.lock");
  const firstReport = p.read("models/report/report.txt");
  p.write("input/a.txt", "Goodbye\n");
  expect(await p.build()).toMatchObject({ source: "ran", lower: "ran", report: "ran" });
  return { p, firstLock, firstReport };
}

describe.concurrent("build cache", () => {
  it("a reverted edit is restored, not run: status and --dry-run say so, the lock and verify are as after a build", async () => {
    const { p, firstLock, firstReport } = await builtTwice();
    p.write("input/a.txt", "Hello World\n");
    const status = await p.run(["status", "--json"]);
    expect(status.json.nodes.map((n) => [n.id, n.restore])).toEqual([["source", true], ["lower", true], ["report", true]]);
    const dry = await p.run(["report", "--dry-run"]);
    expect(dry.stderr).toMatch(/report stale: would be restored from the build cache/);
    const calls = p.calls().length;
    const restored = await p.build();
    expect(restored).toMatchObject({ source: "restored", lower: "restored", report: "restored" });
    expect(restored._result.stderr).toMatch(/report: restored from the build cache in \d+/);
    expect(p.calls()).toHaveLength(calls);
    expect(p.read("models/report/report.txt")).toBe(firstReport);
    expect(p.read("pipeline.lock")).toBe(firstLock);
    expect((await p.run(["verify"])).code).toBe(0);
    expect(await p.build()).toMatchObject({ source: "fresh", lower: "fresh", report: "fresh" });
  });

  it("a restore whose output is identical cuts the cascade off, as a build would", async () => {
    const p = new FakeProject();
    await p.build();
    p.write("input/a.txt", "HELLO world\n"); // lowercases to the same bytes
    expect(await p.build()).toMatchObject({ source: "ran", lower: "ran", report: "cutoff" });
    p.write("input/a.txt", "Hello World\n");
    expect(await p.build()).toMatchObject({ source: "restored", lower: "restored", report: "cutoff" });
  });

  it("a restored file is a copy: editing it leaves the store intact, and the next build restores it again", async () => {
    const { p, firstReport } = await builtTwice();
    p.write("input/a.txt", "Hello World\n");
    await p.build();
    const report = p.path("models/report/report.txt");
    chmodSync(report, 0o644);
    writeFileSync(report, "edited by hand\n");
    storeIsSound(p.path("cache/store"));
    expect(await p.build()).toMatchObject({ report: "restored" });
    expect(p.read("models/report/report.txt")).toBe(firstReport);
  });

  it("a corrupt blob is discarded with a warning and its node runs; nothing corrupt is published", async () => {
    const { p, firstReport } = await builtTwice();
    const store = p.path("cache/store");
    // The blob of the first build's report (the only file whose text says "hello world" under a title).
    const blob = blobs(store).find((b) => readFileSync(b, "utf8") === firstReport)!;
    chmodSync(blob, 0o644);
    writeFileSync(blob, "# Weekly\nHELLO WORLD\n");
    p.write("input/a.txt", "Hello World\n");
    const r = await p.build();
    expect(r).toMatchObject({ source: "restored", lower: "restored", report: "ran" });
    expect(r._result.stderr).toMatch(/build cache .* held corrupt data for report\.txt: discarded, running the node instead/);
    expect(p.read("models/report/report.txt")).toBe(firstReport);
    storeIsSound(store);
    expect((await p.run(["verify"])).code).toBe(0);
  });

  it("kill -9 during a restore: nothing half-restored is published and the next build completes", async () => {
    const { p } = await builtTwice();
    p.write("input/a.txt", "Hello World\n");
    p.env = { SLOW_COPY_MARK: p.path("copying") };
    const child = p.spawn(["report"], SLOW_COPY);
    await waitFor(() => p.exists("copying"), 60_000);
    child.kill("SIGKILL");
    await new Promise((r) => child.on("close", r));
    p.env = {};
    // Still the "Goodbye" build, and still recorded as such.
    expect(p.read("models/source/all.txt")).toBe("Goodbye\n");
    expect((await p.run(["verify"])).code).toBe(0);
    expect(await p.build()).toMatchObject({ source: "restored", lower: "restored", report: "restored" });
    expect(p.read("models/source/all.txt")).toBe("Hello World\n");
    expect(readdirSync(p.path("models/.builds")).filter((n) => n.includes(".staging-"))).toEqual([]);
  });

  it("gc keeps what the lock references within max_size, says what it freed, and the lock's entries still restore", async () => {
    const { p } = await builtTwice(new FakeProject(`${BASE_CONFIG}cache:\n  max_size: 1B\n`));
    const store = p.path("cache/store");
    const shown = await p.run(["cache", "--json"]);
    expect(shown.json).toMatchObject({ entries: 6, nodes: { source: { entries: 2, inLock: true } } });
    age(store);
    const gc = await p.run(["gc", "--json"]);
    expect(gc.code).toBe(0);
    expect((gc.json as unknown as { removed: unknown[] }).removed).toHaveLength(3);
    expect((gc.json as unknown as { freedBytes: number }).freedBytes).toBeGreaterThan(0);
    storeIsSound(store);
    // What the current lock references survived: a fresh clone of this lock restores it all.
    const clone = new FakeProject(`${BASE_CONFIG}cache:\n  dir: ${store}\n`, { "a.txt": "Goodbye\n" });
    copyFileSync(p.path("pipeline.lock"), clone.path("pipeline.lock"));
    expect(await clone.build()).toMatchObject({ source: "restored", lower: "restored", report: "restored" });
    expect(clone.calls()).toEqual([]);
    // The first build's entries are gone: reverting now runs the nodes.
    p.write("input/a.txt", "Hello World\n");
    expect(await p.build()).toMatchObject({ source: "ran", lower: "ran", report: "ran" });
  });

  it("two clones building at once into one store both succeed, and the store stays sound", async () => {
    const store = mkdtempSync(join(tmpdir(), "shared-store-"));
    const config = `${BASE_CONFIG}cache:\n  dir: ${store}\n`;
    const [a, b] = [new FakeProject(config), new FakeProject(config, { "a.txt": "Hello World\n", "b.txt": "Second\n" })];
    const [ra, rb] = await Promise.all([a.build(), b.build()]);
    expect([ra._result.code, rb._result.code]).toEqual([0, 0]);
    storeIsSound(store);
    // A third clone of a's lock restores a's outputs from the shared store.
    const c = new FakeProject(config);
    copyFileSync(a.path("pipeline.lock"), c.path("pipeline.lock"));
    expect(await c.build()).toMatchObject({ source: "restored", lower: "restored", report: "restored" });
    expect(statSync(c.path("models/report/report.txt")).ino).not.toBe(statSync(a.path("models/report/report.txt")).ino);
  });
});
