// A guard may read an upstream output only when it exists and matches the current fingerprint
// (ctx.isBuilt): a fresh clone has pipeline.lock but no outputs, and a stale output was made from other inputs.
import { copyFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { BASE_CONFIG, FakeProject } from "../helpers/fake-project.ts";

const upstreamVerdict = (r: { json: Record<string, unknown> }) =>
  (r.json.verdicts as { code: string; message: string }[]).find((v) => v.code === "report.upstream")?.message;

describe.concurrent("what guards see", () => {
  it("a fresh clone (the lock, no outputs) builds: its guards plan without the missing outputs", async () => {
    const first = new FakeProject();
    expect((await first.build())._result.code).toBe(0);
    const clone = new FakeProject();
    copyFileSync(first.path("pipeline.lock"), clone.path("pipeline.lock"));
    expect(upstreamVerdict(await clone.run(["check", "--json"]))).toBe("lower is not built yet");
    const built = await clone.build();
    expect(built._result.stderr).not.toMatch(/guard itself failed/);
    expect(built._result.code).toBe(0);
    expect(clone.read("models/report/report.txt")).toBe("# Weekly\nhello world\n");
  });

  it("a stale upstream output is not shown to a guard; a fresh one is", async () => {
    const p = new FakeProject();
    await p.build();
    expect(upstreamVerdict(await p.run(["check", "--json"]))).toBe('lower holds "hello world\\n"');
    p.write("pipeline.yaml", `${BASE_CONFIG}lower:\n  mode: upper\n`);
    expect(upstreamVerdict(await p.run(["check", "--json"]))).toBe("lower is not built yet");
  });

  it("a guard that can judge only an output built in this build stops the build as soon as it is built, not when its node comes", async () => {
    const p = new FakeProject(`${BASE_CONFIG}forbid: World\n`);
    const result = await p.build();
    expect(result._result.code).toBe(1);
    expect(p.calls()).toEqual(["source"]); // lower, between source and report, never ran
    expect(result).toMatchObject({ source: "ran", lower: "skipped", report: "failed" });
    expect(result._result.stderr).toContain(`source's output holds "World"`);
    p.write("input/a.txt", "Hello Earth\n");
    expect((await p.build())._result.code).toBe(0);
  });
});
