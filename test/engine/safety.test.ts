// Interrupts, crashes, concurrent builds and failures leave nothing that looks fresh and is not.
import { execSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { BASE_CONFIG, FakeProject, waitFor } from "../helpers/fake-project.ts";

const SLOW_LOWER = `${BASE_CONFIG}lower:\n  mode: upper\nsleep:\n  node: lower\n  seconds: 30\n`;

function logSays(p: FakeProject, text: string): boolean {
  return p.exists("cache/logs/lower.log") && p.read("cache/logs/lower.log").includes(text);
}

/** Whether a process whose command line holds `pattern` runs (the [x] trick keeps pgrep's own shell out). */
function processAlive(pattern: string): boolean {
  try {
    execSync(`pgrep -f "[${pattern[0]}]${pattern.slice(1)}"`);
    return true;
  } catch {
    return false;
  }
}

function stagingFolders(p: FakeProject): string[] {
  return existsSync(p.path("models/.builds")) ? readdirSync(p.path("models/.builds")).filter((n) => n.includes(".staging-")) : [];
}

describe.concurrent("safety", () => {
  it("kill -9 in the middle of a node: no false fresh, the previous output intact, the rerun rebuilds", async () => {
    const p = new FakeProject();
    await p.build();
    p.write("pipeline.yaml", SLOW_LOWER.replace("seconds: 30", "seconds: 34"));
    const child = p.spawn(["report"]);
    await waitFor(() => logSays(p, "sleeping"));
    await waitFor(() => processAlive("sleep 34"), 5000);
    child.kill("SIGKILL");
    await new Promise((r) => child.on("close", r));
    // Nothing cleans up after the tool: its command dies with it.
    await waitFor(() => !processAlive("sleep 34"), 8000);
    // The previous output is still the published one, and still recorded as such.
    expect(p.read("models/lower/out.txt")).toBe("hello world\n");
    expect(stagingFolders(p)).toHaveLength(1); // the partial output, not published
    p.write("pipeline.yaml", `${BASE_CONFIG}lower:\n  mode: upper\n`);
    const status = await p.run(["status", "--json"]);
    expect(status.json.nodes.find((n) => n.id === "lower")?.stale).toBe(true);
    // The dead build's lock is taken over, its staging folder swept.
    expect(await p.build()).toMatchObject({ source: "fresh", lower: "ran", report: "ran" });
    expect(p.read("models/report/report.txt")).toBe("# Weekly\nHELLO WORLD\n");
    expect(stagingFolders(p)).toHaveLength(0);
  });

  it("a second concurrent build is refused at once, naming the holder's pid", async () => {
    const p = new FakeProject(SLOW_LOWER);
    const first = p.spawn(["report"]);
    await waitFor(() => logSays(p, "sleeping"));
    const second = await p.run(["report"]);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(new RegExp(`Another build is running in this project\\. .*\\(pid ${first.pid}:`));
    first.kill("SIGINT");
    await new Promise((r) => first.on("close", r));
  });

  it("--dry-run and --frozen answer while a build holds the run lock: they change nothing", async () => {
    const p = new FakeProject();
    await p.build();
    p.write("pipeline.yaml", SLOW_LOWER.replace("seconds: 30", "seconds: 36")); // a sleep no other test here pgreps for
    const first = p.spawn(["report"]);
    try {
      await waitFor(() => logSays(p, "sleeping"));
      expect(p.exists("cache/build.lock")).toBe(true);
      const dry = await p.run(["report", "--dry-run", "--json"]);
      expect(dry.code, dry.stderr).toBe(0);
      expect(dry.json.nodes.map((n) => n.status)).toEqual(["fresh", "skipped", "skipped"]);
      const frozen = await p.run(["report", "--frozen"]);
      expect(frozen.code).toBe(1);
      expect(frozen.stderr).toMatch(/--frozen: lower, report would rebuild/);
      expect(frozen.stderr).not.toMatch(/Another build/);
      expect(p.exists("cache/build.lock")).toBe(true); // still the running build's
    } finally {
      first.kill("SIGINT");
      await new Promise((r) => first.on("close", r));
    }
  });

  it("Ctrl-C exits 130, kills the tool, and leaves no lock and no staging folder", async () => {
    const p = new FakeProject(SLOW_LOWER.replace("seconds: 30", "seconds: 31"));
    const child = p.spawn(["report"]);
    await waitFor(() => logSays(p, "sleeping"));
    await waitFor(() => processAlive("sleep 31"), 5000); // the tool is running when Ctrl-C comes
    child.kill("SIGINT");
    const code = await new Promise((r) => child.on("close", r));
    expect(code).toBe(130);
    expect(p.exists("cache/build.lock")).toBe(false);
    expect(stagingFolders(p)).toEqual([]);
    await waitFor(() => !processAlive("sleep 31"), 5000);
    expect(p.exists("models/lower")).toBe(false);
    expect(p.read("models/source/all.txt")).toBe("Hello World\n"); // finished work is kept
  });

  it("SIGTERM is handled like Ctrl-C", async () => {
    const p = new FakeProject(SLOW_LOWER.replace("seconds: 30", "seconds: 32"));
    const child = p.spawn(["report"]);
    await waitFor(() => logSays(p, "sleeping"));
    child.kill("SIGTERM");
    expect(await new Promise((r) => child.on("close", r))).toBe(130);
    expect(p.exists("cache/build.lock")).toBe(false);
    await waitFor(() => !processAlive("sleep 32"), 5000);
  });

  it("SIGHUP (a closed terminal, a dropped ssh session) is handled like Ctrl-C", async () => {
    const p = new FakeProject(SLOW_LOWER.replace("seconds: 30", "seconds: 33"));
    const child = p.spawn(["report"]);
    await waitFor(() => logSays(p, "sleeping"));
    await waitFor(() => processAlive("sleep 33"), 5000);
    child.kill("SIGHUP");
    expect(await new Promise((r) => child.on("close", r))).toBe(130);
    expect(p.exists("cache/build.lock")).toBe(false);
    expect(stagingFolders(p)).toEqual([]);
    await waitFor(() => !processAlive("sleep 33"), 5000);
  });

  it("an input edited while its node runs is not recorded as fresh", async () => {
    const p = new FakeProject(`${BASE_CONFIG}sleep:\n  node: source\n  seconds: 2\n`);
    const run = p.build();
    await waitFor(() => p.exists("cache/logs/source.log") && p.read("cache/logs/source.log").includes("sleeping"));
    p.write("input/a.txt", "edited meanwhile\n");
    const result = await run;
    expect(result._result.code).toBe(1);
    expect(result).toMatchObject({ source: "failed", lower: "skipped", report: "skipped" });
    expect(result._result.stderr).toMatch(/inputs changed while source ran \(file input\/a.txt changed\)/);
    expect(p.exists("models/source")).toBe(false);
    expect(p.exists("pipeline.lock")).toBe(false);
  });

  it("a failing command fails the build with its last lines and log path; earlier outputs are kept", async () => {
    const p = new FakeProject(`${BASE_CONFIG}fail: run\n`);
    const result = await p.build();
    expect(result._result.code).toBe(1);
    expect(result).toMatchObject({ source: "ran", lower: "ran", report: "failed" });
    expect(result._result.stderr).toContain("report's command exited with code 3");
    expect(result._result.stderr).toContain("report exploded");
    expect(result._result.stderr).toMatch(/cache\/logs\/report\.log/);
    expect(stagingFolders(p)).toEqual([]);
    // Fixed, the build resumes where it stopped.
    p.write("pipeline.yaml", BASE_CONFIG);
    expect(await p.build()).toMatchObject({ source: "fresh", lower: "fresh", report: "ran" });
  });

  it("a guard error stops the build before any node runs, with every verdict shown", async () => {
    const p = new FakeProject(`${BASE_CONFIG}fail: guard\n`);
    const result = await p.run(["report"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("the report guard refuses");
    expect(result.stderr).toContain("set fail: none");
    expect(p.calls()).toEqual([]);
    const check = await p.run(["check", "--json"]);
    expect(check.code).toBe(1);
    expect(check.json).toMatchObject({
      ok: false,
      verdicts: [
        { node: "source", level: "ok", code: "source.ok" },
        { node: "report", level: "error", code: "report.refused", fix: "set fail: none" },
        { node: "report", level: "ok", code: "report.upstream" },
      ],
    });
  });
});
