// Independent nodes run at once (-j), a dependent node waits for all its dependencies, heavy nodes never
// overlap, a failure stops new nodes but keeps a finished sibling's work, and Ctrl-C leaves no tool behind.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import YAML from "yaml";
import { alive, collect, REPO, requireJson, spawnCli, waitFor } from "../helpers/cli.ts";
import type { TimeEvent } from "../fixtures/parallel-pipeline.ts";
import { running } from "../../engine/durable.ts";

const PARALLEL = join(REPO, "test/fixtures/parallel-pipeline.ts");

interface Report {
  id: string;
  status: string;
  reason: string;
  startedMs: number;
  ms: number;
}

class Project {
  readonly dir = mkdtempSync(join(tmpdir(), "parallel-pipeline-"));

  constructor(
    nodes: Record<string, { deps?: string[]; seconds?: number; weight?: "heavy" | "light"; fail?: boolean; refuseOnceBuilt?: string; refuseIf?: string; brokenIf?: string; input?: string }>,
    options: { cache?: boolean } = {},
  ) {
    writeFileSync(join(this.dir, "pipeline.yaml"), YAML.stringify({ nodes, ...options }));
  }

  spawn(args: string[]) {
    return spawnCli(PARALLEL, args, { cwd: this.dir, env: { ...process.env, CI: "true" } });
  }

  async build(target: string, ...args: string[]) {
    const run = await collect(this.spawn([target, "--json", ...args]));
    const json = requireJson(run) as { ok: boolean; nodes: Report[]; interrupted?: boolean };
    return { ...run, doc: json, status: Object.fromEntries(json.nodes.map((n) => [n.id, n.status])) };
  }

  events(): TimeEvent[] {
    const path = join(this.dir, "times.log");
    return existsSync(path) ? readFileSync(path, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as TimeEvent) : [];
  }

  /** When each node's command started and ended. */
  intervals(): Record<string, { start: number; end: number }> {
    const out: Record<string, { start: number; end: number }> = {};
    for (const e of this.events()) {
      if (e.event === "guard") continue;
      out[e.id] = { ...out[e.id]!, [e.event]: e.t };
    }
    return out;
  }

  /** [pid of the tool's shell, its process group] for every node that started its command. */
  groups(): [number, number][] {
    const path = join(this.dir, "groups.log");
    if (!existsSync(path)) return [];
    return readFileSync(path, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => l.trim().split(/\s+/).map(Number) as [number, number]);
  }
}

const overlap = (x: { start: number; end: number }, y: { start: number; end: number }) => x.start < y.end && y.start < x.end;

describe.concurrent("running independent nodes at once", () => {
  it("two independent slow nodes overlap; the node needing both starts after both, guarded after both were built", async () => {
    const p = new Project({ a: { seconds: 2 }, b: { seconds: 2 }, c: { deps: ["a", "b"] } });
    const r = await p.build("c", "-j", "2");
    expect(r.code, r.stderr).toBe(0);
    expect(r.status).toEqual({ a: "ran", b: "ran", c: "ran" });
    const t = p.intervals();
    expect(overlap(t.a!, t.b!)).toBe(true);
    expect(t.c!.start).toBeGreaterThanOrEqual(Math.max(t.a!.end, t.b!.end));
    // The guard before c ran again once both were rebuilt, and before c started.
    const late = p.events().filter((e) => e.id === "c" && e.event === "guard").at(-1)!;
    expect(late.built).toEqual(["a", "b"]);
    expect(late.t).toBeGreaterThanOrEqual(Math.max(t.a!.end, t.b!.end));
    expect(late.t).toBeLessThanOrEqual(t.c!.start);
    // The timeline the summary gives agrees: a and b both started before either finished.
    const [a, b] = ["a", "b"].map((id) => r.doc.nodes.find((n) => n.id === id)!);
    expect(a!.startedMs).toBeLessThan(b!.startedMs + b!.ms);
    expect(b!.startedMs).toBeLessThan(a!.startedMs + a!.ms);
    // Every line a running node printed names it (the plain renderer).
    expect(r.stderr).toMatch(/^\[a\] rebuilding: never built$/m);
    expect(r.stderr).toMatch(/^\[b\] rebuilding: never built$/m);
  });

  it("-j 1 runs one node at a time in build order, as before", async () => {
    // Build order: a, c, b, t (c needs a; t needs c and b). Ready first are a and b; c becomes ready after a.
    const p = new Project({ a: { seconds: 0.3 }, c: { deps: ["a"], seconds: 0.3 }, b: { seconds: 0.3 }, t: { deps: ["c", "b"] } });
    const r = await p.build("t", "-j", "1");
    expect(r.code, r.stderr).toBe(0);
    expect(r.doc.nodes.map((n) => n.id)).toEqual(["a", "c", "b", "t"]);
    const starts = p.events().filter((e) => e.event === "start");
    expect(starts.map((e) => e.id)).toEqual(["a", "c", "b", "t"]);
    const t = p.intervals();
    for (const [x, y] of [["a", "c"], ["c", "b"], ["b", "t"]] as const) expect(t[y]!.start).toBeGreaterThanOrEqual(t[x]!.end);
  });

  it("two heavy nodes never overlap; one waiting for the other lends its job slot to a light node", async () => {
    const p = new Project({ train: { seconds: 2, weight: "heavy" }, compile: { seconds: 2, weight: "heavy" }, pip: { seconds: 1 }, all: { deps: ["train", "compile", "pip"] } });
    // Two jobs: train and compile take them; compile waits for the heavy slot, and pip runs in its place.
    const r = await p.build("all", "-j", "2");
    expect(r.code, r.stderr).toBe(0);
    const t = p.intervals();
    expect(overlap(t.train!, t.compile!)).toBe(false);
    expect(t.pip!.start).toBeLessThan(Math.min(t.train!.end, t.compile!.end));
    // Its timeline starts when it got the heavy slot, not when it began waiting for it.
    const [train, compile] = ["train", "compile"].map((id) => r.doc.nodes.find((n) => n.id === id)!);
    const [first, second] = train!.startedMs < compile!.startedMs ? [train!, compile!] : [compile!, train!];
    expect(second.startedMs).toBeGreaterThanOrEqual(first.startedMs + first.ms - 100);
  });

  it("a failure stops new nodes, lets the running sibling finish, and keeps its output", async () => {
    const p = new Project({
      broken: { seconds: 0.2, fail: true },
      slow: { seconds: 3 },
      afterBroken: { deps: ["broken"] },
      afterSlow: { deps: ["slow"] },
      all: { deps: ["afterBroken", "afterSlow"] },
    });
    const r = await p.build("all", "-j", "2");
    expect(r.code).toBe(1);
    expect(r.doc.ok).toBe(false);
    expect(r.status).toEqual({ broken: "failed", slow: "ran", afterBroken: "skipped", afterSlow: "skipped", all: "skipped" });
    expect(r.doc.nodes.find((n) => n.id === "broken")!.reason).toMatch(/broken's command exited with code 3/);
    expect(r.doc.nodes.find((n) => n.id === "afterSlow")!.reason).toBe("not started: broken failed");
    expect(r.stderr).toMatch(/\[broken\] no further node starts; slow still running: let finish, their outputs are kept/);
    // Nothing downstream of the failure (nor anything else) started after it.
    expect(p.events().filter((e) => e.event === "start").map((e) => e.id).sort()).toEqual(["broken", "slow"]);
    // The sibling's finished work is published and recorded.
    expect(readFileSync(join(p.dir, "models/slow/out.txt"), "utf8")).toBe("slow\n");
    const lock = YAML.parse(readFileSync(join(p.dir, "pipeline.lock"), "utf8")) as { nodes: Record<string, unknown> };
    expect(Object.keys(lock.nodes)).toEqual(["slow"]);
    // The next build starts where this one stopped: slow is fresh.
    const status = await collect(p.spawn(["status", "all", "--json"]));
    const nodes = (requireJson(status) as { nodes: { id: string; stale: boolean }[] }).nodes;
    expect(nodes.find((n) => n.id === "slow")!.stale).toBe(false);
  });

  it("a guard that refuses once a sibling is built cancels the running work the refused node needs", async () => {
    // As a hub model's download finishes before the converter's environment: training starts, and the
    // converter's verdict on the model, once it exists, refuses the export.
    const p = new Project({
      model: { seconds: 0.2 },
      toolchain: { seconds: 2 },
      train: { deps: ["model"], seconds: 60, weight: "heavy" },
      export: { deps: ["toolchain", "train"], refuseOnceBuilt: "toolchain" },
    });
    const r = await p.build("export", "-j", "2");
    expect(r.code).toBe(1);
    expect(r.status).toEqual({ model: "ran", toolchain: "ran", train: "cancelled", export: "failed" });
    expect(r.doc.nodes.find((n) => n.id === "train")!.reason).toMatch(/export's guard refused once toolchain was built/);
    expect(r.doc.nodes.find((n) => n.id === "export")!.reason).toMatch(/export refuses what toolchain sees/);
    expect(r.stderr).toMatch(/\[toolchain\] export's guard refused once toolchain was built: no further node starts; cancelling train/);
    expect(r.ms).toBeLessThan(40_000); // not the 60 s of training
    await waitFor(() => p.groups().every(([pid, pgid]) => !alive(pid) && !running(-pgid)), 10_000);
    expect(Object.keys((YAML.parse(readFileSync(join(p.dir, "pipeline.lock"), "utf8")) as { nodes: object }).nodes).sort()).toEqual(["model", "toolchain"]);
  });

  it("a rebuilt toolchain with the lock's bytes does not have a restored training's guard refuse it", async () => {
    // A teammate on a small laptop with CI's build in the store and no outputs: the toolchain's environment
    // is not on this machine, so it reruns (byte-identical); training and export are restored, never run.
    const p = new Project(
      { toolchain: { brokenIf: "new-machine" }, train: { deps: ["toolchain"], weight: "heavy", refuseIf: "small-laptop" }, export: { deps: ["train"] } },
      { cache: true },
    );
    expect((await p.build("export", "-j", "2")).code).toBe(0);
    const lock = readFileSync(join(p.dir, "pipeline.lock"), "utf8");
    rmSync(join(p.dir, "models"), { recursive: true });
    for (const marker of ["new-machine", "small-laptop"]) writeFileSync(join(p.dir, marker), "");
    const since = Date.now();
    const r = await p.build("export", "-j", "2");
    expect(r.code, r.stderr).toBe(0);
    expect(r.status).toEqual({ toolchain: "ran", train: "restored", export: "restored" });
    expect(p.events().filter((e) => e.id === "train" && e.t >= since)).toEqual([]); // neither guarded nor run
    expect(readFileSync(join(p.dir, "pipeline.lock"), "utf8")).toBe(lock);
  });

  it("a toolchain rerun on a new machine with the lock's bytes does not re-guard what it cuts off or restores", async () => {
    // Its fingerprint names this machine's interpreter, so no cache entry has it: everything after it is
    // planned to rerun, and turns out cut off (train, whose output is here) or restored (export, whose is not).
    const p = new Project(
      { toolchain: { input: "interpreter" }, train: { deps: ["toolchain"], weight: "heavy", refuseIf: "small-laptop" }, export: { deps: ["train"] } },
      { cache: true },
    );
    writeFileSync(join(p.dir, "interpreter"), "CI's python");
    expect((await p.build("export", "-j", "2")).code).toBe(0);
    writeFileSync(join(p.dir, "interpreter"), "the laptop's python");
    writeFileSync(join(p.dir, "small-laptop"), "");
    rmSync(join(p.dir, "models", "export"));
    const r = await p.build("export", "-j", "2");
    expect(r.code, r.stderr).toBe(0);
    expect(r.status).toEqual({ toolchain: "ran", train: "cutoff", export: "restored" });
  });

  it("a forced rerun with identical output does not re-guard the nodes it cuts off", async () => {
    const p = new Project({ toolchain: {}, train: { deps: ["toolchain"], refuseIf: "small-laptop" } });
    expect((await p.build("train")).code).toBe(0);
    writeFileSync(join(p.dir, "small-laptop"), "");
    const r = await p.build("train", "--force", "toolchain");
    expect(r.code, r.stderr).toBe(0);
    expect(r.status).toEqual({ toolchain: "ran", train: "cutoff" });
  });

  it("concurrent completions all land in pipeline.lock", async () => {
    const nodes = Object.fromEntries(["n1", "n2", "n3", "n4", "n5", "n6"].map((id) => [id, { seconds: 0.5 }]));
    const p = new Project({ ...nodes, all: { deps: Object.keys(nodes) } });
    const r = await p.build("all", "-j", "6");
    expect(r.code, r.stderr).toBe(0);
    const lock = YAML.parse(readFileSync(join(p.dir, "pipeline.lock"), "utf8")) as { nodes: Record<string, unknown> };
    expect(Object.keys(lock.nodes).sort()).toEqual(["all", "n1", "n2", "n3", "n4", "n5", "n6"]);
    expect((await p.build("all", "-j", "6")).status).toEqual(Object.fromEntries(Object.keys(lock.nodes).map((id) => [id, "fresh"])));
  });

  it.each(["SIGINT", "SIGTERM", "SIGHUP"] as const)("%s during two running nodes leaves no process behind", async (signal) => {
    const p = new Project({ a: { seconds: 60 }, b: { seconds: 60 }, c: { deps: ["a", "b"] } });
    const child = p.spawn(["c", "--json", "-j", "2"]);
    const done = collect(child);
    await waitFor(() => p.groups().length === 2, 30_000);
    const groups = p.groups();
    expect(groups.every(([pid]) => alive(pid))).toBe(true);
    child.kill(signal);
    const r = await done;
    expect(r.code).toBe(130);
    const doc = requireJson(r) as { interrupted: boolean; nodes: Report[] };
    expect(doc.interrupted).toBe(true);
    expect(Object.fromEntries(doc.nodes.map((n) => [n.id, n.status]))).toEqual({ a: "cancelled", b: "cancelled", c: "skipped" });
    expect(r.stderr).toMatch(new RegExp(`interrupted \\(${signal}\\): a, b cancelled`));
    await waitFor(() => groups.every(([pid, pgid]) => !alive(pid) && !running(-pgid)), 10_000);
    // No partial output left behind.
    expect(readdirSync(join(p.dir, "models")).filter((n) => n.includes("staging"))).toEqual([]);
    expect(existsSync(join(p.dir, "pipeline.lock"))).toBe(false);
  });
});
