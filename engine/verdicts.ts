// Renders guard verdicts as one table, so every problem is seen at once.
import type { NodeVerdict } from "./types.ts";

const MARK = { ok: "ok", warn: "WARN", error: "ERROR" } as const;

export function formatVerdicts(verdicts: readonly NodeVerdict[]): string {
  if (verdicts.length === 0) return "No checks to report.";
  const nodeWidth = Math.max(4, ...verdicts.map((v) => v.node.length));
  const rows = verdicts.map((v) => {
    const head = `${v.node.padEnd(nodeWidth)}  ${MARK[v.level].padEnd(5)}  ${v.message}`;
    return v.fix ? `${head}\n${" ".repeat(nodeWidth + 9)}→ ${v.fix}` : head;
  });
  return [`${"node".padEnd(nodeWidth)}  level  found / what to do`, ...rows].join("\n");
}
