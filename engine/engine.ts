// The engine: plans, guards and runs nodes, the only place that hashes, locks, publishes and records. This
// facade holds one project's state and hands it to each phase: plan.ts (fingerprints, status), guard.ts
// (guards, look-ahead), dispatch.ts (scheduling), execute.ts (run, publish, commit), restore.ts, verify.ts.
// The phases a no-op does not need (dispatch.ts among them) are loaded when first used.
import { rmSync } from "node:fs";
import { join } from "node:path";
import type { BaseCtx, NodeVerdict } from "./types.ts";
import { Digester } from "./digest.ts";
import { readLock, type LockNodes } from "./lockfile.ts";
import { OutputStore } from "./outputs.ts";
import type { BuildCache } from "./caching/build-cache.ts";
import { buildCacheOf, ctxOf, status } from "./plan.ts";
import type { BuildOptions } from "./dispatch.ts";
import { deadTemps } from "./durable.ts";
import type { EngineState, NodeReport, NodeState, Project } from "./state.ts";

export type { BuildObserver, NodeReport, NodeState, NodeStatus, Project } from "./state.ts";

export class Engine<C> {
  /** dispatch.ts, once a build started. */
  private scheduler?: typeof import("./dispatch.ts");

  private constructor(private readonly s: EngineState<C>) {}

  /** `remote: false` (--no-remote) keeps a build to the local store; `writeLock: false` leaves pipeline.lock as it is. */
  static async open<C>(project: Project<C>, options: { remote?: boolean; writeLock?: boolean } = {}): Promise<Engine<C>> {
    const cacheDir = join(project.root, "cache");
    const lockPath = join(project.root, "pipeline.lock");
    const [digester, lock] = await Promise.all([Digester.open(join(cacheDir, "stat-cache.json")), readLock(lockPath, cacheDir)]);
    return new Engine({
      project,
      digester,
      store: new OutputStore(join(project.root, project.outputs), project.outputs),
      lockPath,
      cacheDir,
      remote: options.remote ?? true,
      writeLock: options.writeLock ?? true,
      lock,
      outputDigests: new Map(),
      planned: new Map(),
      fresh: new Set(),
      assessed: false,
      guarded: new Set(),
      cache: undefined,
      stagings: new Set(),
      lockWrites: Promise.resolve(),
      live: undefined,
    });
  }

  get project(): Project<C> {
    return this.s.project;
  }

  get lockPath(): string {
    return this.s.lockPath;
  }

  get cacheDir(): string {
    return this.s.cacheDir;
  }

  /** pipeline.lock's entries as this process knows them. */
  get lockNodes(): LockNodes {
    return this.s.lock;
  }

  /** The build cache, loaded on first use: a no-op build never needs it. Undefined when none is configured. */
  buildCache(): Promise<BuildCache> | undefined {
    return buildCacheOf(this.s);
  }

  /** What guards and inputs see: the config, the root, and the published outputs. */
  ctx(): BaseCtx<C> {
    return ctxOf(this.s);
  }

  /** What a build of `target` would run and why, without running anything (see plan.ts). */
  status(target: string, options?: { restores?: boolean }): Promise<NodeState[]> {
    return status(this.s, target, options);
  }

  /** The guards of every node on the way to the target (or of those in `only`). */
  async guards(target: string, only?: ReadonlySet<string>): Promise<NodeVerdict[]> {
    return (await import("./guard.ts")).guards(this.s, target, only);
  }

  /**
   * Runs the stale nodes on the way to `target`, each as soon as its dependencies are done, up to `jobs` at
   * once (1: one at a time, in build order) and one heavy node at a time. The caller first runs the guards
   * of the nodes that will run. After a failure no node starts; the running ones finish, and are recorded.
   */
  async build(target: string, options: BuildOptions): Promise<NodeReport[]> {
    this.scheduler ??= await import("./dispatch.ts");
    return this.scheduler.build(this.s, target, options);
  }

  /** For a build cut short by a signal: every node's fate (see dispatch.ts); none before the build started. */
  interruptedReports(why: string): NodeReport[] {
    return this.scheduler?.interruptedReports(this.s.live, why) ?? [];
  }

  /** Whether a killed build left anything for the next build to sweep: staging folders, half-made links, lock temps. */
  async hasDebris(): Promise<boolean> {
    const [outputs, temps] = await Promise.all([this.s.store.debris(), deadTemps(this.s.lockPath)]);
    return outputs.length + temps.length > 0;
  }

  /** Synchronous cleanup for signal handlers, which cannot wait. */
  abandonStaging(): void {
    for (const staging of this.s.stagings) rmSync(staging, { recursive: true, force: true });
    this.s.stagings.clear();
  }

  /** Re-hashes every recorded output and compares it with pipeline.lock. */
  async verify(): Promise<NodeState[]> {
    return (await import("./verify.ts")).verify(this.s);
  }

  async saveCaches(): Promise<void> {
    await this.s.digester.save();
  }
}
