// kill -9 at every step of publishing an output and recording it in pipeline.lock: models/<node> is always a link
// to a complete output, the old one or the new one, never missing or half-written; the lock always parses;
// whatever status calls fresh is the new output; and the next build finishes the job.
import { spawnSync } from "node:child_process";
import { lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import YAML from "yaml";
import { BASE_CONFIG, FakeProject } from "../helpers/fake-project.ts";
import { collect } from "../helpers/cli.ts";
import { sweepTemps } from "../../engine/durable.ts";

const KILL_AT = pathToFileURL(join(import.meta.dirname, "../helpers/kill-at.mjs")).href;
const OLD = "# Weekly\nhello world\n";
const NEW = "# Monthly\nhello world\n";

/** Where publishing report, then recording it, can be cut short (see engine/outputs.ts and durable.ts). */
const STEPS = [
  { fn: "rename", path: "report.staging-", step: "the staging folder renamed to a build" },
  { fn: "symlink", path: "report.link-", step: "the new link made beside the old" },
  { fn: "rename", path: "report.link-", step: "the new link renamed over the old" },
  { fn: "rm", path: ".builds/report-", step: "the previous build removed" },
  { fn: "open", path: "pipeline.lock.", step: "the new lock opened beside the old" },
  { fn: "rename", path: "pipeline.lock.", step: "the new lock renamed over the old" },
].flatMap((s) => (["before", "after"] as const).map((when) => ({ ...s, when })));

describe.concurrent("kill -9 while publishing and recording", () => {
  it.each(STEPS)("$when $step ($fn $path)", async ({ fn, when, path }) => {
    const p = new FakeProject();
    expect((await p.build())._result.code).toBe(0);
    const oldDigest = lockEntry(p).output.digest;
    p.write("pipeline.yaml", BASE_CONFIG.replace("Weekly", "Monthly")); // only report reruns

    const killed = await collect(p.spawn(["report", "--json"], ["--import", `${KILL_AT}?${new URLSearchParams({ fn, when, path })}`]));
    expect(killed.signal, killed.stderr).toBe("SIGKILL"); // the step was reached

    // The link is there, a link, to a complete output: the previous one or the new one.
    const link = p.path("models/report");
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toMatch(/^\.builds\/report-/);
    const published = p.read("models/report/report.txt");
    expect([OLD, NEW]).toContain(published);
    // The lock parses, and records the previous output or the new one.
    const entry = lockEntry(p);
    const status = await p.run(["status", "--json"]);
    expect(status.code, status.stderr).toBe(0);
    const report = status.json.nodes.find((n) => n.id === "report")!;
    if (entry.output.digest === oldDigest) {
      expect(report.stale).toBe(true); // the config changed; and if the new output is out, it is not the recorded one
    } else {
      expect(published).toBe(NEW); // recorded as new only once the new output is in place
    }
    if (!report.stale) expect(published).toBe(NEW);

    // The next build finishes the job, and everything is fresh and verified after it.
    const next = await p.build();
    expect(next._result.code, next._result.stderr).toBe(0);
    expect(["ran", "fresh", "restored"]).toContain(next.report);
    expect(p.read("models/report/report.txt")).toBe(NEW);
    // A lock write cut short left its temp file in the project, where git status shows it: the build swept it.
    expect(readdirSync(p.dir).filter((n) => n.startsWith("pipeline.lock."))).toEqual([]);
    expect((await p.run(["status", "--json"])).json.nodes.every((n) => n.stale === false)).toBe(true);
    expect((await p.run(["verify"])).code).toBe(0);
  });
});

function lockEntry(p: FakeProject): { output: { digest: string } } {
  const lock = YAML.parse(readFileSync(p.path("pipeline.lock"), "utf8")) as { nodes: Record<string, { output: { digest: string } }> };
  return lock.nodes.report!;
}

describe("temp files of lock writes", () => {
  it("only a dead writer's are swept; a live one's, and other names, are left alone", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sweep-temps-"));
    const dead = spawnSync("true").pid!;
    const names = [`pipeline.lock.${dead}.tmp`, `pipeline.lock.${process.pid}.tmp`, `pipeline.lock.x${dead}.tmp`, `other.lock.${dead}.tmp`, "pipeline.lock"];
    for (const n of names) writeFileSync(join(dir, n), "");
    await sweepTemps(join(dir, "pipeline.lock"));
    expect(readdirSync(dir).sort()).toEqual(names.slice(1).sort());
  });
});
