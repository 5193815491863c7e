// Scheduling: the stale nodes on the way to a target, each started as soon as its dependencies are done, up
// to `jobs` at once and one heavy node at a time. One build's state is a `Dispatch`, read and written by the
// small functions below: `pump` starts what can start, `dispatch` takes one node from plan to report.
import { sweepTemps } from "./durable.ts";
import { evaluate } from "./plan.ts";
import type { Foresight, Refusal } from "./guard.ts";
import type { BuildObserver, EngineState, LiveBuild, NodeReport, NodeStatus } from "./state.ts";
import type { NodeSpec } from "./types.ts";

/** Job slots, taken by a node when it starts and given back when it finishes, and the heavy slot. */
export class Slots {
  private active = 0;
  private heavyHeld = false;
  /** Nodes that hold a job slot and wait for the heavy one; their job slot is lent to others meanwhile. */
  private readonly heavyWaiters: { readonly index: number; readonly resume: () => void }[] = [];
  /** Nodes that were given the heavy slot and wait for a job slot again: served before any new node. */
  private readonly resuming: (() => void)[] = [];

  constructor(
    readonly jobs: number,
    /** Called whenever a job slot may have freed up, for the caller to start the next nodes. */
    private readonly onFree: () => void,
  ) {}

  /** Takes a job slot for a node about to start: false when none is free. */
  tryTake(): boolean {
    if (this.active >= this.jobs || this.resuming.length > 0) return false;
    this.active++;
    return true;
  }

  /** Gives a job slot back. */
  release(): void {
    this.active--;
    this.serve();
    this.onFree();
  }

  private serve(): void {
    while (this.resuming.length > 0 && this.active < this.jobs) {
      this.active++;
      this.resuming.shift()!();
    }
  }

  /**
   * Takes the heavy slot for a node that holds a job slot. While another heavy node runs, the waiting node's
   * job slot goes to light nodes, so a heavy node waiting never blocks a download. Heavy waiters are served in
   * build order (`index`). Resolves true when it had to wait.
   */
  async takeHeavy(index: number): Promise<boolean> {
    if (!this.heavyHeld) {
      this.heavyHeld = true;
      return false;
    }
    await new Promise<void>((resume) => {
      this.heavyWaiters.push({ index, resume });
      this.release();
    });
    return true;
  }

  /** Hands the heavy slot to the first waiting heavy node, which then takes the next free job slot. */
  releaseHeavy(): void {
    this.heavyWaiters.sort((a, b) => a.index - b.index);
    const next = this.heavyWaiters.shift();
    if (!next) {
      this.heavyHeld = false;
      return;
    }
    this.resuming.push(next.resume);
    this.serve();
  }
}

export interface BuildOptions {
  readonly force: ReadonlySet<string>;
  readonly signal: AbortSignal;
  readonly observer: BuildObserver;
  readonly jobs?: number;
}

/** One build: what has finished, what runs, and why nothing more may start. */
interface Dispatch<C> {
  readonly s: EngineState<C>;
  readonly options: BuildOptions;
  readonly live: LiveBuild;
  /** Nodes not started yet, in build order. */
  readonly pending: string[];
  /** Nodes whose output was made in this build (ran or restored). */
  readonly ran: Set<string>;
  /** Each running node's own cancel, beside the build's signal. */
  readonly cancels: Map<string, AbortController>;
  readonly foresight: Foresight;
  readonly slots: Slots;
  /** The first node that failed (or was cancelled): no node starts after it. */
  failure: string | undefined;
  /** A later node's guard that failed once an output it reads was built: the build stops there. */
  stop: Refusal | undefined;
  readonly allDone: () => void;
}

/**
 * Runs the stale nodes on the way to `target`. The caller first runs the guards of the nodes that will run.
 * After a failure no node starts; the running ones finish, and are recorded.
 */
export async function build<C>(s: EngineState<C>, target: string, options: BuildOptions): Promise<NodeReport[]> {
  // What builds killed mid-write left: staging folders, and temp files of pipeline.lock.
  await Promise.all([s.store.sweep(), sweepTemps(s.lockPath)]);
  const order = s.project.graph.order([target]);
  const live: LiveBuild = { order, start: performance.now(), reports: new Map(), running: new Map() };
  s.live = live;
  let allDone!: () => void;
  const done = new Promise<void>((resolve) => (allDone = resolve));
  const ran = new Set<string>();
  const d: Dispatch<C> = {
    s,
    options,
    live,
    pending: [...order],
    ran,
    cancels: new Map(),
    // What the look-ahead needs to tell which later nodes will run; the plans as status made them, before any ran.
    foresight: { force: options.force, done: (id) => live.reports.has(id) || ran.has(id), plans: new Map(s.planned), peeked: new Map() },
    slots: new Slots(Math.max(1, options.jobs ?? 1), () => pump(d)),
    failure: undefined,
    stop: undefined,
    allDone,
  };
  pump(d);
  await done;
  s.live = undefined;
  await s.digester.save();
  return order.map((id) => live.reports.get(id)!);
}

/** Why no further node may start, if that is so. */
function halted<C>(d: Dispatch<C>): string | undefined {
  if (d.stop) return `${d.stop.node}'s guard failed once ${d.stop.after} was built`;
  if (d.failure) return `${d.failure} failed`;
  return undefined;
}

/** Starts every node whose dependencies are done while a job slot is free, in build order; settles the rest once halted. */
function pump<C>(d: Dispatch<C>): void {
  for (const id of [...d.pending]) {
    const why = halted(d);
    if (why) {
      d.pending.splice(d.pending.indexOf(id), 1);
      if (id === d.stop?.node) finish(d, id, "failed", d.stop.message);
      else finish(d, id, "skipped", `not started: ${why}`);
      continue;
    }
    if (!d.s.project.graph.node(id).deps.every((dep) => d.live.reports.has(dep))) continue;
    if (!d.slots.tryTake()) break;
    d.pending.splice(d.pending.indexOf(id), 1);
    d.live.running.set(id, performance.now());
    void dispatch(d, id)
      .catch((e: unknown) => {
        fail(d, id);
        finish(d, id, "failed", (e as Error).message);
      })
      .finally(() => d.slots.release());
  }
  if (d.pending.length === 0 && d.live.running.size === 0) d.allDone();
}

function finish<C>(d: Dispatch<C>, id: string, status: NodeStatus, reason: string, started = performance.now(), ended = performance.now()): void {
  const report = { id, status, reason, startedMs: Math.round(started - d.live.start), ms: Math.round(ended - started) };
  d.live.reports.set(id, report);
  d.live.running.delete(id);
  d.options.observer.nodeFinished(report);
}

/** The build's first failure: nothing starts after it; what runs finishes. */
function fail<C>(d: Dispatch<C>, id: string): void {
  if (halted(d)) return;
  d.failure = id;
  const others = [...d.live.running.keys()].filter((r) => r !== id);
  if (others.length > 0) {
    d.options.observer.note(id, `no further node starts; ${others.join(", ")} still running: let finish, their outputs are kept (Ctrl-C cancels them)`);
  }
}

/** One node between taking its job slot and its report. */
interface Started<C> {
  readonly node: NodeSpec<C>;
  /** Its own cancel, beside the build's signal (a refused guard cancels what only feeds the refused node). */
  readonly cancel: AbortController;
  readonly signal: AbortSignal;
  /** When its timeline starts: when it took its slot, or the heavy slot after waiting for it. */
  started: number;
  heavy: boolean;
}

/** One node, from its slot to its report; whatever it throws fails it (or cancels it, when it was cancelled). */
async function dispatch<C>(d: Dispatch<C>, id: string): Promise<void> {
  const cancel = new AbortController();
  d.cancels.set(id, cancel);
  const n: Started<C> = {
    node: d.s.project.graph.node(id),
    cancel,
    signal: AbortSignal.any([d.options.signal, cancel.signal]),
    started: d.live.running.get(id)!,
    heavy: false,
  };
  try {
    await advance(d, n);
  } catch (e) {
    fail(d, id);
    if (d.options.signal.aborted) finish(d, id, "cancelled", "interrupted while it ran: its output was discarded", n.started);
    else if (cancel.signal.aborted) finish(d, id, "cancelled", String(cancel.signal.reason), n.started);
    else finish(d, id, "failed", (e as Error).message, n.started);
  } finally {
    d.cancels.delete(id);
    if (n.heavy) d.slots.releaseHeavy();
  }
}

/** Fresh or cut off, restored, or guarded, run and published, then the look-ahead. */
async function advance<C>(d: Dispatch<C>, n: Started<C>): Promise<void> {
  const { s, options } = d;
  const node = n.node;
  const id = node.id;
  const depRan = node.deps.some((dep) => d.ran.has(dep));
  // The plan's evaluation stands while no dependency has run since (a no-op build stats once); after
  // one ran, inputs() may read its new output, so the node is evaluated again.
  const plan = depRan ? undefined : s.planned.get(id);
  s.planned.delete(id);
  const evaluation = plan ?? (await evaluate(s, node, Object.fromEntries(node.deps.map((dep) => [dep, s.outputDigests.get(dep)!]))));
  const forced = options.force.has(id);
  if (evaluation.reasons.length === 0 && !forced) {
    s.outputDigests.set(id, s.lock[id]!.output.digest);
    s.fresh.add(id);
    const cut = node.deps.filter((dep) => d.ran.has(dep));
    if (cut.length > 0) finish(d, id, "cutoff", `${cut.join(", ")} reran with identical output`, n.started);
    else finish(d, id, "fresh", "up to date", n.started);
    return;
  }
  const reason = forced ? "forced with --force" : evaluation.reasons.join("; ");
  if (!forced && (await (await import("./restore.ts")).restore(s, node, evaluation, options))) {
    d.ran.add(id);
    // No look-ahead: a restored output was built, and guarded, before; guarding what follows it
    // would cost a chain of restores the seconds it is meant to take.
    finish(d, id, "restored", `from the build cache (${reason})`, n.started);
    return;
  }
  const [{ assertGuarded, lookAhead }, { runNode }] = await Promise.all([import("./guard.ts"), import("./execute.ts")]);
  if (notStarting(d, n, false)) return;
  // Guarded again when a dependency was rebuilt in this build: what could not be checked before the
  // build started (a downloaded model's config, the data's token counts) is checked before it runs.
  // Also a node not guarded yet: it was to be restored, and its cache entry turned out unusable.
  if (depRan || !s.guarded.has(id)) await assertGuarded(s, node);
  let waited = false;
  if (node.weight === "heavy") {
    n.heavy = true;
    waited = await d.slots.takeHeavy(d.live.order.indexOf(id));
    if (waited) {
      // It waited for another heavy node: its timeline starts now.
      n.started = performance.now();
      d.live.running.set(id, n.started);
    }
  }
  if (notStarting(d, n, waited)) return;
  s.fresh.delete(id);
  options.observer.nodeRunning(id, reason);
  await runNode(s, node, evaluation, { ...options, signal: n.signal });
  d.ran.add(id);
  const ended = performance.now();
  // Before the node counts as done: a node that depends on it must not start before its guard ran again.
  const refused = await lookAhead(s, d.live.order, d.live.order.indexOf(id), d.foresight);
  if (refused && !d.stop) refuse(d, id, refused);
  finish(d, id, "ran", reason, n.started, ended);
}

/**
 * Every await since the node took its slot (planning, a restore that fell through, a guard, the heavy slot)
 * may have let another node fail or a refused guard cancel this one: checked again right before anything of
 * this node starts, so that no tool starts after either. True: it was settled as cancelled or skipped.
 */
function notStarting<C>(d: Dispatch<C>, n: Started<C>, waited: boolean): boolean {
  const id = n.node.id;
  const why = d.failure ? `${d.failure} failed` : halted(d);
  if (n.signal.aborted) finish(d, id, "cancelled", d.options.signal.aborted ? "interrupted before it started" : String(n.cancel.signal.reason), n.started);
  else if (why) finish(d, id, "skipped", `not started: ${why}${waited ? " while it waited for the heavy slot" : ""}`, n.started);
  else return false;
  return true;
}

/**
 * A later node's guard refused once `id` was built: the build cannot reach it, and what runs only to feed it
 * stops too. The refusal is about what was built on the way (the model a converter rejects), so that work
 * would most likely be redone: its scratch folder (a training's checkpoints) is kept for the next build.
 */
function refuse<C>(d: Dispatch<C>, id: string, refused: Refusal): void {
  d.stop = refused;
  const feeding = new Set(d.s.project.graph.order([refused.node]));
  const others = [...d.cancels.keys()].filter((o) => o !== id);
  const cancelled = others.filter((o) => feeding.has(o));
  const finishing = others.filter((o) => !feeding.has(o));
  d.options.observer.note(
    id,
    `${refused.node}'s guard refused once ${id} was built: no further node starts` +
      (cancelled.length > 0 ? `; cancelling ${cancelled.join(", ")}, which it needs` : "") +
      (finishing.length > 0 ? `; ${finishing.join(", ")} still running: let finish, their outputs are kept` : ""),
  );
  for (const o of cancelled) d.cancels.get(o)!.abort(`${refused.node}'s guard refused once ${id} was built, so this build cannot reach it: cancelled, its scratch folder kept`);
}

/**
 * Every node's fate, for a build cut short by a signal: the finished ones as they ended, the running ones
 * cancelled (their process groups killed, their staging folders removed), the others not started.
 */
export function interruptedReports(live: LiveBuild | undefined, why: string): NodeReport[] {
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
