// Running one node and publishing what it made: into a fresh staging folder, inputs re-checked after the
// run, kept in the build cache, renamed into place, then recorded in pipeline.lock (`commit`, which a
// restore shares). Loaded only when a node runs or is restored.
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Json, NodeSpec, OutputDigests, RunCtx, TreeDigest } from "./types.ts";
import { UserError } from "./types.ts";
import { outputOf, RACY_MARGIN_MS } from "./digest.ts";
import { explainChange } from "./fingerprint.ts";
import { lockProject, writeLockEntries, type LockEntry } from "./lockfile.ts";
import { execLogged } from "./exec.ts";
import { buildCacheOf, COMMITTED_BYTES, ctxOf, evaluate, lockedOutput, NOT_REPRODUCIBLE, publishedPath } from "./plan.ts";
import type { BuildObserver, EngineState, Evaluation } from "./state.ts";

export async function runNode<C>(
  s: EngineState<C>,
  node: NodeSpec<C>,
  evaluation: Evaluation,
  options: { signal: AbortSignal; observer: BuildObserver },
): Promise<void> {
  await s.store.assertPublishable(node.id); // before the work, not after it
  const started = new Date();
  const staging = await s.store.createStaging(node.id);
  s.stagings.add(staging);
  const scratch = join(s.cacheDir, "scratch", node.id, evaluation.fingerprint.slice(0, 16));
  const logPath = join(s.cacheDir, "logs", `${node.id}.log`);
  await mkdir(scratch, { recursive: true });
  await rm(logPath, { force: true });
  const facts: Record<string, Json> = {};
  const toolEnv = s.project.toolEnv ?? {};
  const ctx: RunCtx<C> = {
    ...ctxOf(s),
    staging,
    scratch,
    signal: options.signal,
    inputDigests: evaluation.parts.files,
    record: (more) => Object.assign(facts, more),
    exec: (command, args, execOptions) => execLogged(command, args, logPath, options.signal, { ...execOptions, env: { ...toolEnv, ...execOptions?.env } }),
    progress: (line) => options.observer.progress(node.id, line),
    note: (line) => options.observer.note(node.id, line),
  };
  try {
    await node.run(ctx);
    // A node cancelled while it ran code of its own (no tool to kill) is not published either.
    if (options.signal.aborted) throw new UserError(`${node.id} was cancelled while it ran: its output was discarded.`);
    // Inputs re-checked: an input edited while the node ran means the output may be of neither version.
    const after = await evaluate(s, node, evaluation.parts.upstream as Record<string, TreeDigest>);
    const changed = explainChange(evaluation.parts, after.parts);
    if (changed.length > 0) {
      throw new UserError(`inputs changed while ${node.id} ran (${changed.join("; ")}): its output was discarded. Run the build again.`);
    }
    // Let the racy-mtime window pass so the output's digests can be cached.
    await sleep(RACY_MARGIN_MS);
    const output = outputOf(await s.digester.tree(staging), node.records);
    // Kept by content before it is published: the staging folder is still the engine's alone.
    const cache = await buildCacheOf(s);
    await cache?.record(node.id, evaluation.fingerprint, output, staging, facts, {
      params: evaluation.parts.params,
      project: await lockProject(s.lockPath),
      upstream: evaluation.parts.upstream,
      built: started.toISOString(),
      seconds: Math.round((Date.now() - started.getTime()) / 100) / 10,
    }).catch((e: unknown) => {
      options.observer.note(node.id, `warning: not kept in the build cache ${cache.local.dir}: ${(e as Error).message}`);
    });
    await s.store.publish(node.id, staging);
    s.stagings.delete(staging);
    const locked = lockedOutput(s, node.id, evaluation.fingerprint);
    if (locked !== undefined && locked !== output.digest) {
      options.observer.note(
        node.id,
        `warning: rebuilt from the same inputs as pipeline.lock's entry, with other bytes (${whyOtherBytes(node.conditions, s.lock[node.id]?.facts, facts)}); ` +
          `pipeline.lock now records this build. To have the committed bytes instead, \`git checkout pipeline.lock\` and build again: ${COMMITTED_BYTES}.`,
      );
    }
    await commit(s, node.id, evaluation, output, facts);
    await rm(scratch, { recursive: true, force: true });
  } finally {
    if (s.stagings.delete(staging)) await rm(staging, { recursive: true, force: true });
  }
}

/** The node's conditions that differ between the lock's build and this one, or why bytes can differ at all. */
function whyOtherBytes(conditions: readonly string[] = [], locked: Readonly<Record<string, Json>> = {}, here: Readonly<Record<string, Json>>): string {
  const shown = (v: Json | undefined) => (v === undefined ? "unrecorded" : JSON.stringify(v));
  const differ = conditions.filter((key) => shown(locked[key]) !== shown(here[key]));
  if (differ.length === 0) return NOT_REPRODUCIBLE;
  return `made with ${differ.map((key) => `${key} ${shown(locked[key])} in pipeline.lock, ${shown(here[key])} here`).join("; ")}`;
}

/**
 * Writes a published output's lock entry: the same for a node that ran and one restored. The lock's own
 * entry for this fingerprint and output digest is kept as committed (its records and facts may differ from
 * this run's), so a rebuild with identical results leaves pipeline.lock unchanged.
 */
export async function commit<C>(
  s: EngineState<C>,
  id: string,
  evaluation: Evaluation,
  output: OutputDigests,
  facts: Readonly<Record<string, Json>> | undefined,
): Promise<void> {
  if (lockedOutput(s, id, evaluation.fingerprint) !== output.digest) {
    const entry: LockEntry = {
      ...evaluation.parts,
      fingerprint: evaluation.fingerprint,
      output,
      ...(facts && Object.keys(facts).length > 0 ? { facts } : {}),
    };
    // One writer: each write reads the file and adds its entry, so two at once could lose one of them.
    if (s.writeLock) {
      const write = s.lockWrites.then(() => writeLockEntries(s.lockPath, s.cacheDir, { [id]: entry }));
      s.lockWrites = write.catch(() => undefined);
      await write;
    }
    s.lock = { ...s.lock, [id]: entry };
  }
  // Only a hint for status's wording: a lost write makes an output that differs from the lock read as edited.
  await mkdir(join(s.cacheDir, "published"), { recursive: true });
  await writeFile(publishedPath(s, id), `${evaluation.fingerprint} ${output.digest}\n`).catch(() => undefined);
  s.outputDigests.set(id, output.digest);
  s.fresh.add(id);
}
