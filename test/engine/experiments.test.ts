// -S key=value and sweeps, on the engine alone: parsing and the grid, then the fake pipeline's CLI (a setting
// for one build leaves pipeline.lock as committed, --save writes it and the config, a sweep guards every
// combination before the first builds).
import { cpSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ProjectEntries, projectIds } from "../../engine/experiments/entries.ts";
import { legacyProjectId, lockProject } from "../../engine/lockfile.ts";
import { grid, parseOverrides, settingArgs } from "../../engine/experiments/overrides.ts";
import { UserError } from "../../engine/types.ts";
import { BASE_CONFIG, FakeProject, waitFor } from "../helpers/fake-project.ts";

describe("-S parsing", () => {
  it("reads dotted keys and YAML scalars, commas as several values", () => {
    const o = parseOverrides(["lora.rank=4,8", "lora.learning_rate=1e-4", "memory.total=16GB", "lora.grad_checkpoint=true", "data.files=[a/*.jsonl,b.jsonl]"]);
    expect(o.map((x) => x.path.join("."))).toEqual(["lora.rank", "lora.learning_rate", "memory.total", "lora.grad_checkpoint", "data.files"]);
    expect(o.map((x) => x.values)).toEqual([[4, 8], [0.0001], ["16GB"], [true], [["a/*.jsonl", "b.jsonl"]]]);
    expect(parseOverrides(['report.title="a,b"'])[0]!.values).toEqual(["a,b"]);
  });

  it("refuses a malformed argument, an empty value and a key given twice, naming it (exit 2)", () => {
    const refused = (args: string[]) => {
      try {
        parseOverrides(args);
      } catch (e) {
        expect(e).toBeInstanceOf(UserError);
        expect((e as UserError).exitCode).toBe(2);
        return (e as Error).message;
      }
      throw new Error(`accepted ${args.join(" ")}`);
    };
    expect(refused(["lora.rank"])).toMatch(/^-S lora\.rank: write it as key=value/);
    expect(refused(["lora..rank=4"])).toMatch(/^-S lora\.\.rank=4: write it as key=value/);
    expect(refused(["lora.rank=4,"])).toMatch(/^-S lora\.rank=4,: an empty value for lora\.rank/);
    expect(refused(["lora.rank=4", "lora.rank=8"])).toMatch(/lora\.rank is set twice; .*-S lora\.rank=a,b/);
  });

  it("expands the grid, the first key varying slowest, and gives each combination's arguments back", () => {
    const settings = grid(parseOverrides(["lora.rank=4,8", "lora.learning_rate=1e-4,3e-4", "lora.iters=2"]));
    expect(settings.map((s) => settingArgs(s).join(" "))).toEqual([
      "-S lora.rank=4 -S lora.learning_rate=0.0001 -S lora.iters=2",
      "-S lora.rank=4 -S lora.learning_rate=0.0003 -S lora.iters=2",
      "-S lora.rank=8 -S lora.learning_rate=0.0001 -S lora.iters=2",
      "-S lora.rank=8 -S lora.learning_rate=0.0003 -S lora.iters=2",
    ]);
    expect(grid([])).toEqual([[]]);
  });
});

describe.concurrent("-S on the fake pipeline", () => {
  it("builds with the setting, validated by the schema, and leaves pipeline.lock as committed", async () => {
    const p = new FakeProject();
    expect((await p.build()).report).toBe("ran");
    const lock = p.read("pipeline.lock");

    const unknown = await p.run(["report", "-S", "report.titel=X"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/-S report\.titel=X: unknown key report\.titel/);
    const badValue = await p.run(["status", "-S", "lower.mode=sideways"]);
    expect(badValue.code).toBe(2);
    expect(badValue.stderr).toMatch(/-S lower\.mode=sideways: lower\.mode: .*"lower".*"upper"/);

    const status = await p.run(["status", "--json", "-S", "report.title=Monthly"]);
    expect(status.json.nodes.find((n) => n.id === "report")!.reasons).toEqual([expect.stringMatching(/param title changed: "Weekly" → "Monthly"|title/)]);

    const built = await p.build("-S", "report.title=Monthly");
    expect(built.report).toBe("ran");
    expect(built.lower).toBe("fresh");
    expect(p.read("models/report/report.txt")).toMatch(/^# Monthly\n/);
    expect(built._result.stderr).toMatch(/-S report\.title=Monthly: built for this run only; pipeline\.yaml and pipeline\.lock are unchanged/);
    expect(p.read("pipeline.lock")).toBe(lock);
    expect(p.read("pipeline.yaml")).toBe(BASE_CONFIG);

    // Without -S the committed setting comes back from the build cache, and the setting again is a restore too.
    expect((await p.build()).report).toBe("restored");
    expect(p.read("models/report/report.txt")).toMatch(/^# Weekly\n/);
    expect((await p.build("-S", "report.title=Monthly")).report).toBe("restored");
    expect(p.read("pipeline.lock")).toBe(lock);
    expect(p.calls().filter((c) => c === "report")).toHaveLength(2);
  });

  it("--save writes the setting into pipeline.yaml, comments kept, and the build into pipeline.lock", async () => {
    const p = new FakeProject();
    await p.build();
    const built = await p.build("-S", "report.title=Monthly", "-S", "lower.mode=upper", "--save");
    expect(built.lower).toBe("ran");
    // yaml's Document API keeps every comment; only the gap before an edited value's comment becomes one space.
    expect(p.read("pipeline.yaml")).toBe(BASE_CONFIG.replace("title: Weekly   # the title", "title: Monthly # the title") + "lower:\n  mode: upper\n");
    const status = await p.run(["status", "--json"]);
    expect(status.json.nodes.map((n) => n.stale)).toEqual([false, false, false]);

    expect((await p.run(["status", "--save", "-S", "report.title=X"])).code).toBe(2);
    expect((await p.run(["report", "--save"])).stderr).toMatch(/--save writes the -S settings into the config/);
    const sweepSave = await p.run(["report", "--save", "-S", "report.title=A,B"]);
    expect(sweepSave.code).toBe(2);
    expect(sweepSave.stderr).toMatch(/--save with a sweep of 2 combinations/);
  });

  it("a sweep guards every combination before the first builds, builds the others, and exits 1", async () => {
    const p = new FakeProject();
    const r = await p.run(["report", "--json", "-S", "fail=guard,none", "-S", "report.title=A,B"]);
    expect(r.code).toBe(1);
    expect(r.json.sweep).toEqual([
      { setting: { fail: "guard", "report.title": "A" }, outcome: "refused", verdicts: [expect.objectContaining({ code: "report.refused" })] },
      { setting: { fail: "guard", "report.title": "B" }, outcome: "refused", verdicts: [expect.objectContaining({ code: "report.refused" })] },
      { setting: { fail: "none", "report.title": "A" }, outcome: "built" },
      { setting: { fail: "none", "report.title": "B" }, outcome: "built" },
    ]);
    // Both refusals are said before the first build starts.
    const err = r.stderr;
    expect(err.indexOf("[2/4] -S fail=guard -S report.title=B: refused")).toBeGreaterThan(-1);
    expect(err.indexOf("[2/4] -S fail=guard -S report.title=B: refused")).toBeLessThan(err.indexOf("[3/4] -S fail=none -S report.title=A: building report"));
    expect(err).toMatch(/2 of 4 combinations refused by their guards before anything ran \(fixes above\); the other 2 build now/);
    expect(p.calls()).toEqual(["source", "lower", "report", "report"]);
    expect(p.exists("pipeline.lock")).toBe(false);

    // The same sweep without the refused values: both restored, nothing runs.
    const again = await p.run(["report", "--json", "-S", "report.title=A,B"]);
    expect(again.code).toBe(0);
    expect(again.json.sweep).toEqual([
      { setting: { "report.title": "A" }, outcome: "built" },
      { setting: { "report.title": "B" }, outcome: "built" },
    ]);
    expect(again.stderr).toMatch(/\[1\/2\] -S report\.title=A: up to date or restored from the build cache/);
    expect(p.calls()).toHaveLength(4);
  });
});

describe("Ctrl-C in a sweep", () => {
  it("a sweep builds or checks: status, verify or push with several values is exit 2 before anything runs", async () => {
    const p = new FakeProject();
    for (const command of ["status", "verify", "push"]) {
      const r = await p.run([command, "-S", "report.title=A,B"]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`-S with several values is a sweep: it builds a node or checks it (\`check\`), not \`${command}\``);
    }
    expect((await p.run(["check", "-S", "report.title=A,B"])).code).toBe(0);
  });

  it("keeps the combinations that finished: the same sweep again restores them and builds only the rest", async () => {
    const p = new FakeProject(`${BASE_CONFIG}sleep:\n  node: lower\n  seconds: 3\n`);
    const args = ["report", "-S", "lower.mode=lower,upper"];
    const child = p.spawn(args);
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
    await waitFor(() => /\[2\/2\] -S lower\.mode=upper: building report/.test(stderr), 120_000);
    child.kill("SIGINT");
    expect(await exited).toBe(130);
    expect(stderr).toMatch(/sweep interrupted \(SIGINT\): 1 of 2 combinations finished, kept in the build cache/);
    // The second combination's lower may have started (and been interrupted in its sleep) before the signal came.
    const lowers = p.calls().filter((c) => c === "lower").length;
    expect([1, 2]).toContain(lowers);

    const again = await p.run(["report", "--json", ...args.slice(1)]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/\[1\/2\] -S lower\.mode=lower: up to date or restored from the build cache/);
    expect(again.stderr).toMatch(/\[2\/2\] -S lower\.mode=upper: will build lower, report/);
    expect(p.calls().filter((c) => c === "lower")).toHaveLength(lowers + 1);
    expect(p.read("models/report/report.txt")).toBe("# Weekly\nHELLO WORLD\n");
  });
});

describe.concurrent("a project's entries in the build cache", () => {
  it("pipeline.lock carries the project id, so a clone in another folder finds the same entries", async () => {
    const store = mkdtempSync(join(tmpdir(), "fake-store-"));
    const p = new FakeProject(`${BASE_CONFIG}cache:\n  dir: ${store}\n`);
    expect(await lockProject(p.path("pipeline.lock"))).toBe(legacyProjectId(p.dir)); // no lock yet: the folder's digest
    await p.build();
    // The lock's first write records that digest: entries this folder made before stay its own.
    expect(p.read("pipeline.lock")).toMatch(new RegExp(`^project: ${legacyProjectId(p.dir)}$`, "m"));

    const clone = mkdtempSync(join(tmpdir(), "fake-clone-"));
    for (const f of ["pipeline.yaml", "pipeline.lock", "input"]) cpSync(p.path(f), join(clone, f), { recursive: true });
    const ids = await projectIds(clone, join(clone, "pipeline.lock"));
    expect(ids.has(legacyProjectId(p.dir))).toBe(true);
    const entries = new ProjectEntries(store, ids);
    expect((await entries.of("report")).map((e) => e.manifest.fingerprint)).toEqual([expect.stringMatching(/^[0-9a-f]{64}$/)]);
    // Another project's folder, without that lock, is not this project.
    expect((await new ProjectEntries(store, await projectIds(clone, join(clone, "none.lock"))).of("report"))).toEqual([]);
  });

  it("follows recorded upstream digests from an entry to the entries built from it", async () => {
    const p = new FakeProject();
    const sweep = await p.run(["report", "-S", "lower.mode=lower,upper"]);
    expect(sweep.code, sweep.stderr).toBe(0);
    const entries = new ProjectEntries(p.path("cache", "store"), await projectIds(p.dir, p.path("pipeline.lock")));
    const lowers = await entries.of("lower");
    expect(lowers).toHaveLength(2);
    for (const { manifest } of lowers) {
      const reports = await entries.downstream(manifest, [], "report");
      expect(reports).toHaveLength(1);
      const text = await entries.text(reports[0]!.manifest, "report.txt");
      expect(text).toBe(`# Weekly\n${(manifest.params as { mode: string }).mode === "upper" ? "HELLO WORLD" : "hello world"}\n`);
      expect(reports[0]!.manifest.seconds).toBeGreaterThanOrEqual(0);
      expect(Date.parse(reports[0]!.manifest.built!)).toBeGreaterThan(Date.now() - 600_000);
    }
    const source = (await entries.of("source"))[0]!.manifest;
    expect(await entries.downstream(source, ["lower"], "report")).toHaveLength(2);
  });
});
