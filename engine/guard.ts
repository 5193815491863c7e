// Guards: every node's cheap checks before anything expensive runs, and the look-ahead that asks the later
// nodes' guards again once an output they read was built. Loaded only when some node will run.
import type { Fingerprint, NodeSpec, NodeVerdict, TreeDigest } from "./types.ts";
import { UserError } from "./types.ts";
import { formatVerdicts } from "./verdicts.ts";
import { buildCacheOf, ctxOf, evaluate, lockedOutput, status } from "./plan.ts";
import type { EngineState, Evaluation } from "./state.ts";

/** A later node's guard that failed once an output it reads was built: the build stops there. */
export interface Refusal {
  readonly node: string;
  readonly after: string;
  readonly message: string;
}

/** What one build's look-ahead knows of it: forced nodes, finished nodes, the plans made before it, cache answers. */
export interface Foresight {
  readonly force: ReadonlySet<string>;
  readonly done: (id: string) => boolean;
  readonly plans: ReadonlyMap<string, Evaluation>;
  readonly peeked: Map<Fingerprint, Promise<TreeDigest | undefined>>;
}

/** The guards of every node on the way to the target (or of those in `only`). */
export async function guards<C>(s: EngineState<C>, target: string, only?: ReadonlySet<string>): Promise<NodeVerdict[]> {
  if (!s.assessed) await status(s, target); // which outputs are fresh, so guards read only those
  const verdicts: NodeVerdict[] = [];
  for (const id of s.project.graph.order([target]).filter((n) => !only || only.has(n))) {
    verdicts.push(...(await guardNode(s, s.project.graph.node(id))));
  }
  return verdicts;
}

/** One node's verdicts; a guard that throws is itself an error verdict. */
export async function guardNode<C>(s: EngineState<C>, node: NodeSpec<C>): Promise<NodeVerdict[]> {
  s.guarded.add(node.id);
  try {
    return (await node.guard(ctxOf(s))).map((v) => ({ node: node.id, ...v }));
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

/** A node's guard errors, thrown as one UserError: what a node that is about to run must not start with. */
export async function assertGuarded<C>(s: EngineState<C>, node: NodeSpec<C>): Promise<void> {
  const errors = (await guardNode(s, node)).filter((v) => v.level === "error");
  if (errors.length > 0) throw new UserError(formatVerdicts(errors));
}

/**
 * Once `order[index]` has run and has a new output, the guards of the later nodes that depend on it, directly or not,
 * and will run, run again: what they could not see before the build (a model built in this build: its tokenizer, the
 * converter's verdict on it) stops the build now, not after the expensive nodes in between (training,
 * before a GGUF export that would fail). A node that will be cut off or restored runs no tool, so its guard
 * has nothing to refuse: a toolchain rebuilt on a new machine with the lock's bytes must not have the memory
 * guard refuse a training that is then restored.
 */
export async function lookAhead<C>(s: EngineState<C>, order: readonly string[], index: number, foresight: Foresight): Promise<Refusal | undefined> {
  const after = order[index]!;
  const outcome = outcomes(s, foresight);
  const affected = new Set([after]);
  for (const id of order.slice(index + 1)) {
    const node = s.project.graph.node(id);
    if (!node.deps.some((d) => affected.has(d))) continue;
    affected.add(id);
    if ((await outcome(id)) !== undefined) continue;
    const errors = (await guardNode(s, node)).filter((v) => v.level === "error");
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
function outcomes<C>(s: EngineState<C>, foresight: Foresight): (id: string) => Promise<TreeDigest | undefined> {
  const memo = new Map<string, Promise<TreeDigest | undefined>>();
  const predict = async (id: string): Promise<TreeDigest | undefined> => {
    if (foresight.done(id)) return s.outputDigests.get(id);
    if (foresight.force.has(id)) return undefined;
    const node = s.project.graph.node(id);
    const upstream: Record<string, TreeDigest> = {};
    for (const d of node.deps) {
      const digest = await outcome(d);
      if (digest === undefined) return undefined;
      upstream[d] = digest;
    }
    const plan = foresight.plans.get(id);
    let evaluation: Evaluation;
    try {
      evaluation = plan && node.deps.every((d) => plan.parts.upstream[d] === upstream[d]) ? plan : await evaluate(s, node, upstream);
    } catch {
      return undefined; // its inputs cannot be read before its dependencies are built: taken to run
    }
    if (evaluation.reasons.length === 0) return s.lock[id]?.output.digest;
    const cache = buildCacheOf(s);
    if (!cache) return undefined;
    let peek = foresight.peeked.get(evaluation.fingerprint);
    if (!peek) {
      // A remote that cannot answer makes the node one that runs: guarded, as it would be without a cache.
      peek = cache.then((c) => c.peek(id, evaluation.fingerprint, lockedOutput(s, id, evaluation.fingerprint))).then((m) => m?.output.digest, () => undefined);
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
