// Plans, guards and runs nodes: the only place that hashes, locks, publishes and records.
import { rmSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { BaseCtx, Fingerprint, Json, NodeSpec, NodeVerdict, RunCtx, TreeDigest } from "./types.ts";
import { UserError } from "./types.ts";
import { Graph } from "./graph.ts";
import { Digester, RACY_MARGIN_MS } from "./digest.ts";
import { explainChange, fingerprintOf, type FingerprintParts } from "./fingerprint.ts";
import { readLock, writeLockEntries, type LockEntry, type LockNodes } from "./lockfile.ts";
import { OutputStore } from "./outputs.ts";
import { execLogged } from "./exec.ts";
import { formatVerdicts } from "./verdicts.ts";
import { projectId, type CacheSettings, type Manifest } from "./caching/cache.ts";
import type { BuildCache } from "./caching/build-cache.ts";

export interface Project<C> {
  readonly root: string;
  readonly config: C;
  readonly graph: Graph<C>;
  /** The build cache; none: every stale node runs. */
  readonly cache?: CacheSettings;
}

export type NodeStatus = "ran" | "restored" | "fresh" | "cutoff" | "failed" | "skipped";

export interface NodeReport {
  readonly id: string;
  readonly status: NodeStatus;
  readonly reason: string;
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

interface Evaluation {
  readonly parts: FingerprintParts;
  readonly fingerprint: Fingerprint;
  readonly reasons: string[];
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
  /** The staging folder being written, removed by the signal handler. */
  currentStaging: string | undefined;

  private constructor(
    readonly project: Project<C>,
    private readonly digester: Digester,
    private readonly remote: boolean,
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

  /** `remote: false` (--no-remote) keeps a build to the local store. */
  static async open<C>(project: Project<C>, options: { remote?: boolean } = {}): Promise<Engine<C>> {
    const digester = await Digester.open(join(project.root, "cache", "stat-cache.json"));
    const engine = new Engine(project, digester, options.remote ?? true);
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
      files: await this.digester.inputs(this.project.root, inputs.files),
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

  /** Why a node's published output cannot be trusted: missing, edited by hand, or its outside parts gone. */
  private async outputProblems(node: NodeSpec<C>, entry: LockEntry, trustCache = true): Promise<string[]> {
    const dir = this.store.path(node.id);
    const missing = await this.store.missing(node.id);
    if (missing) return [missing];
    const { digest, files } = await this.digester.tree(dir, trustCache);
    const problems: string[] = [];
    if (digest !== entry.output.digest) {
      for (const name of new Set([...Object.keys(files), ...Object.keys(entry.output.files)])) {
        const now = files[name];
        const then = entry.output.files[name];
        if (now === then) continue;
        problems.push(
          now === undefined ? `output file ${name} was deleted` : then === undefined ? `output file ${name} was added` : `output file ${name} was modified`,
        );
      }
    }
    const broken = await node.intact?.(dir);
    if (broken) problems.push(broken);
    return problems;
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
        const manifest = await (await this.buildCache())!.peek(id, evaluation.fingerprint);
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

  /** Runs the stale nodes on the way to `target`. The caller first runs the guards of the nodes that will run. */
  async build(target: string, options: { force: ReadonlySet<string>; signal: AbortSignal; observer: BuildObserver }): Promise<NodeReport[]> {
    await this.store.sweep();
    const reports: NodeReport[] = [];
    const ran = new Set<string>();
    let failed = false;
    /** A later node's guard that failed once an output it reads was built: the build stops there. */
    let stop: { node: string; after: string; message: string } | undefined;
    const order = this.project.graph.order([target]);
    for (const [index, id] of order.entries()) {
      const node = this.project.graph.node(id);
      const started = performance.now();
      const finish = (status: NodeStatus, reason: string) => {
        const report = { id, status, reason, ms: Math.round(performance.now() - started) };
        reports.push(report);
        options.observer.nodeFinished(report);
      };
      if (failed) {
        finish("skipped", "an earlier node failed");
        continue;
      }
      if (stop) {
        if (id === stop.node) {
          failed = true;
          finish("failed", stop.message);
        } else {
          finish("skipped", `${stop.node}'s guard failed once ${stop.after} was built`);
        }
        continue;
      }
      const upstream = Object.fromEntries(node.deps.map((d) => [d, this.outputDigests.get(d)!]));
      const depRan = node.deps.some((d) => ran.has(d));
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
          if (cut.length > 0) finish("cutoff", `${cut.join(", ")} reran with identical output`);
          else finish("fresh", "up to date");
          continue;
        }
        const reason = forced ? "forced with --force" : evaluation.reasons.join("; ");
        // Guarded again when a dependency was rebuilt in this build: what could not be checked before the
        // build started (a downloaded model's config, the data's token counts) is checked before it runs.
        if (!forced) {
          const restored = await this.restore(node, evaluation, options);
          if (restored) {
            ran.add(id);
            // No look-ahead: a restored output was built, and guarded, before; guarding what follows it
            // would cost a chain of restores the seconds it is meant to take.
            finish("restored", `from the build cache (${reason})`);
            continue;
          }
        }
        // Also a node not guarded yet: it was to be restored, and its cache entry turned out unusable.
        if (depRan || !this.guarded.has(id)) {
          const late = (await this.guard(node)).filter((v) => v.level === "error");
          if (late.length > 0) throw new UserError(formatVerdicts(late));
        }
        this.fresh.delete(id);
        options.observer.nodeRunning(id, reason);
        await this.runNode(node, evaluation, options);
        ran.add(id);
        finish("ran", reason);
        stop = await this.lookAhead(order, index);
      } catch (e) {
        failed = true;
        if (options.signal.aborted) throw e;
        finish("failed", (e as Error).message);
      }
    }
    await this.digester.save();
    return reports;
  }

  /**
   * Once `order[index]` has run and has a new output, the guards of the later nodes that depend on it, directly or not,
   * run again: what they could not see before the build (a model built in this build: its tokenizer, the
   * converter's verdict on it) stops the build now, not after the expensive nodes in between (training,
   * before a GGUF export that would fail).
   */
  private async lookAhead(order: readonly string[], index: number): Promise<{ node: string; after: string; message: string } | undefined> {
    const after = order[index]!;
    const affected = new Set([after]);
    for (const id of order.slice(index + 1)) {
      const node = this.project.graph.node(id);
      if (!node.deps.some((d) => affected.has(d))) continue;
      affected.add(id);
      const errors = (await this.guard(node)).filter((v) => v.level === "error");
      if (errors.length > 0) return { node: id, after, message: formatVerdicts(errors) };
    }
    return undefined;
  }

  private async runNode(node: NodeSpec<C>, evaluation: Evaluation, options: { signal: AbortSignal; observer: BuildObserver }): Promise<void> {
    await this.store.assertPublishable(node.id); // before the work, not after it
    const staging = await this.store.createStaging(node.id);
    this.currentStaging = staging;
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
      // Inputs re-checked: an input edited while the node ran means the output may be of neither version.
      const after = await this.evaluate(node, evaluation.parts.upstream as Record<string, TreeDigest>);
      const changed = explainChange(evaluation.parts, after.parts);
      if (changed.length > 0) {
        throw new UserError(`inputs changed while ${node.id} ran (${changed.join("; ")}): its output was discarded. Run the build again.`);
      }
      // Let the racy-mtime window pass so the output's digests can be cached.
      await sleep(RACY_MARGIN_MS);
      const output = await this.digester.tree(staging);
      // Kept by content before it is published: the staging folder is still the engine's alone.
      const cache = await this.buildCache();
      await cache?.record(node.id, evaluation.fingerprint, output, staging, facts, { params: evaluation.parts.params, project: projectId(this.project.root) }).catch((e: unknown) => {
        options.observer.note(node.id, `warning: not kept in the build cache ${cache.local.dir}: ${(e as Error).message}`);
      });
      await this.store.publish(node.id, staging);
      this.currentStaging = undefined;
      await this.commit(node.id, evaluation, output, facts);
      await rm(scratch, { recursive: true, force: true });
    } finally {
      if (this.currentStaging) await rm(this.currentStaging, { recursive: true, force: true });
      this.currentStaging = undefined;
    }
  }

  /** Writes a published output's lock entry: the same for a node that ran and one restored. */
  private async commit(id: string, evaluation: Evaluation, output: LockEntry["output"], facts: Readonly<Record<string, Json>> | undefined): Promise<void> {
    const entry: LockEntry = {
      ...evaluation.parts,
      fingerprint: evaluation.fingerprint,
      output,
      ...(facts && Object.keys(facts).length > 0 ? { facts } : {}),
    };
    await writeLockEntries(this.lockPath, this.cacheDir, { [id]: entry });
    this.lock = { ...this.lock, [id]: entry };
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
      manifest = await cache.lookup(node.id, evaluation.fingerprint, (line) => options.observer.progress(node.id, `fetching from the remote cache: ${line}`));
    } catch (e) {
      if (e instanceof UserError && e.exitCode === 2) throw e;
      say(`warning: ${(e as Error).message}; running the node instead`);
      return false;
    }
    if (!manifest) return false;
    const staging = await this.store.createStaging(node.id);
    this.currentStaging = staging;
    try {
      try {
        await cache.local.materialize(manifest, staging);
      } catch (e) {
        say(`warning: the build cache entry in ${cache.local.dir} is incomplete (${(e as Error).message}): discarded, running the node instead`);
        await cache.local.discard(manifest, []);
        return false;
      }
      await sleep(RACY_MARGIN_MS);
      const output = await this.digester.tree(staging);
      const names = new Set([...Object.keys(output.files), ...Object.keys(manifest.output.files)]);
      const bad = [...names].filter((n) => output.files[n] !== manifest.output.files[n]);
      if (bad.length > 0 || output.digest !== manifest.output.digest) {
        say(`warning: the build cache in ${cache.local.dir} held corrupt data for ${bad.join(", ")}: discarded, running the node instead`);
        await cache.local.discard(manifest, bad.map((n) => manifest.output.files[n]!).filter(Boolean));
        return false;
      }
      // Something outside the output it relies on (a toolchain's environment) may not exist on this machine.
      const broken = await node.intact?.(staging);
      if (broken) return false;
      await this.store.publish(node.id, staging);
      this.currentStaging = undefined;
      await this.commit(node.id, evaluation, manifest.output, manifest.facts);
      return true;
    } finally {
      if (this.currentStaging) await rm(this.currentStaging, { recursive: true, force: true });
      this.currentStaging = undefined;
    }
  }

  /** Synchronous cleanup for signal handlers, which cannot wait. */
  abandonStaging(): void {
    if (this.currentStaging) rmSync(this.currentStaging, { recursive: true, force: true });
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
