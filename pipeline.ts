// Entry point: `npx tsx pipeline.ts <node>`. Wires the config, the stages and the engine's CLI.
import { writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { z } from "zod";
import { pipelineSchema, type PipelineConfig } from "./config/schema.ts";
import { runCli, type CliApp } from "./engine/cli.ts";
import { loadYamlConfig } from "./engine/config.ts";
import { Graph } from "./engine/graph.ts";
import type { NodeSpec } from "./engine/types.ts";
import { mlxEnv } from "./stages/mlx-env.ts";
import { modelNode } from "./stages/model.ts";
import { dataNode } from "./stages/data.ts";
import { formattedNode } from "./stages/formatted.ts";
import { adaptersNode, memoryFor } from "./stages/adapters.ts";
import { fusedNode } from "./stages/fused.ts";
import { llamaCppNode } from "./stages/llama-cpp.ts";
import { quantizerNode } from "./stages/quantizer.ts";
import { hfNode } from "./stages/hf.ts";
import { ggufNode } from "./stages/gguf.ts";

const USAGE = `usage: npx tsx pipeline.ts <node> [options]     build a node and the stale nodes it needs
       npx tsx pipeline.ts status [node]            what would run, and exactly why
       npx tsx pipeline.ts check [node]             run the compatibility guards only
       npx tsx pipeline.ts graph                    the graph as Mermaid
       npx tsx pipeline.ts verify                   re-hash outputs against pipeline.lock
       npx tsx pipeline.ts schema                   write pipeline.schema.json for editors

nodes: mlx-env, llama-cpp, quantizer, model, data, formatted, adapters, fused, hf, gguf

options:
  --config FILE      the pipeline config (default: pipeline.yaml)
  --force NODE       rebuild NODE even if it is up to date (repeatable)
  --frozen           fail if anything is stale (for CI)
  --dry-run          say what would run, run nothing
  --json             one JSON document on stdout; progress on stderr
  --memory SIZE      check: plan for a machine with this much memory, e.g. 16GB
  --os macos|linux   check: plan for this OS
`;

export function buildGraph(config: PipelineConfig, root: string): Graph<PipelineConfig> {
  const nodes: NodeSpec<PipelineConfig>[] = [
    mlxEnv,
    llamaCppNode,
    ...(config.gguf.quantize ? [quantizerNode] : []),
    modelNode(config, root),
    dataNode,
    formattedNode,
    adaptersNode,
    fusedNode,
    hfNode,
    ggufNode(config),
  ];
  return new Graph(nodes);
}

export const SCHEMA_FILE = "pipeline.schema.json";

export function jsonSchema(): string {
  return JSON.stringify(z.toJSONSchema(pipelineSchema, { io: "input" }), null, 2) + "\n";
}

const app: CliApp<PipelineConfig> = {
  name: "pipeline.ts",
  defaultConfig: "pipeline.yaml",
  extraOptions: ["memory", "os"],
  usage: USAGE,
  async loadProject(configPath, extra) {
    const config = await loadYamlConfig(configPath, pipelineSchema);
    const memory = { ...config.memory, ...(extra.memory ? { total: extra.memory } : {}), ...(extra.os ? { os: extra.os } : {}) };
    const withMemory = pipelineSchema.parse({ ...config, memory });
    const root = dirname(configPath);
    return { root, config: withMemory, graph: buildGraph(withMemory, root) };
  },
  async checkReport(ctx) {
    const report = await memoryFor(ctx).catch(() => undefined);
    if (!report) return undefined;
    const b = report.estimate.breakdown;
    const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;
    const rows = Object.entries(b).map(([k, v]) => `  ${k.padEnd(14)} ${gib(v)}`);
    return {
      json: { memory: { estimatedPeakBytes: Math.round(report.estimate.peakBytes), usableBytes: Math.round(report.machine.usableBytes), machine: report.machine.label, breakdown: { ...b } } },
      text: [`memory estimate for ${report.machine.label}:`, ...rows, `  ${"peak".padEnd(14)} ${gib(report.estimate.peakBytes)} of ${gib(report.machine.usableBytes)} usable`].join("\n"),
    };
  },
  commands: {
    async schema(root) {
      await writeFile(join(root, SCHEMA_FILE), jsonSchema());
      return `wrote ${join(root, SCHEMA_FILE)}`;
    },
  },
};

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await runCli(app, process.argv.slice(2));
}
