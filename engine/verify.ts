// `verify`: every recorded output hashed again, bypassing the stat cache, and compared with pipeline.lock.
import { outputProblems } from "./plan.ts";
import type { EngineState, NodeState } from "./state.ts";

export async function verify<C>(s: EngineState<C>): Promise<NodeState[]> {
  const states: NodeState[] = [];
  for (const id of s.project.graph.ids) {
    const entry = s.lock[id];
    // A node never built (eval, when only gguf was asked for) has no recorded output to check.
    if (!entry) continue;
    // Bypass the stat cache: verify exists to catch what stat cannot see (bit rot, restored backups).
    const problems = await outputProblems(s, s.project.graph.node(id), entry, false);
    states.push({ id, stale: problems.length > 0, reasons: problems });
  }
  await s.digester.save();
  return states;
}
