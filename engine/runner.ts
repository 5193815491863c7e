// Plans, guards and runs nodes: the only place that hashes, locks, publishes and records.
import { rmSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { BaseCtx, Fingerprint, Json, NodeSpec, NodeVerdict, OutputDigests, RunCtx, TreeDigest } from "./types.ts";
import { UserError } from "./types.ts";
import { Graph } from "./graph.ts";
import { Digester, outputOf, RACY_MARGIN_MS } from "./digest.ts";
import { explainChange, fingerprintOf, type FingerprintParts } from "./fingerprint.ts";
import { lockProject, readLock, writeLockEntries, type LockEntry, type LockNodes } from "./lockfile.ts";
import { OutputStore } from "./outputs.ts";
import { sweepTemps } from "./durable.ts";
import { execLogged } from "./exec.ts";
import { Slots } from "./scheduler.ts";
import { formatVerdicts } from "./verdicts.ts";
import { entryFiles, type CacheSettings, type Manifest } from "./caching/cache.ts";
import type { BuildCache } from "./caching/build-cache.ts";

export interface Project<C> {
  readonly root: string;
  readonly config: C;
  readonly graph: Graph<C>;
  /** The build cache; none: every stale node runs. */
  readonly cache?: CacheSettings;
  /**
   * The folder of the app that defines the graph (its stage code, its scripts): an input file in it is keyed
   * by its path there, not by where this machine has the app, so every checkout gives the same fingerprints.
   */
  readonly toolRoot?: string;
}

/** cancelled: it was running when the build was interrupted (Ctrl-C, SIGTERM, SIGHUP); its output was discarded. */
export type NodeStatus = "ran" | "restored" | "fresh" | "cutoff" | "failed" | "skipped" | "cancelled";

export interface NodeReport {
  readonly id: string;
  readonly status: NodeStatus;
  readonly reason: string;
  /** When the node started, in ms since the build started: with `ms`, a timeline of the build. */
  readonly startedMs: number;
  readonly ms: number;
}

/** What `status` says of one node. */
export interface NodeState {
  readonly id: string;
  readonly stale: boolean;
  /** Stale, and its new fingerprint is in the build cache: it would be restored, not run. */
  readonly restore?: boolean;
  readonly reasons: readonly string[];
}

/** Receives what happens during a build; the CLI renders it. */
export interface BuildObserver {
  /** A node is about to run, and why. */
  nodeRunning(id: string, reason: string): void;
  progress(id: string, line: string): void;
  note(id: string, line: string): void;
  nodeFinished(report: NodeReport): void;
}

/** What to do when a rebuild gives other bytes than pipeline.lock's for the same inputs, said in a build and by status. */
const COMMITTED_BYTES = "`pull`, or a build cache that holds the lock's output, gets the committed bytes";
const NOT_REPRODUCIBLE = "not every tool is bit-reproducible across machines and library versions, training among them";

interface Evaluation {
  readonly parts: FingerprintParts;
  readonly fingerprint: Fingerprint;
  readonly reasons: string[];
}

/** What one build's look-ahead knows of it: forced nodes, finished nodes, the plans made before it, cache answers. */
interface Foresight {
  readonly force: ReadonlySet<string>;
  readonly done: (id: string) => boolean;
  readonly plans: ReadonlyMap<string, Evaluation>;
  readonly peeked: Map<Fingerprint, Promise<TreeDigest | undefined>>;
}

export class Engine<C> {
  readonly store: OutputStore;
  readonly lockPath: string;
  readonly cacheDir: string;
  private lock: LockNodes = {};
  /** Output digests known in this process: from the lock for fresh nodes, from the build for rebuilt ones. */
  private readonly outputDigests = new Map<string, TreeDigest>();
  /** Evaluations made by `status`, reused by `build` for a node none of whose dependencies ran since. */
  private readonly planned = new Map<string, Evaluation>();
  /** Nodes whose published output exists and matches their current fingerprint: all a guard may read. */
  private readonly fresh = new Set<string>();
  private assessed = false;
  /** Nodes whose guards ran in this process. */
  private readonly guarded = new Set<string>();
  private cache: Promise<BuildCache> | undefined;
  /** The staging folders being written (one per running node), removed by the signal handler. */
  private readonly stagings = new Set<string>();
  /** Lock writes, one after the other: concurrent completions each rewrite the whole file from what is on disk. */
  private lockWrites: Promise<void> = Promise.resolve();
  /** The build in progress: what the signal handler reports of every node. */
  private live: { readonly order: readonly string[]; readonly start: number; readonly reports: Map<string, NodeReport>; readonly running: Map<string, number> } | undefined;

  private constructor(
    readonly project: Project<C>,
    private readonly digester: Digester,
    private readonly remote: boolean,
    /** false (a `-S` build): lock entries are kept in this process only, pipeline.lock stays as committed. */
    private readonly writeLock: boolean,
  ) {
    this.store = new OutputStore(join(project.root, "models"));
    this.lockPath = join(project.root, "pipeline.lock");
    this.cacheDir = join(project.root, "cache");
  }

  /** The build cache, loaded on first use: a no-op build never needs it. Undefined when none is configured. */
  buildCache(): Promise<BuildCache> | undefined {
    const settings = this.project.cache;
    if (!settings) return undefined;
    this.cache ??= import("./caching/build-cache.ts").then(({ BuildCache }) => new BuildCache(settings, this.remote));
    return this.cache;
  }

  /** `remote: false` (--no-remote) keeps a build to the local store; `writeLock: false` leaves pipeline.lock as it is. */
  static async open<C>(project: Project<C>, options: { remote?: boolean; writeLock?: boolean } = {}): Promise<Engine<C>> {
    const digester = await Digester.open(join(project.root, "cache", "stat-cache.json"));
    const engine = new Engine(project, digester, options.remote ?? true, options.writeLock ?? true);
    engine.lock = await readLock(engine.lockPath, engine.cacheDir);
    return engine;
  }

  /** pipeline.lock's entries as this process knows them. */
  get lockNodes(): LockNodes {
    return this.lock;
  }

  /** What guards and inputs see: the config, the root, and the published outputs. */
  ctx(): BaseCtx<C> {
    return {
      config: this.project.config,
      root: this.project.root,
      upstream: (id) => this.store.path(id),
      // A lock entry is not enough: a fresh clone has the lock but no outputs, and an output made from other
      // inputs (another model's tokenizer) would mislead a guard.
      isBuilt: (id) => this.fresh.has(id),
    };
  }

  /** Fingerprint and staleness of one node, assuming its dependencies' outputs are final. */
  private async evaluate(node: NodeSpec<C>, upstream: Record<string, TreeDigest>): Promise<Evaluation> {
    const inputs = await node.inputs(this.ctx());
    const parts: FingerprintParts = {
      params: inputs.params,
      files: await this.digester.inputs(this.project.root, inputs.files, this.project.toolRoot),
      upstream,
      tools: inputs.tools,
      command: inputs.command,
    };
    const fingerprint = fingerprintOf(node.id, parts);
    const entry = this.lock[node.id];
    const reasons: string[] = [];
    if (!entry) {
      reasons.push("never built");
    } else {
      if (entry.fingerprint !== fingerprint) {
        const why = explainChange(entry, parts);
        reasons.push(...(why.length > 0 ? why : ["fingerprint changed"]));
      }
      reasons.push(...(await this.outputProblems(node, entry)));
    }
    return { parts, fingerprint, reasons };
  }

  /**
   * Why a node's published output cannot be trusted: missing, edited by hand, its outside parts gone, or not the
   * lock's though built here as published (the lock changed under it, or a rebuild gave other bytes).
   */
  private async outputProblems(node: NodeSpec<C>, entry: LockEntry, trustCache = true): Promise<string[]> {
    const dir = this.store.path(node.id);
    const missing = await this.store.missing(node.id);
    if (missing) return [missing];
    const { digest, files } = outputOf(await this.digester.tree(dir, trustCache), node.records);
    const problems: string[] = [];
    if (digest !== entry.output.digest) {
      const published = await this.published(node.id);
      if (published?.digest === digest && published.fingerprint === entry.fingerprint) {
        problems.push(`output differs from pipeline.lock's: rebuilt here from the same inputs with other bytes (${NOT_REPRODUCIBLE}); ${COMMITTED_BYTES}`);
      } else if (published?.digest === digest) {
        problems.push("output is not the one pipeline.lock records: it was built here from other inputs (pipeline.lock changed since, by a checkout or a pull)");
      } else {
        for (const name of new Set([...Object.keys(files), ...Object.keys(entry.output.files)])) {
          const now = files[name];
          const then = entry.output.files[name];
          if (now === then) continue;
          problems.push(
            now === undefined ? `output file ${name} was deleted` : then === undefined ? `output file ${name} was added` : `output file ${name} was modified`,
          );
        }
      }
    }
    const broken = await node.intact?.(dir);
    if (broken) problems.push(broken);
    return problems;
  }

  /**
   * cache/published/<node>: the fingerprint and output digest of what this project last published for the node, so
   * an output that differs from the lock's can be told apart as a rebuild (the lock came from another machine) or
   * an edit. Only read when an output differs from the lock: a no-op never opens it.
   */
  private publishedPath(id: string): string {
    return join(this.cacheDir, "published", id);
  }

  private async published(id: string): Promise<{ fingerprint: Fingerprint; digest: TreeDigest } | undefined> {
    const text = await readFile(this.publishedPath(id), "utf8").catch(() => "");
    // The engine's own two digests; anything else (torn, hand-edited) is no record.
    const m = /^([0-9a-f]{64}) ([0-9a-f]{64})\n$/.exec(text);
    return m ? { fingerprint: m[1] as Fingerprint, digest: m[2] as TreeDigest } : undefined;
  }

  /** The output digest pipeline.lock records for this fingerprint of the node: the only output a restore may bring. */
  private lockedOutput(id: string, fingerprint: Fingerprint): TreeDigest | undefined {
    const entry = this.lock[id];
    return entry?.fingerprint === fingerprint ? entry.output.digest : undefined;
  }

  /** What a build of `target` would run and why, without running anything. */
  async status(target: string): Promise<NodeState[]> {
    const order = this.project.graph.order([target]);
    // Every node is evaluated at once: the upstream digests come from the lock, so the evaluations are
    // independent reads, and a slow one (a Python shim asked its version) overlaps the others.
    const evaluations = new Map(
      order.map((id) => {
        const node = this.project.graph.node(id);
        const upstream = Object.fromEntries(node.deps.map((d) => [d, this.lock[d]?.output.digest ?? ("none" as TreeDigest)]));
        const recorded = this.evaluate(node, upstream).then((e) => (this.planned.set(id, e), e));
        recorded.catch(() => undefined); // handled below, in order; not an unhandled rejection meanwhile
        return [id, recorded];
      }),
    );
    const states: NodeState[] = [];
    const stale = new Set<string>();
    this.assessed = true;
    /** The output digest each node will have after the build, where known: the lock's, or a cache entry's. */
    const predicted = new Map<string, TreeDigest>();
    const recorded = (d: string) => this.lock[d]?.output.digest ?? ("none" as TreeDigest);
    for (const id of order) {
      const node = this.project.graph.node(id);
      const staleDeps = node.deps.filter((d) => stale.has(d) && !predicted.has(d));
      let evaluation: Evaluation | undefined;
      let reasons: string[];
      try {
        evaluation = await evaluations.get(id)!;
        // An upstream that will be restored has a known new output: evaluated against it, a chain of restores shows.
        if (staleDeps.length === 0 && node.deps.some((d) => predicted.get(d) !== recorded(d))) {
          evaluation = await this.evaluate(node, Object.fromEntries(node.deps.map((d) => [d, predicted.get(d)!])));
          this.planned.set(id, evaluation);
        }
        reasons = [...evaluation.reasons];
      } catch (e) {
        evaluation = undefined;
        // A node's inputs may only be readable once its dependencies are built.
        reasons = staleDeps.length > 0 ? [] : [`cannot read its inputs: ${(e as Error).message}`];
      }
      reasons.push(...staleDeps.map((d) => `upstream ${d} will rebuild (this node reruns unless its output is identical)`));
      let restore = false;
      if (reasons.length === 0) predicted.set(id, recorded(id));
      else if (staleDeps.length === 0 && evaluation && this.project.cache) {
        const manifest = await (await this.buildCache())!.peek(id, evaluation.fingerprint, this.lockedOutput(id, evaluation.fingerprint));
        if (manifest) {
          restore = true;
          predicted.set(id, manifest.output.digest);
        }
      }
      if (reasons.length > 0) stale.add(id);
      if (reasons.length > 0) this.fresh.delete(id);
      else this.fresh.add(id);
      states.push({ id, stale: reasons.length > 0, ...(restore ? { restore } : {}), reasons });
    }
    return states;
  }

  /** The guards of every node on the way to the target (or of those in `only`). */
  async guards(target: string, only?: ReadonlySet<string>): Promise<NodeVerdict[]> {
    if (!this.assessed) await this.status(target); // which outputs are fresh, so guards read only those
    const verdicts: NodeVerdict[] = [];
    for (const id of this.project.graph.order([target]).filter((n) => !only || only.has(n))) {
      verdicts.push(...(await this.guard(this.project.graph.node(id))));
    }
    return verdicts;
  }

  /** One node's verdicts; a guard that throws is itself an error verdict. */
  private async guard(node: NodeSpec<C>): Promise<NodeVerdict[]> {
    this.guarded.add(node.id);
    try {
      return (await node.guard(this.ctx())).map((v) => ({ node: node.id, ...v }));
    } catch (e) {
      const err = e as Error;
      return [
        {
          node: node.id,
          level: "error",
          code: "guard.crashed",
          message: err instanceof UserError ? err.message : `the guard itself failed: ${err.message}`,
          fix: err instanceof UserError ? "" : "This is a bug in the tool: please report it with this message.",
        },
      ];
    }
  }

  /**
   * Runs the stale nodes on the way to `target`, each as soon as its dependencies are done, up to `jobs` at
   * once (1: one at a time, in build order) and one heavy node at a time. The caller first runs the guards
   * of the nodes that will run. After a failure no node starts; the running ones finish, and are recorded.
   */
  async build(
    target: string,
    options: { force: ReadonlySet<string>; signal: AbortSignal; observer: BuildObserver; jobs?: number },
  ): Promise<NodeReport[]> {
    // What builds killed mid-write left: staging folders, and temp files of pipeline.lock.
    await Promise.all([this.store.sweep(), sweepTemps(this.lockPath)]);
    const order = this.project.graph.order([target]);
    const start = performance.now();
    const reports = new Map<string, NodeReport>();
    /** Nodes working now, and when they started. */
    const running = new Map<string, number>();
    this.live = { order, start, reports, running };
    const ran = new Set<string>();
    /** What the look-ahead needs to tell which later nodes will run; the plans as status made them, before any ran. */
    const foresight: Foresight = { force: options.force, done: (id) => reports.has(id) || ran.has(id), plans: new Map(this.planned), peeked: new Map() };
    /** The first node that failed (or was cancelled): no node starts after it. */
    let failure: string | undefined;
    /** A later node's guard that failed once an output it reads was built: the build stops there. */
    let stop: { node: string; after: string; message: string } | undefined;
    const pending = [...order];
    /** Each running node's own cancel, beside the build's signal. */
    const cancels = new Map<string, AbortController>();
    let allDone!: () => void;
    const done = new Promise<void>((resolve) => (allDone = resolve));

    const finish = (id: string, status: NodeStatus, reason: string, started = performance.now(), ended = performance.now()) => {
      const report = { id, status, reason, startedMs: Math.round(started - start), ms: Math.round(ended - started) };
      reports.set(id, report);
      running.delete(id);
      options.observer.nodeFinished(report);
    };
    const fail = (id: string) => {
      if (failure || stop) return;
      failure = id;
      const others = [...running.keys()].filter((r) => r !== id);
      if (others.length > 0) {
        options.observer.note(id, `no further node starts; ${others.join(", ")} still running: let finish, their outputs are kept (Ctrl-C cancels them)`);
      }
    };
    // Starts every node whose dependencies are done while a job slot is free, in build order.
    const pump = () => {
      for (const id of [...pending]) {
        if (stop) {
          pending.splice(pending.indexOf(id), 1);
          if (id === stop.node) {
            fail(id);
            finish(id, "failed", stop.message);
          } else finish(id, "skipped", `not started: ${stop.node}'s guard failed once ${stop.after} was built`);
          continue;
        }
        if (failure) {
          pending.splice(pending.indexOf(id), 1);
          finish(id, "skipped", `not started: ${failure} failed`);
          continue;
        }
        if (!this.project.graph.node(id).deps.every((d) => reports.has(d))) continue;
        if (!slots.tryTake()) break;
        pending.splice(pending.indexOf(id), 1);
        running.set(id, performance.now());
        void one(id)
          .catch((e: unknown) => {
            fail(id);
            finish(id, "failed", (e as Error).message);
          })
          .finally(() => slots.release());
      }
      if (pending.length === 0 && running.size === 0) allDone();
    };
    const slots = new Slots(Math.max(1, options.jobs ?? 1), pump);

    const one = async (id: string): Promise<void> => {
      const node = this.project.graph.node(id);
      let started = running.get(id)!;
      const upstream = Object.fromEntries(node.deps.map((d) => [d, this.outputDigests.get(d)!]));
      const depRan = node.deps.some((d) => ran.has(d));
      let heavy = false;
      const cancel = new AbortController();
      cancels.set(id, cancel);
      const signal = AbortSignal.any([options.signal, cancel.signal]);
      try {
        // The plan's evaluation stands while no dependency has run since (a no-op build stats once); after
        // one ran, inputs() may read its new output, so the node is evaluated again.
        const plan = depRan ? undefined : this.planned.get(id);
        this.planned.delete(id);
        const evaluation = plan ?? (await this.evaluate(node, upstream));
        const forced = options.force.has(id);
        if (evaluation.reasons.length === 0 && !forced) {
          this.outputDigests.set(id, this.lock[id]!.output.digest);
          this.fresh.add(id);
          const cut = node.deps.filter((d) => ran.has(d));
          if (cut.length > 0) finish(id, "cutoff", `${cut.join(", ")} reran with identical output`, started);
          else finish(id, "fresh", "up to date", started);
          return;
        }
        const reason = forced ? "forced with --force" : evaluation.reasons.join("; ");
        if (!forced) {
          const restored = await this.restore(node, evaluation, options);
          if (restored) {
            ran.add(id);
            // No look-ahead: a restored output was built, and guarded, before; guarding what follows it
            // would cost a chain of restores the seconds it is meant to take.
            finish(id, "restored", `from the build cache (${reason})`, started);
            return;
          }
        }
        // Every await since the node took its slot (planning, a restore that fell through, a guard, the heavy
        // slot) may have let another node fail or a refused guard cancel this one: checked again right before
        // anything of this node starts, so that no tool starts after either.
        const notStarting = (waited: boolean): boolean => {
          if (signal.aborted) finish(id, "cancelled", options.signal.aborted ? "interrupted before it started" : String(cancel.signal.reason), started);
          else if (failure || stop) {
            const why = failure ? `${failure} failed` : `${stop!.node}'s guard failed once ${stop!.after} was built`;
            finish(id, "skipped", `not started: ${why}${waited ? " while it waited for the heavy slot" : ""}`, started);
          } else return false;
          return true;
        };
        if (notStarting(false)) return;
        // Guarded again when a dependency was rebuilt in this build: what could not be checked before the
        // build started (a downloaded model's config, the data's token counts) is checked before it runs.
        // Also a node not guarded yet: it was to be restored, and its cache entry turned out unusable.
        if (depRan || !this.guarded.has(id)) {
          const late = (await this.guard(node)).filter((v) => v.level === "error");
          if (late.length > 0) throw new UserError(formatVerdicts(late));
        }
        let waited = false;
        if (node.weight === "heavy") {
          heavy = true;
          waited = await slots.takeHeavy(order.indexOf(id));
          if (waited) {
            // It waited for another heavy node: its timeline starts now.
            started = performance.now();
            running.set(id, started);
          }
        }
        if (notStarting(waited)) return;
        this.fresh.delete(id);
        options.observer.nodeRunning(id, reason);
        await this.runNode(node, evaluation, { ...options, signal });
        ran.add(id);
        const ended = performance.now();
        // Before the node counts as done: a node that depends on it must not start before its guard ran again.
        const refused = await this.lookAhead(order, order.indexOf(id), foresight);
        if (refused && !stop) {
          stop = refused;
          // The build cannot reach the refused node; what runs only to feed it stops too. The refusal is about
          // what was built on the way (the model a converter rejects), so that work would most likely be
          // redone: its scratch folder (a training's checkpoints) is kept for the next build.
          const feeding = new Set(this.project.graph.order([refused.node]));
          const others = [...cancels.keys()].filter((o) => o !== id);
          const cancelled = others.filter((o) => feeding.has(o));
          const finishing = others.filter((o) => !feeding.has(o));
          options.observer.note(
            id,
            `${refused.node}'s guard refused once ${id} was built: no further node starts` +
              (cancelled.length > 0 ? `; cancelling ${cancelled.join(", ")}, which it needs` : "") +
              (finishing.length > 0 ? `; ${finishing.join(", ")} still running: let finish, their outputs are kept` : ""),
          );
          for (const o of cancelled) cancels.get(o)!.abort(`${refused.node}'s guard refused once ${id} was built, so this build cannot reach it: cancelled, its scratch folder kept`);
        }
        finish(id, "ran", reason, started, ended);
      } catch (e) {
        fail(id);
        if (options.signal.aborted) finish(id, "cancelled", "interrupted while it ran: its output was discarded", started);
        else if (cancel.signal.aborted) finish(id, "cancelled", String(cancel.signal.reason), started);
        else finish(id, "failed", (e as Error).message, started);
      } finally {
        cancels.delete(id);
        if (heavy) slots.releaseHeavy();
      }
    };

    pump();
    await done;
    this.live = undefined;
    await this.digester.save();
    return order.map((id) => reports.get(id)!);
  }

  /**
   * Every node's fate, for a build cut short by a signal: the finished ones as they ended, the running ones
   * cancelled (their process groups killed, their staging folders removed), the others not started.
   */
  interruptedReports(why: string): NodeReport[] {
    const live = this.live;
    if (!live) return [];
    const now = performance.now();
    return live.order.map((id) => {
      const finished = live.reports.get(id);
      if (finished) return finished;
      const started = live.running.get(id);
      if (started !== undefined) {
        return { id, status: "cancelled", reason: `${why} while it ran: its output was discarded`, startedMs: Math.round(started - live.start), ms: Math.round(now - started) };
      }
      return { id, status: "skipped", reason: `not started: ${why}`, startedMs: Math.round(now - live.start), ms: 0 };
    });
  }

  /**
   * Once `order[index]` has run and has a new output, the guards of the later nodes that depend on it, directly or not,
   * and will run, run again: what they could not see before the build (a model built in this build: its tokenizer, the
   * converter's verdict on it) stops the build now, not after the expensive nodes in between (training,
   * before a GGUF export that would fail). A node that will be cut off or restored runs no tool, so its guard
   * has nothing to refuse: a toolchain rebuilt on a new machine with the lock's bytes must not have the memory
   * guard refuse a training that is then restored.
   */
  private async lookAhead(order: readonly string[], index: number, foresight: Foresight): Promise<{ node: string; after: string; message: string } | undefined> {
    const after = order[index]!;
    const outcome = this.outcomes(foresight);
    const affected = new Set([after]);
    for (const id of order.slice(index + 1)) {
      const node = this.project.graph.node(id);
      if (!node.deps.some((d) => affected.has(d))) continue;
      affected.add(id);
      if ((await outcome(id)) !== undefined) continue;
      const errors = (await this.guard(node)).filter((v) => v.level === "error");
      if (errors.length > 0) return { node: id, after, message: formatVerdicts(errors) };
    }
    return undefined;
  }

  /**
   * The output digest each node will have once this build is through, as far as known now: a finished node's
   * own; the lock's for one that will be fresh or cut off; the cache entry's for one that will be restored.
   * Undefined for one that will run: a node whose dependency will run is taken to run too (only its run can
   * tell a cutoff). Memoized for one look-ahead, since finished nodes change the answers between two.
   */
  private outcomes(foresight: Foresight): (id: string) => Promise<TreeDigest | undefined> {
    const memo = new Map<string, Promise<TreeDigest | undefined>>();
    const predict = async (id: string): Promise<TreeDigest | undefined> => {
      if (foresight.done(id)) return this.outputDigests.get(id);
      if (foresight.force.has(id)) return undefined;
      const node = this.project.graph.node(id);
      const upstream: Record<string, TreeDigest> = {};
      for (const d of node.deps) {
        const digest = await outcome(d);
        if (digest === undefined) return undefined;
        upstream[d] = digest;
      }
      const plan = foresight.plans.get(id);
      let evaluation: Evaluation;
      try {
        evaluation = plan && node.deps.every((d) => plan.parts.upstream[d] === upstream[d]) ? plan : await this.evaluate(node, upstream);
      } catch {
        return undefined; // its inputs cannot be read before its dependencies are built: taken to run
      }
      if (evaluation.reasons.length === 0) return this.lock[id]?.output.digest;
      const cache = this.buildCache();
      if (!cache) return undefined;
      let peek = foresight.peeked.get(evaluation.fingerprint);
      if (!peek) {
        // A remote that cannot answer makes the node one that runs: guarded, as it would be without a cache.
        peek = cache.then((c) => c.peek(id, evaluation.fingerprint, this.lockedOutput(id, evaluation.fingerprint))).then((m) => m?.output.digest, () => undefined);
        foresight.peeked.set(evaluation.fingerprint, peek);
      }
      return peek;
    };
    const outcome = (id: string): Promise<TreeDigest | undefined> => {
      let known = memo.get(id);
      if (!known) memo.set(id, (known = predict(id)));
      return known;
    };
    return outcome;
  }

  private async runNode(node: NodeSpec<C>, evaluation: Evaluation, options: { signal: AbortSignal; observer: BuildObserver }): Promise<void> {
    await this.store.assertPublishable(node.id); // before the work, not after it
    const started = new Date();
    const staging = await this.store.createStaging(node.id);
    this.stagings.add(staging);
    const scratch = join(this.cacheDir, "scratch", node.id, evaluation.fingerprint.slice(0, 16));
    const logPath = join(this.cacheDir, "logs", `${node.id}.log`);
    await mkdir(scratch, { recursive: true });
    await rm(logPath, { force: true });
    const facts: Record<string, Json> = {};
    const ctx: RunCtx<C> = {
      ...this.ctx(),
      staging,
      scratch,
      signal: options.signal,
      inputDigests: evaluation.parts.files,
      record: (more) => Object.assign(facts, more),
      exec: (command, args, execOptions) => execLogged(command, args, logPath, options.signal, execOptions),
      progress: (line) => options.observer.progress(node.id, line),
      note: (line) => options.observer.note(node.id, line),
    };
    try {
      await node.run(ctx);
      // A node cancelled while it ran code of its own (no tool to kill) is not published either.
      if (options.signal.aborted) throw new UserError(`${node.id} was cancelled while it ran: its output was discarded.`);
      // Inputs re-checked: an input edited while the node ran means the output may be of neither version.
      const after = await this.evaluate(node, evaluation.parts.upstream as Record<string, TreeDigest>);
      const changed = explainChange(evaluation.parts, after.parts);
      if (changed.length > 0) {
        throw new UserError(`inputs changed while ${node.id} ran (${changed.join("; ")}): its output was discarded. Run the build again.`);
      }
      // Let the racy-mtime window pass so the output's digests can be cached.
      await sleep(RACY_MARGIN_MS);
      const output = outputOf(await this.digester.tree(staging), node.records);
      // Kept by content before it is published: the staging folder is still the engine's alone.
      const cache = await this.buildCache();
      await cache?.record(node.id, evaluation.fingerprint, output, staging, facts, {
        params: evaluation.parts.params,
        project: await lockProject(this.lockPath),
        upstream: evaluation.parts.upstream,
        built: started.toISOString(),
        seconds: Math.round((Date.now() - started.getTime()) / 100) / 10,
      }).catch((e: unknown) => {
        options.observer.note(node.id, `warning: not kept in the build cache ${cache.local.dir}: ${(e as Error).message}`);
      });
      await this.store.publish(node.id, staging);
      this.stagings.delete(staging);
      const locked = this.lockedOutput(node.id, evaluation.fingerprint);
      if (locked !== undefined && locked !== output.digest) {
        options.observer.note(
          node.id,
          `warning: rebuilt from the same inputs as pipeline.lock's entry, with other bytes (${NOT_REPRODUCIBLE}); pipeline.lock now records this build. ` +
            `To have the committed bytes instead, \`git checkout pipeline.lock\` and build again: ${COMMITTED_BYTES}.`,
        );
      }
      await this.commit(node.id, evaluation, output, facts);
      await rm(scratch, { recursive: true, force: true });
    } finally {
      if (this.stagings.delete(staging)) await rm(staging, { recursive: true, force: true });
    }
  }

  /**
   * Writes a published output's lock entry: the same for a node that ran and one restored. The lock's own
   * entry for this fingerprint and output digest is kept as committed (its records and facts may differ from
   * this run's), so a rebuild with identical results leaves pipeline.lock unchanged.
   */
  private async commit(id: string, evaluation: Evaluation, output: OutputDigests, facts: Readonly<Record<string, Json>> | undefined): Promise<void> {
    if (this.lockedOutput(id, evaluation.fingerprint) !== output.digest) {
      const entry: LockEntry = {
        ...evaluation.parts,
        fingerprint: evaluation.fingerprint,
        output,
        ...(facts && Object.keys(facts).length > 0 ? { facts } : {}),
      };
      // One writer: each write reads the file and adds its entry, so two at once could lose one of them.
      if (this.writeLock) {
        const write = this.lockWrites.then(() => writeLockEntries(this.lockPath, this.cacheDir, { [id]: entry }));
        this.lockWrites = write.catch(() => undefined);
        await write;
      }
      this.lock = { ...this.lock, [id]: entry };
    }
    // Only a hint for status's wording: a lost write makes an output that differs from the lock read as edited.
    await mkdir(join(this.cacheDir, "published"), { recursive: true });
    await writeFile(this.publishedPath(id), `${evaluation.fingerprint} ${output.digest}\n`).catch(() => undefined);
    this.outputDigests.set(id, output.digest);
    this.fresh.add(id);
  }

  /**
   * Restores a stale node's output from the build cache instead of running it: materialized into a staging
   * folder, every file's digest checked, then published like a built output. False: run the node.
   */
  private async restore(node: NodeSpec<C>, evaluation: Evaluation, options: { observer: BuildObserver }): Promise<boolean> {
    const cache = await this.buildCache();
    if (!cache) return false;
    const say = (line: string) => options.observer.note(node.id, line);
    let manifest: Manifest | undefined;
    try {
      // With the lock's entry for this fingerprint, only its output is restored: one that differs would rewrite the lock.
      const want = this.lockedOutput(node.id, evaluation.fingerprint);
      manifest = await cache.lookup(node.id, evaluation.fingerprint, (line) => options.observer.progress(node.id, `fetching from the remote cache: ${line}`), want);
    } catch (e) {
      if (e instanceof UserError && e.exitCode === 2) throw e;
      say(`warning: ${(e as Error).message}; running the node instead`);
      return false;
    }
    if (!manifest) return false;
    const staging = await this.store.createStaging(node.id);
    this.stagings.add(staging);
    try {
      try {
        await cache.local.materialize(manifest, staging);
      } catch (e) {
        say(`warning: the build cache entry in ${cache.local.dir} is incomplete (${(e as Error).message}): discarded, running the node instead`);
        await cache.local.discard(manifest, []);
        return false;
      }
      await sleep(RACY_MARGIN_MS);
      const output = outputOf(await this.digester.tree(staging), node.records);
      // Every file, records included, against the entry's digests; then the result's digest as the node declares it.
      const got = Object.fromEntries(entryFiles(output));
      const expected = Object.fromEntries(entryFiles(manifest.output));
      const bad = [...new Set([...Object.keys(got), ...Object.keys(expected)])].filter((n) => got[n] !== expected[n]);
      if (bad.length > 0 || output.digest !== manifest.output.digest) {
        say(`warning: the build cache in ${cache.local.dir} held corrupt data for ${bad.join(", ") || "its output digest"}: discarded, running the node instead`);
        await cache.local.discard(manifest, bad.flatMap((n) => expected[n] ?? []));
        return false;
      }
      // Something outside the output it relies on (a toolchain's environment) may not exist on this machine.
      const broken = await node.intact?.(staging);
      if (broken) return false;
      await this.store.publish(node.id, staging);
      this.stagings.delete(staging);
      await this.commit(node.id, evaluation, manifest.output, manifest.facts);
      return true;
    } finally {
      if (this.stagings.delete(staging)) await rm(staging, { recursive: true, force: true });
    }
  }

  /** Synchronous cleanup for signal handlers, which cannot wait. */
  abandonStaging(): void {
    for (const staging of this.stagings) rmSync(staging, { recursive: true, force: true });
    this.stagings.clear();
  }

  /** Re-hashes every recorded output and compares it with pipeline.lock. */
  async verify(): Promise<NodeState[]> {
    const states: NodeState[] = [];
    for (const id of this.project.graph.ids) {
      const entry = this.lock[id];
      // A node never built (eval, when only gguf was asked for) has no recorded output to check.
      if (!entry) continue;
      // Bypass the stat cache: verify exists to catch what stat cannot see (bit rot, restored backups).
      const problems = await this.outputProblems(this.project.graph.node(id), entry, false);
      states.push({ id, stale: problems.length > 0, reasons: problems });
    }
    await this.digester.save();
    return states;
  }

  async saveCaches(): Promise<void> {
    await this.digester.save();
  }
}
