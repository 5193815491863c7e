// No tool starts after its node was cancelled or after another node failed, however late the cancel lands:
// between taking a job slot and the tool (planning, the late guard), while the node's own code prepares the
// tool, or before execLogged was even called. The engine runs in this process, so a test can hold a node at
// the exact point where the cancel or the failure lands.
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { closeHashWorkers } from "../../engine/digest.ts";
import { assertSuccess } from "../../engine/types.ts";
import { execLogged } from "../../engine/exec.ts";
import { Graph } from "../../engine/graph.ts";
import { Engine, type BuildObserver, type NodeReport } from "../../engine/engine.ts";
import type { NodeSpec, RunCtx, Verdict } from "../../engine/types.ts";

type Config = Record<string, never>;

/** A promise the test opens from outside; it opens by itself after 20 s, so a bug fails the test instead of hanging it. */
function gate(): { readonly wait: Promise<void>; open(): void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => {
    open = resolve;
    setTimeout(resolve, 20_000).unref();
  });
  return { wait, open };
}

/** Runs the node's tool: one line in calls.log per tool that actually started. */
async function tool(ctx: RunCtx<Config>, id: string, script = "true"): Promise<void> {
  assertSuccess(await ctx.exec("sh", ["-c", `echo ${id} >> "${join(ctx.root, "calls.log")}"; ${script}`]), `${id}'s tool`);
}

function node(id: string, spec: Partial<NodeSpec<Config>> = {}): NodeSpec<Config> {
  return {
    id,
    deps: [],
    description: id,
    inputs: () => ({ files: [], params: null, tools: {}, command: id }),
    guard: () => [],
    run: async (ctx) => {
      await tool(ctx, id);
      await writeFile(join(ctx.staging, "out.txt"), `${id}\n`);
    },
    ...spec,
  };
}

/** toolchain, then export's guard refuses what toolchain built, cancelling `train`, which export needs. */
function refusingExport(train: NodeSpec<Config>, toolchainRun?: NodeSpec<Config>["run"]): NodeSpec<Config>[] {
  const refused: Verdict = { level: "error", code: "export.refused", message: "export refuses what toolchain built", fix: "none" };
  return [
    node("toolchain", toolchainRun ? { run: toolchainRun } : {}),
    train,
    node("export", { deps: ["toolchain", "train"], guard: (ctx) => (ctx.isBuilt("toolchain") ? [refused] : []) }),
  ];
}

async function build(nodes: NodeSpec<Config>[], target: string, hooks: { note?: (line: string) => void; finished?: (r: NodeReport) => void } = {}) {
  const root = mkdtempSync(join(tmpdir(), "cancel-"));
  const engine = await Engine.open({ root, config: {} as Config, outputs: "models", graph: new Graph(nodes) });
  const notes: string[] = [];
  const observer: BuildObserver = {
    nodeRunning: () => undefined,
    progress: () => undefined,
    note: (id, line) => (notes.push(`[${id}] ${line}`), hooks.note?.(line)),
    nodeFinished: (r) => hooks.finished?.(r),
  };
  await engine.status(target);
  const reports = await engine.build(target, { force: new Set(), signal: new AbortController().signal, observer, jobs: 2 });
  const calls = existsSync(join(root, "calls.log")) ? readFileSync(join(root, "calls.log"), "utf8").split("\n").filter(Boolean) : [];
  return { root, notes, calls, status: Object.fromEntries(reports.map((r) => [r.id, r.status])), reason: (id: string) => reports.find((r) => r.id === id)!.reason };
}

afterAll(closeHashWorkers);

describe.concurrent("cancelled means cancelled", () => {
  it("execLogged given an already-aborted signal starts nothing and reports a kill", async () => {
    const dir = mkdtempSync(join(tmpdir(), "exec-aborted-"));
    for (const [signal, options] of [
      [AbortSignal.abort("cancelled"), {}],
      [new AbortController().signal, { signal: AbortSignal.abort("watchdog") }],
    ] as const) {
      const marker = join(dir, "started");
      const result = await execLogged("sh", ["-c", `touch "${marker}"`], join(dir, "tool.log"), signal, options);
      expect(existsSync(marker)).toBe(false);
      expect(result).toMatchObject({ exitCode: null, signal: "SIGTERM", tail: [] });
      expect(() => assertSuccess(result, "the tool")).toThrow(/the tool was killed by SIGTERM/);
    }
    expect(readFileSync(join(dir, "tool.log"), "utf8")).toMatch(/# not started: cancelled before it started/);
  });

  it("a node cancelled while it waits for its late guard never starts its tool", async () => {
    const open = gate();
    let runCalled = false;
    const plain = node("train");
    const train = node("train", { weight: "heavy", guard: async () => (await open.wait, []), run: (ctx) => ((runCalled = true), plain.run(ctx)) });
    const r = await build(refusingExport(train), "export", { note: (line) => /cancelling train/.test(line) && open.open() });
    expect(runCalled).toBe(false); // not even its own code: the check is before run(), not only in execLogged
    expect(r.notes.join("\n")).toMatch(/export's guard refused once toolchain was built: no further node starts; cancelling train/);
    expect(r.status).toEqual({ toolchain: "ran", train: "cancelled", export: "failed" });
    expect(r.reason("train")).toMatch(/export's guard refused once toolchain was built/);
    expect(r.calls).toEqual(["toolchain"]);
    expect(existsSync(join(r.root, "models", "train"))).toBe(false);
  });

  it.each([
    ["its tool", true],
    ["code of its own", false],
  ])("a node cancelled while its run() prepares %s neither starts a tool nor publishes", async (_what, execs) => {
    const open = gate();
    const trainRunning = gate();
    const train = node("train", {
      run: async (ctx) => {
        trainRunning.open();
        await open.wait; // preparing: the cancel lands here
        if (execs) await tool(ctx, "train");
        await writeFile(join(ctx.staging, "out.txt"), "train\n");
      },
    });
    const toolchainRun: NodeSpec<Config>["run"] = async (ctx) => {
      await trainRunning.wait;
      await tool(ctx, "toolchain");
      await writeFile(join(ctx.staging, "out.txt"), "toolchain\n");
    };
    const r = await build(refusingExport(train, toolchainRun), "export", { note: (line) => /cancelling train/.test(line) && open.open() });
    expect(r.status).toEqual({ toolchain: "ran", train: "cancelled", export: "failed" });
    expect(r.calls).toEqual(["toolchain"]);
    expect(existsSync(join(r.root, "models", "train"))).toBe(false);
    expect(readFileSync(join(r.root, "pipeline.lock"), "utf8")).not.toMatch(/^ {2}train:/m);
  });

  it("a node past its slot when another fails never starts its tool", async () => {
    const open = gate();
    const broken = node("broken", { run: (ctx) => tool(ctx, "broken", "exit 3") });
    const waiting = node("waiting", { guard: async () => (await open.wait, []) });
    const all = node("all", { deps: ["broken", "waiting"] });
    const r = await build([broken, waiting, all], "all", { finished: (report) => report.id === "broken" && open.open() });
    expect(r.status).toEqual({ broken: "failed", waiting: "skipped", all: "skipped" });
    expect(r.reason("waiting")).toBe("not started: broken failed");
    expect(r.calls).toEqual(["broken"]);
  });
});
