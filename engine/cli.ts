// The command line, for any graph: build, status, check, graph, verify. Exit codes: 0 ok, 1 build or
// guard failure, 2 bad usage or config, 130 interrupted.
import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";
import { dirname, join, resolve } from "node:path";
import type { BaseCtx, Json } from "./types.ts";
import { UserError } from "./types.ts";
import { Engine, type NodeReport, type NodeState, type Project } from "./engine.ts";
import type { RunLock } from "./runlock.ts";
import { closeHashWorkers, hashStats } from "./digest.ts";
import { createObserver } from "./reporter.ts";
import type { Setting } from "./experiments/overrides.ts";
import type { RecordedProject } from "./replay/save.ts";

export interface CliApp<C> {
  readonly name: string;
  readonly defaultConfig: string;
  /** Extra string options the app's config loader understands (e.g. check --memory 16GB). */
  readonly extraOptions?: readonly string[];
  /** The usage text; a function, so that the app's node list is loaded only when it is shown. */
  usage(): string | Promise<string>;
  /**
   * `setting`: the `-S key=value` overrides of this build (empty without -S), applied and validated by the app.
   * `scope`: the nodes this command reads; the graph may hold just them and what they depend on (a warm no-op
   * then loads only its target's modules). Undefined: every node.
   */
  loadProject(configPath: string, extra: Readonly<Record<string, string | undefined>>, setting: Setting, scope?: readonly string[]): Promise<Project<C>>;
  /** App-specific commands that need no graph (e.g. writing a JSON schema, the run report); what they return goes to stderr. */
  readonly commands?: Readonly<Record<string, (root: string, configPath: string, args: CommandArgs) => Promise<string>>>;
  /** Adds app-specific sections to `check` (e.g. the memory breakdown). */
  checkReport?(ctx: BaseCtx<C>, target: string): Promise<{ json: Record<string, Json>; text: string } | undefined>;
}

/** What an app command is given besides its project: the words after it, --json, --remote, and the app's extra options. */
export interface CommandArgs {
  readonly rest: readonly string[];
  readonly json: boolean;
  /** --remote: the command reads the remote cache too (a build asks it anyway, when it misses locally). */
  readonly remote: boolean;
  readonly options: Readonly<Record<string, string | undefined>>;
}

const SUBCOMMANDS = new Set(["status", "check", "graph", "verify", "cache", "gc", "push", "pull"]);

/** What the entry point (main.ts) learns of a run. */
export interface CliHooks {
  /** A build found every node up to date: its project's folder, and the folders in it that are the build's own. */
  upToDate?(project: RecordedProject): void;
}

export async function runCli<C>(app: CliApp<C>, argv: readonly string[], hooks: CliHooks = {}): Promise<number> {
  let json = false;
  try {
    const extra = Object.fromEntries((app.extraOptions ?? []).map((o) => [o, { type: "string" as const }]));
    const { values, positionals } = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        config: { type: "string" },
        force: { type: "string", multiple: true },
        frozen: { type: "boolean" },
        "dry-run": { type: "boolean" },
        json: { type: "boolean" },
        "no-remote": { type: "boolean" },
        remote: { type: "boolean" },
        jobs: { type: "string", short: "j" },
        set: { type: "string", short: "S", multiple: true },
        save: { type: "boolean" },
        help: { type: "boolean", short: "h" },
        ...extra,
      },
    });
    json = values.json === true;
    if (values.help || positionals.length === 0) {
      process.stderr.write(await app.usage());
      return positionals.length === 0 && !values.help ? 2 : 0;
    }
    const [command, ...rest] = positionals as [string, ...string[]];
    const configPath = resolve(String(values.config ?? app.defaultConfig));
    const all = values as Record<string, unknown>;
    const extraValues = Object.fromEntries((app.extraOptions ?? []).map((o) => [o, all[o] as string | undefined]));
    const appCommand = app.commands?.[command];
    if (appCommand) {
      const said = await appCommand(dirname(configPath), configPath, { rest, json, remote: values.remote === true, options: extraValues });
      if (said) process.stderr.write(said + "\n");
      return 0;
    }
    if (values.remote === true) throw new UserError(`--remote goes with a command that lists what the remote holds (runs --remote); ${command} uses cache.remote already.`, 2);
    const sets = (values.set as string[] | undefined) ?? [];
    if (values.save === true && sets.length === 0) throw new UserError("--save writes the -S settings into the config: give them (-S key=value --save).", 2);
    // -S is loaded only when given: a warm no-op loads nothing of it.
    const settings = sets.length > 0 ? await (await import("./experiments/overrides.ts")).settingsOf(sets, values.save === true) : [[]];
    if (settings.length > 1) {
      if (SUBCOMMANDS.has(command) && command !== "check") throw new UserError(`-S with several values is a sweep: it builds a node or checks it (\`check\`), not \`${command}\`.`, 2);
      const { sweep } = await import("./experiments/sweep.ts");
      return await sweep(app, { configPath, extra: extraValues, settings, command, rest, json, remote: values["no-remote"] !== true, force: (values.force as string[] | undefined) ?? [], jobs: parseJobs(values.jobs) }, build);
    }
    if (values.save === true && SUBCOMMANDS.has(command)) throw new UserError(`--save goes with a build (npx tsx ${app.name} <node> -S key=value --save), not with ${command}.`, 2);
    const setting = settings[0]!;
    const isSub = SUBCOMMANDS.has(command);
    const targets = isSub ? rest : [command, ...rest];
    if (targets.length > 1) throw new UserError(`Give one node at a time (got ${targets.join(", ")}).`, 2);
    const force = new Set((values.force as string[] | undefined) ?? []);
    // A named node's closure is all a build, status, check or cache command reads; graph and verify read every node.
    const whole = targets.length === 0 || command === "graph" || command === "verify";
    const project = await app.loadProject(configPath, extraValues, setting, whole ? undefined : [...targets, ...force]);
    const graph = project.graph;
    for (const t of targets) graph.node(t); // unknown node: exit 2
    const target = targets[0] ?? graph.sinks().at(-1)!;
    for (const f of force) graph.node(f);

    if (command === "graph") {
      process.stdout.write(json ? JSON.stringify({ mermaid: graph.mermaid() }) + "\n" : graph.mermaid() + "\n");
      return 0;
    }
    // A -S build leaves pipeline.lock as committed; with --save the lock and the config are written once it succeeded.
    const engine = await Engine.open(project, { remote: values["no-remote"] !== true, writeLock: setting.length === 0 });
    try {
      switch (command) {
        case "status":
          return printStates(target, await engine.status(target), json, "stale");
        case "verify":
          return printStates(target, await engine.verify(), json, "changed");
        case "check":
          return await check(app, engine, target, json);
        case "cache":
        case "gc":
        case "push":
        case "pull":
          return await (await import("./caching/commands.ts")).cacheCommand(
            command,
            { lock: engine.lockNodes, graph: engine.project.graph, cache: engine.buildCache() },
            targets[0],
            json,
          );
        default: {
          const code = await build(
            app,
            engine,
            target,
            { force, json, frozen: values.frozen === true, dryRun: values["dry-run"] === true, jobs: parseJobs(values.jobs) },
            hooks,
          );
          if (setting.length > 0 && values["dry-run"] !== true && values.frozen !== true) {
            const { afterSettingBuild } = await import("./experiments/save.ts");
            await afterSettingBuild(engine, configPath, setting, { ok: code === 0, save: values.save === true });
          }
          return code;
        }
      }
    } finally {
      await engine.saveCaches();
    }
  } catch (e) {
    const code = e instanceof UserError ? e.exitCode : (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS") ? 2 : 1;
    const message = e instanceof UserError || code === 2 ? (e as Error).message : ((e as Error).stack ?? String(e));
    if (json) process.stdout.write(JSON.stringify({ ok: false, error: message }) + "\n");
    process.stderr.write(`error: ${message}\n`);
    return code;
  } finally {
    await closeHashWorkers();
  }
}

/**
 * The default for -j: half the cores, at least 2, at most 4. The heavy slot already keeps the CPU- and
 * memory-hungry nodes apart, so what runs beside one of them is light work that mostly waits on the network
 * or the disk (a download, a pip install, a git clone): even a 2-core machine gains from a second job. More
 * than 4 would only interleave more logs, a pipeline graph is rarely wider than that.
 */
export function defaultJobs(cores = availableParallelism()): number {
  return Math.max(2, Math.min(4, Math.floor(cores / 2)));
}

/** -j N / --jobs N: how many nodes run at once; 1 runs them one after the other, in build order. */
function parseJobs(value: string | undefined): number {
  if (value === undefined) return defaultJobs();
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`--jobs ${value}: give a whole number of nodes to run at once, 1 or more (e.g. -j 2).`, 2);
  return n;
}

function printStates(target: string, states: NodeState[], json: boolean, word: string): number {
  const ok = states.every((s) => !s.stale);
  if (json) {
    const nodes = states.map((s) => ({ id: s.id, [word]: s.stale, ...(s.restore ? { restore: true } : {}), reasons: s.reasons }));
    process.stdout.write(JSON.stringify({ target, ok, nodes }) + "\n");
  } else {
    for (const s of states) {
      const what = s.restore ? ` ${word}: would be restored from the build cache` : s.stale ? ` ${word}` : " up to date";
      process.stderr.write(`${s.stale ? "✗" : "✓"} ${s.id}${what}\n`);
      for (const r of s.reasons) process.stderr.write(`    ${r}\n`);
    }
  }
  return word === "changed" && !ok ? 1 : 0;
}

async function check<C>(app: CliApp<C>, engine: Engine<C>, target: string, json: boolean): Promise<number> {
  const verdicts = await engine.guards(target);
  const extra = await app.checkReport?.(engine.ctx(), target);
  const ok = !verdicts.some((v) => v.level === "error");
  if (json) {
    process.stdout.write(JSON.stringify({ target, ok, verdicts, ...extra?.json }) + "\n");
  } else {
    const { formatVerdicts } = await import("./verdicts.ts");
    process.stderr.write(formatVerdicts(verdicts) + "\n");
    if (extra) process.stderr.write(extra.text + "\n");
  }
  return ok ? 0 : 1;
}

/** Which nodes a build would run (stale or forced), and which of those it would restore from the build cache instead. */
function plan(states: readonly NodeState[], force: ReadonlySet<string>): { willRun: Set<string>; restores: Set<string> } {
  return {
    willRun: new Set(states.filter((s) => s.stale || force.has(s.id)).map((s) => s.id)),
    restores: new Set(states.filter((s) => s.restore && !force.has(s.id)).map((s) => s.id)),
  };
}

/** --dry-run and --frozen: what a build would do, and for --frozen a failure when it would rebuild anything. */
async function planOnly<C>(
  engine: Engine<C>,
  target: string,
  options: { force: ReadonlySet<string>; json: boolean; frozen: boolean; dryRun: boolean },
  emit: (ok: boolean, nodes: readonly NodeReport[], extra?: Record<string, Json>) => void,
): Promise<number> {
  const states = await engine.status(target);
  const { willRun, restores } = plan(states, options.force);
  const nodes: (NodeReport & { restore?: boolean })[] = states.map((s) => ({
    id: s.id,
    status: willRun.has(s.id) ? "skipped" : "fresh",
    reason: restores.has(s.id)
      ? `would be restored from the build cache (${s.reasons.join("; ")})`
      : s.stale ? s.reasons.join("; ") : options.force.has(s.id) ? "forced with --force" : "up to date",
    ...(restores.has(s.id) ? { restore: true } : {}),
    startedMs: 0,
    ms: 0,
  }));
  if (!options.json) printStates(target, states, false, "stale");
  if (options.frozen && willRun.size > 0) {
    process.stderr.write(`--frozen: ${[...willRun].join(", ")} would rebuild. Run the build and commit pipeline.lock.\n`);
    emit(false, nodes);
    return 1;
  }
  emit(true, nodes, options.dryRun ? { dryRun: true } : {});
  return 0;
}

/** A build of nothing: every node up to date, reported as a build that found them so. */
async function upToDate<C>(
  engine: Engine<C>,
  target: string,
  options: { json: boolean; jobs: number },
  emit: (ok: boolean, nodes: readonly NodeReport[], extra?: Record<string, Json>) => void,
): Promise<number> {
  const observer = await createObserver([], false);
  const nodes = engine.project.graph.order([target]).map((id): NodeReport => ({ id, status: "fresh", reason: "up to date", startedMs: 0, ms: 0 }));
  for (const node of nodes) observer.nodeFinished(node);
  await observer.done();
  emit(true, nodes, { hashed: { ...hashStats }, jobs: options.jobs });
  return 0;
}

export type Build = typeof build;

/** One build of `target`, its guards first; the exit code. */
async function build<C>(
  app: CliApp<C>,
  engine: Engine<C>,
  target: string,
  options: { force: ReadonlySet<string>; json: boolean; frozen: boolean; dryRun: boolean; jobs: number },
  hooks: CliHooks = {},
): Promise<number> {
  const emit = (ok: boolean, nodes: readonly NodeReport[], extra: Record<string, Json> = {}) => {
    if (options.json) process.stdout.write(JSON.stringify({ target, ok, nodes, ...extra }) + "\n");
  };
  // They change nothing, like `status`: a build running meanwhile must not stop them, so they take no run lock.
  if (options.frozen || options.dryRun) return planOnly(engine, target, options, emit);
  // Nor does a build with nothing to run and nothing to sweep: it answers without the run lock (two syncs to
  // disk), and loads neither the lock's module nor the scheduler's.
  const ahead = plan(await engine.status(target, { restores: false }), options.force);
  if (ahead.willRun.size === 0 && !(await engine.hasDebris())) {
    const { root, outputs } = engine.project;
    hooks.upToDate?.({ root, own: [engine.cacheDir, join(root, outputs)] });
    return upToDate(engine, target, options, emit);
  }
  const { RunLock } = await import("./runlock.ts");
  let lock: RunLock;
  try {
    lock = RunLock.acquire(join(engine.cacheDir, "build.lock"), `${app.name} ${target}`);
  } catch (e) {
    throw e instanceof UserError ? new UserError(`Another build is running in this project. ${e.message}`) : e;
  }
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    controller.abort(); // every running tool's watcher kills its process group, even after this process exits
    engine.abandonStaging();
    lock.release();
    const nodes = engine.interruptedReports(`interrupted by ${signal}`);
    const cancelled = nodes.filter((n) => n.status === "cancelled").map((n) => n.id);
    const what = cancelled.length > 0 ? `${cancelled.join(", ")} cancelled, their partial outputs removed` : "no node was running";
    process.stderr.write(`\ninterrupted (${signal}): ${what}; finished outputs are intact.\n`);
    emit(false, nodes, { interrupted: true });
    process.exit(130);
  };
  // SIGHUP: the terminal closed or the ssh session dropped.
  for (const s of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(s, onSignal);
  try {
    // Planned again under the lock (another build may have published meanwhile): only the nodes that will run
    // are guarded.
    const { willRun, restores } = plan(await engine.status(target), options.force);
    // A node to be restored runs no tool: its guard waits until a restore falls through (engine.build).
    const guarded = new Set([...willRun].filter((id) => !restores.has(id)));
    const verdicts = guarded.size > 0 ? await engine.guards(target, guarded) : [];
    const problems = verdicts.filter((v) => v.level !== "ok");
    if (problems.length > 0) process.stderr.write((await import("./verdicts.ts")).formatVerdicts(problems) + "\n");
    if (verdicts.some((v) => v.level === "error")) {
      process.stderr.write("Stopped before running anything: fix the errors above (`check` shows every verdict).\n");
      emit(false, [], { verdicts: verdicts as unknown as Json });
      return 1;
    }
    // The live task list only when something will run: a no-op build need not load it.
    const observer = await createObserver(engine.project.graph.order([target]), willRun.size > 0);
    const started = new Date().toISOString();
    const reports = await engine.build(target, { force: options.force, signal: controller.signal, observer, jobs: options.jobs });
    await observer.done();
    if (willRun.size > 0) await (await import("./build-record.ts")).writeLastBuild(engine.cacheDir, { target, started, nodes: reports }); // the report's timeline
    const ok = reports.every((r) => r.status !== "failed" && r.status !== "cancelled");
    emit(ok, reports, { hashed: { ...hashStats }, jobs: options.jobs });
    return ok ? 0 : 1;
  } finally {
    for (const s of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.off(s, onSignal);
    lock.release();
  }
}

