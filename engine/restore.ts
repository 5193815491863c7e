// Restoring a stale node's output from the build cache instead of running it: materialized into a staging
// folder, every file's digest checked, then published and recorded like a built output. Loaded only when a
// stale node is reached.
import { rm } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import type { NodeSpec } from "./types.ts";
import { UserError } from "./types.ts";
import { outputOf, RACY_MARGIN_MS } from "./digest.ts";
import { entryFiles, type Manifest } from "./caching/cache.ts";
import { buildCacheOf, lockedOutput } from "./plan.ts";
import { commit } from "./execute.ts";
import type { BuildObserver, EngineState, Evaluation } from "./state.ts";

/** True when the node's output was restored; false: run the node. */
export async function restore<C>(s: EngineState<C>, node: NodeSpec<C>, evaluation: Evaluation, options: { observer: BuildObserver }): Promise<boolean> {
  const cache = await buildCacheOf(s);
  if (!cache) return false;
  const say = (line: string) => options.observer.note(node.id, line);
  let manifest: Manifest | undefined;
  try {
    // With the lock's entry for this fingerprint, only its output is restored: one that differs would rewrite the lock.
    const want = lockedOutput(s, node.id, evaluation.fingerprint);
    manifest = await cache.lookup(node.id, evaluation.fingerprint, (line) => options.observer.progress(node.id, `fetching from the remote cache: ${line}`), want);
  } catch (e) {
    if (e instanceof UserError && e.exitCode === 2) throw e;
    say(`warning: ${(e as Error).message}; running the node instead`);
    return false;
  }
  if (!manifest) return false;
  const staging = await s.store.createStaging(node.id);
  s.stagings.add(staging);
  try {
    try {
      await cache.local.materialize(manifest, staging);
    } catch (e) {
      say(`warning: the build cache entry in ${cache.local.dir} is incomplete (${(e as Error).message}): discarded, running the node instead`);
      await cache.local.discard(manifest, []);
      return false;
    }
    await sleep(RACY_MARGIN_MS);
    const output = outputOf(await s.digester.tree(staging), node.records);
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
    await s.store.publish(node.id, staging);
    s.stagings.delete(staging);
    await commit(s, node.id, evaluation, manifest.output, manifest.facts);
    return true;
  } finally {
    if (s.stagings.delete(staging)) await rm(staging, { recursive: true, force: true });
  }
}
