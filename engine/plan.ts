// Planning: a node's fingerprint and why it is stale, what guards and inputs may see, and `status` (what a
// build of a target would do, without running anything).
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { BaseCtx, Fingerprint, NodeSpec, TreeDigest } from "./types.ts";
import { outputOf } from "./digest.ts";
import { explainChange, fingerprintOf, type FingerprintParts } from "./fingerprint.ts";
import type { LockEntry } from "./lockfile.ts";
import type { BuildCache } from "./caching/build-cache.ts";
import type { EngineState, Evaluation, NodeState } from "./state.ts";

/** What to do when a rebuild gives other bytes than pipeline.lock's for the same inputs, said in a build and by status. */
export const COMMITTED_BYTES = "`pull`, or a build cache that holds the lock's output, gets the committed bytes";
export const NOT_REPRODUCIBLE = "not every tool is bit-reproducible across machines and library versions, training among them";

/** What guards and inputs see: the config, the root, and the published outputs. */
export function ctxOf<C>(s: EngineState<C>): BaseCtx<C> {
  return {
    config: s.project.config,
    root: s.project.root,
    upstream: (id) => s.store.path(id),
    // A lock entry is not enough: a fresh clone has the lock but no outputs, and an output made from other
    // inputs (another model's tokenizer) would mislead a guard.
    isBuilt: (id) => s.fresh.has(id),
  };
}

/** The build cache, loaded on first use: a no-op build never needs it. Undefined when none is configured. */
export function buildCacheOf<C>(s: EngineState<C>): Promise<BuildCache> | undefined {
  const settings = s.project.cache;
  if (!settings) return undefined;
  s.cache ??= import("./caching/build-cache.ts").then(({ BuildCache }) => new BuildCache(settings, s.remote));
  return s.cache;
}

/** The output digest pipeline.lock records for this fingerprint of the node: the only output a restore may bring. */
export function lockedOutput<C>(s: EngineState<C>, id: string, fingerprint: Fingerprint): TreeDigest | undefined {
  const entry = s.lock[id];
  return entry?.fingerprint === fingerprint ? entry.output.digest : undefined;
}

/** Fingerprint and staleness of one node, assuming its dependencies' outputs are final. */
export async function evaluate<C>(s: EngineState<C>, node: NodeSpec<C>, upstream: Record<string, TreeDigest>): Promise<Evaluation> {
  const inputs = await node.inputs(ctxOf(s));
  const parts: FingerprintParts = {
    params: inputs.params,
    files: await s.digester.inputs(s.project.root, inputs.files, s.project.toolRoot),
    upstream,
    tools: inputs.tools,
    command: inputs.command,
  };
  const fingerprint = fingerprintOf(node.id, parts);
  const entry = s.lock[node.id];
  const reasons: string[] = [];
  if (!entry) {
    reasons.push("never built");
  } else {
    if (entry.fingerprint !== fingerprint) {
      const why = explainChange(entry, parts);
      reasons.push(...(why.length > 0 ? why : ["fingerprint changed"]));
    }
    reasons.push(...(await outputProblems(s, node, entry)));
  }
  return { parts, fingerprint, reasons };
}

/**
 * Why a node's published output cannot be trusted: missing, edited by hand, its outside parts gone, or not the
 * lock's though built here as published (the lock changed under it, or a rebuild gave other bytes).
 */
export async function outputProblems<C>(s: EngineState<C>, node: NodeSpec<C>, entry: LockEntry, trustCache = true): Promise<string[]> {
  const dir = s.store.path(node.id);
  const missing = await s.store.missing(node.id);
  if (missing) return [missing];
  const { digest, files } = outputOf(await s.digester.tree(dir, trustCache), node.records);
  const problems: string[] = [];
  if (digest !== entry.output.digest) {
    const published = await publishedRecord(s, node.id);
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
export function publishedPath<C>(s: EngineState<C>, id: string): string {
  return join(s.cacheDir, "published", id);
}

async function publishedRecord<C>(s: EngineState<C>, id: string): Promise<{ fingerprint: Fingerprint; digest: TreeDigest } | undefined> {
  const text = await readFile(publishedPath(s, id), "utf8").catch(() => "");
  // The engine's own two digests; anything else (torn, hand-edited) is no record.
  const m = /^([0-9a-f]{64}) ([0-9a-f]{64})\n$/.exec(text);
  return m ? { fingerprint: m[1] as Fingerprint, digest: m[2] as TreeDigest } : undefined;
}

/**
 * What a build of `target` would run and why, without running anything. `restores: false` leaves the build
 * cache unasked (whether anything is stale is all the answer is for), so a remote is not called.
 */
export async function status<C>(s: EngineState<C>, target: string, options: { restores?: boolean } = {}): Promise<NodeState[]> {
  const graph = s.project.graph;
  const order = graph.order([target]);
  const recorded = (d: string) => s.lock[d]?.output.digest ?? ("none" as TreeDigest);
  // Every node is evaluated at once: the upstream digests come from the lock, so the evaluations are
  // independent reads, and a slow one (a Python shim asked its version) overlaps the others.
  const evaluations = new Map(
    order.map((id) => {
      const node = graph.node(id);
      const upstream = Object.fromEntries(node.deps.map((d) => [d, recorded(d)]));
      const planned = evaluate(s, node, upstream).then((e) => (s.planned.set(id, e), e));
      planned.catch(() => undefined); // handled below, in order; not an unhandled rejection meanwhile
      return [id, planned];
    }),
  );
  const states: NodeState[] = [];
  const stale = new Set<string>();
  s.assessed = true;
  /** The output digest each node will have after the build, where known: the lock's, or a cache entry's. */
  const predicted = new Map<string, TreeDigest>();
  for (const id of order) {
    const node = graph.node(id);
    const staleDeps = node.deps.filter((d) => stale.has(d) && !predicted.has(d));
    let evaluation: Evaluation | undefined;
    let reasons: string[];
    try {
      evaluation = await evaluations.get(id)!;
      // An upstream that will be restored has a known new output: evaluated against it, a chain of restores shows.
      if (staleDeps.length === 0 && node.deps.some((d) => predicted.get(d) !== recorded(d))) {
        evaluation = await evaluate(s, node, Object.fromEntries(node.deps.map((d) => [d, predicted.get(d)!])));
        s.planned.set(id, evaluation);
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
    else if (staleDeps.length === 0 && evaluation && s.project.cache && options.restores !== false) {
      const manifest = await (await buildCacheOf(s))!.peek(id, evaluation.fingerprint, lockedOutput(s, id, evaluation.fingerprint));
      if (manifest) {
        restore = true;
        predicted.set(id, manifest.output.digest);
      }
    }
    if (reasons.length > 0) {
      stale.add(id);
      s.fresh.delete(id);
    } else s.fresh.add(id);
    states.push({ id, stale: reasons.length > 0, ...(restore ? { restore } : {}), reasons });
  }
  return states;
}
