// A sweep: `-S a=1,2 -S b=x,y` builds every combination, one build after the other. Every combination's
// guards run before the first one builds, so a setting that cannot run (will not fit in memory) is refused up
// front with its fixes; the others still build. Each build keeps its outputs in the build cache, so Ctrl-C keeps
// what finished and the same sweep again restores those and builds only the rest.
import type { CliApp, Build } from "../cli.ts";
import { Engine } from "../engine.ts";
import type { Json, NodeVerdict } from "../types.ts";
import { formatVerdicts } from "../verdicts.ts";
import { settingArgs, type Setting } from "./overrides.ts";

export interface SweepOptions {
  readonly configPath: string;
  readonly extra: Readonly<Record<string, string | undefined>>;
  readonly settings: readonly Setting[];
  /** The node to build, or `check` (then `rest` may name the node). */
  readonly command: string;
  readonly rest: readonly string[];
  readonly json: boolean;
  readonly remote: boolean;
  readonly force: readonly string[];
  readonly jobs: number;
}

type Outcome = "built" | "failed" | "refused" | "ok";

export async function sweep<C>(app: CliApp<C>, o: SweepOptions, build: Build): Promise<number> {
  const n = o.settings.length;
  const label = (i: number) => `[${i + 1}/${n}] ${settingArgs(o.settings[i]!).join(" ")}`;
  // Every combination loaded first: a bad value in any is exit 2 before anything runs.
  const projects = [];
  for (const setting of o.settings) projects.push(await app.loadProject(o.configPath, o.extra, setting));
  const graph = projects[0]!.graph;
  const named = o.command === "check" ? o.rest[0] : o.command;
  if (named !== undefined) graph.node(named);
  const target = named ?? graph.sinks().at(-1)!;
  const force = new Set(o.force);

  // Guards of every combination, before the first builds: only the nodes it would run (not restore).
  const refused: NodeVerdict[][] = [];
  for (const [i, project] of projects.entries()) {
    const engine = await Engine.open(project, { remote: o.remote, writeLock: false });
    try {
      const states = await engine.status(target);
      const runs = new Set(states.filter((s) => (s.stale || force.has(s.id)) && !(s.restore && !force.has(s.id))).map((s) => s.id));
      const verdicts = runs.size > 0 || o.command === "check" ? await engine.guards(target, o.command === "check" ? undefined : runs) : [];
      const errors = verdicts.filter((v) => v.level === "error");
      refused.push(errors);
      const what =
        errors.length > 0 ? "refused:" : o.command === "check" ? "passes its guards" : runs.size === 0 ? "up to date or restored from the build cache" : `will build ${[...runs].join(", ")}`;
      process.stderr.write(`sweep ${label(i)}: ${what}\n`);
      if (errors.length > 0) process.stderr.write(formatVerdicts(errors) + "\n");
    } finally {
      await engine.saveCaches();
    }
  }
  const refusedCount = refused.filter((e) => e.length > 0).length;
  const outcomes: Outcome[] = refused.map((e) => (e.length > 0 ? "refused" : "ok"));
  if (o.command !== "check") {
    if (refusedCount > 0) {
      process.stderr.write(
        `sweep: ${refusedCount} of ${n} combinations refused by their guards before anything ran (fixes above); ` +
          (refusedCount < n ? `the other ${n - refusedCount} build now, one after the other; the sweep exits 1.\n` : "nothing to build.\n"),
      );
    }
    let building = false;
    // Runs before the build's own handler (registered later), which then exits; between builds, this one exits.
    const onSignal = (signal: NodeJS.Signals) => {
      const finished = outcomes.filter((x) => x === "built").length;
      process.stderr.write(`\nsweep interrupted (${signal}): ${finished} of ${n} combinations finished, kept in the build cache; the same command again restores them and builds the rest.\n`);
      if (!building) process.exit(130);
    };
    for (const s of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(s, onSignal);
    try {
      for (const [i, project] of projects.entries()) {
        if (outcomes[i] === "refused") continue;
        process.stderr.write(`sweep ${label(i)}: building ${target}\n`);
        // A fresh engine: the combination before this one changed what models/ holds.
        const engine = await Engine.open(project, { remote: o.remote, writeLock: false });
        building = true;
        try {
          const code = await build(app, engine, target, { force, json: false, frozen: false, dryRun: false, jobs: o.jobs });
          outcomes[i] = code === 0 ? "built" : "failed";
        } finally {
          building = false;
          await engine.saveCaches();
        }
      }
    } finally {
      for (const s of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.off(s, onSignal);
    }
    process.stderr.write(`sweep: ${outcomes.filter((x) => x === "built").length} of ${n} built; pipeline.lock is unchanged (\`runs\` compares them).\n`);
  }
  const ok = outcomes.every((x) => x === "built" || x === "ok");
  if (o.json) {
    const combos = o.settings.map((s, i) => ({
      setting: Object.fromEntries(s.map((x) => [x.path.join("."), x.value])) as Record<string, Json>,
      outcome: outcomes[i]!,
      ...(refused[i]!.length > 0 ? { verdicts: refused[i] as unknown as Json } : {}),
    }));
    process.stdout.write(JSON.stringify({ target, ok, sweep: combos }) + "\n");
  }
  return ok ? 0 : 1;
}
