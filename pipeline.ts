// Entry point: `npx tsx pipeline.ts <node>`. Wires the config, the stages and the engine's CLI.
//
// The engine and the stages are imported where they are used, not at the top: a warm no-op is mostly
// module loading, and the interpreter question below is asked while they load.
import { writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { PipelineConfig, pipelineSchema } from "./config/schema.ts";
import type { CliApp } from "./engine/cli.ts";
import { loadYamlConfig, type ConfigSchema } from "./engine/config.ts";
import { Graph } from "./engine/graph.ts";
import { UserError, type NodeSpec } from "./engine/types.ts";
import { prefetchPython } from "./stages/lib/python.ts";
import { toolFile, userCacheDir } from "./stages/lib/paths.ts";
import { cacheSettings } from "./engine/caching/settings.ts";

const USAGE = `usage: npx tsx pipeline.ts <node> [options]     build a node and the stale nodes it needs
       npx tsx pipeline.ts status [node]            what would run, and exactly why
       npx tsx pipeline.ts check [node]             run the compatibility guards only
       npx tsx pipeline.ts graph                    the graph as Mermaid
       npx tsx pipeline.ts verify                   re-hash outputs against pipeline.lock
       npx tsx pipeline.ts schema                   write pipeline.schema.json for editors
       npx tsx pipeline.ts report                   the run report: models/report/index.html (charts, settings, eval)
       npx tsx pipeline.ts cache                    the build cache: size, entries per node, the lock's
       npx tsx pipeline.ts gc                       trim the build cache (keeps what pipeline.lock references)
       npx tsx pipeline.ts push [node]              upload the lock's outputs to cache.remote
       npx tsx pipeline.ts pull [node]              download them from cache.remote

nodes: mlx-env, llama-cpp, quantizer, model, data, formatted, adapters, fused, hf, gguf, eval,
       lora-gguf, base-gguf, llama-server, deploy

options:
  --config FILE      the pipeline config (default: pipeline.yaml)
  --force NODE       rebuild NODE even if it is up to date (repeatable)
  --frozen           fail if anything is stale (for CI)
  --dry-run          say what would run, run nothing
  --no-remote        restore from the local build cache only
  -j, --jobs N       run up to N independent nodes at once (default: half the cores, 2 to 4;
                     1: one at a time); two heavy nodes (training, compiling) never run together
  --json             one JSON document on stdout; progress on stderr
  --memory SIZE      check: plan for a machine with this much memory, e.g. 16GB
  --os macos|linux   check: plan for this OS
`;

async function buildGraph(config: PipelineConfig, root: string): Promise<Graph<PipelineConfig>> {
  const [{ mlxEnv }, { llamaCppNode }, { quantizerNode }, { modelNode }, { dataNode }, { formattedNode }, { adaptersNode }, { fusedNode }, { hfNode }, { ggufNode }, { evalNode }, { loraGgufNode }, { baseGgufNode }, { llamaServerNode }, { deployNode }, { withStageCode }, { withWeight }] =
    await Promise.all([
      import("./stages/mlx-env.ts"),
      import("./stages/llama-cpp.ts"),
      import("./stages/quantizer.ts"),
      import("./stages/model.ts"),
      import("./stages/data.ts"),
      import("./stages/formatted.ts"),
      import("./stages/adapters.ts"),
      import("./stages/fused.ts"),
      import("./stages/hf.ts"),
      import("./stages/gguf.ts"),
      import("./stages/eval.ts"),
      import("./stages/lora-gguf.ts"),
      import("./stages/base-gguf.ts"),
      import("./stages/llama-server.ts"),
      import("./stages/deploy.ts"),
      import("./stages/lib/code.ts"),
      import("./stages/lib/weights.ts"),
    ]);
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
    evalNode(config),
    loraGgufNode,
    baseGgufNode,
    llamaServerNode,
    deployNode,
  ];
  // A stage's own code is an input of its output; its weight only says how it is scheduled.
  return new Graph(nodes.map(withStageCode).map((n) => withWeight(n, config, root)));
}

/** The store is per user, beside the toolchains: every clone and project on this machine shares it. */
const defaultStore = () => process.env.MLX_PIPELINE_STORE ?? userCacheDir("store");

const CONFIG: ConfigSchema<typeof pipelineSchema> = {
  load: async () => (await import("./config/schema.ts")).pipelineSchema,
  code: [join(import.meta.dirname, "config", "schema.ts")],
};

const app: CliApp<PipelineConfig> = {
  name: "pipeline.ts",
  defaultConfig: "pipeline.yaml",
  extraOptions: ["memory", "os"],
  usage: USAGE,
  async loadProject(configPath, extra) {
    let config = await loadYamlConfig(configPath, CONFIG);
    if (extra.memory || extra.os) {
      const memory = { ...config.memory, ...(extra.memory ? { total: extra.memory } : {}), ...(extra.os ? { os: extra.os } : {}) };
      const parsed = (await CONFIG.load()).safeParse({ ...config, memory });
      if (!parsed.success) throw new UserError(`--memory/--os: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`, 2);
      config = parsed.data;
    }
    const root = dirname(configPath);
    (await import("./config/reserved-paths.ts")).assertNoReservedPaths(config, root, configPath);
    const cache = cacheSettings(config.cache, root, defaultStore());
    // The tool's folder, as the stages name their own files (toolFile): those are keyed by their path in it.
    return { root, config, graph: await buildGraph(config, root), cache, toolRoot: toolFile() };
  },
  async checkReport(ctx) {
    const { memoryFor } = await import("./stages/adapters.ts");
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
      const { jsonSchema, SCHEMA_FILE } = await import("./config/schema.ts");
      await writeFile(join(root, SCHEMA_FILE), jsonSchema());
      return `wrote ${join(root, SCHEMA_FILE)}`;
    },
    async report(root, configPath) {
      const config = await loadYamlConfig(configPath, CONFIG);
      const store = cacheSettings(config.cache, root, defaultStore());
      const { writeReport } = await import("./report/report.ts");
      return writeReport({ root, storeDir: store.dir, memory: config.memory });
    },
  },
};

if (import.meta.url === `file://${process.argv[1]}`) {
  prefetchPython();
  const { runCli } = await import("./engine/cli.ts");
  process.exitCode = await runCli(app, process.argv.slice(2));
}
