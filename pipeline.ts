// Entry point: `npx tsx pipeline.ts <node>`. Wires the config, the stages and the engine's CLI.
//
// Everything here is imported where it is used, not at the top: a build that found everything up to date is
// answered from its record (engine/replay) while nothing it read changed, and loads none of it; otherwise the
// stage modules are imported when the graph is built (stages/index.ts), and the interpreter question below is
// asked while they load.
import { writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { PipelineConfig, pipelineSchema } from "./config/schema.ts";
import type { CliApp } from "./engine/cli.ts";
import type { ConfigSchema } from "./engine/config.ts";
import type { Json } from "./engine/types.ts";
import { main } from "./engine/main.ts";

const usage = async () => `usage: npx tsx pipeline.ts <node> [options]     build a node and the stale nodes it needs
       npx tsx pipeline.ts status [node]            what would run, and exactly why
       npx tsx pipeline.ts check [node]             run the compatibility guards only
       npx tsx pipeline.ts graph                    the graph as Mermaid
       npx tsx pipeline.ts verify                   re-hash outputs against pipeline.lock
       npx tsx pipeline.ts schema                   write pipeline.schema.json for editors
       npx tsx pipeline.ts report [--runs A,B]      the run report: models/report/index.html (charts, settings, eval; --runs: overlay those runs)
       npx tsx pipeline.ts runs [--sort when|loss|eval] [--remote]  every training of this project in the build cache (--remote: and cache.remote)
       npx tsx pipeline.ts runs show ID | diff A B  one run and the -S command that restores it; two runs side by side
       npx tsx pipeline.ts runs push [ID ...]       share runs: each training and what was built from it, to cache.remote
       npx tsx pipeline.ts cache                    the build cache: size, entries per node, the lock's
       npx tsx pipeline.ts gc                       trim the build cache (keeps what pipeline.lock references)
       npx tsx pipeline.ts push [node]              upload the lock's outputs to cache.remote
       npx tsx pipeline.ts pull [node]              download them from cache.remote

nodes: ${(await import("./stages/index.ts")).STAGES.map((s) => s.id).join(", ")}

options:
  --config FILE      the pipeline config (default: pipeline.yaml)
  --force NODE       rebuild NODE even if it is up to date (repeatable)
  --frozen           fail if anything is stale (for CI)
  --dry-run          say what would run, run nothing
  --no-remote        restore from the local build cache only
  -j, --jobs N       run up to N independent nodes at once (default: half the cores, 2 to 4;
                     1: one at a time); two heavy nodes (training, compiling) never run together
  --json             one JSON document on stdout; progress on stderr
  -S KEY=VALUE       this build only: a config key (dotted, e.g. lora.rank=16), pipeline.lock left as committed;
                     repeatable; several values (lora.rank=4,8) sweep every combination, guards of all first
  --save             with -S: write the setting into pipeline.yaml (comments kept) and the build into pipeline.lock
  --memory SIZE      check: plan for a machine with this much memory, e.g. 16GB
  --os macos|linux   check: plan for this OS
`;

/** The store is per user, beside the toolchains: every clone and project on this machine shares it. */
const defaultStore = async () => process.env.MLX_PIPELINE_STORE ?? (await import("./stages/lib/toolchain/paths.ts")).userCacheDir("store");

const CONFIG: ConfigSchema<typeof pipelineSchema> = {
  load: async () => (await import("./config/schema.ts")).pipelineSchema,
  code: [join(import.meta.dirname, "config", "schema.ts")],
};

/** The config, validated, and the build cache settings it gives (cache:, or the per-user store). */
async function loadConfig(configPath: string, root: string) {
  const [{ loadYamlConfig }, { cacheSettings }, store] = await Promise.all([import("./engine/config.ts"), import("./engine/caching/settings.ts"), defaultStore()]);
  const config = await loadYamlConfig(configPath, CONFIG);
  return { config, cache: (c: PipelineConfig = config) => cacheSettings(c.cache, root, store) };
}

const app: CliApp<PipelineConfig> = {
  name: "pipeline.ts",
  defaultConfig: "pipeline.yaml",
  extraOptions: ["memory", "os", "sort", "runs"],
  usage,
  async loadProject(configPath, extra, setting, scope) {
    const root = dirname(configPath);
    const [loaded, { Graph }, { stageNodes }, { toolFile }] = await Promise.all([
      loadConfig(configPath, root),
      import("./engine/graph.ts"),
      import("./stages/index.ts"),
      import("./stages/lib/toolchain/paths.ts"),
    ]);
    let config = loaded.config;
    // check --memory 16GB --os macos: memory.total and memory.os for this command, validated as -S is.
    const flags = [
      ...(extra.memory ? [{ arg: `--memory ${extra.memory}`, path: ["memory", "total"], value: extra.memory }] : []),
      ...(extra.os ? [{ arg: `--os ${extra.os}`, path: ["memory", "os"], value: extra.os }] : []),
    ];
    if (setting.length + flags.length > 0) {
      const { applySetting } = await import("./engine/experiments/overrides.ts");
      config = applySetting(config, [...setting, ...flags], await CONFIG.load(), basename(configPath));
    }
    (await import("./config/reserved-paths.ts")).assertNoReservedPaths(config, root, configPath);
    // The tool's folder, as the stages name their own files (toolFile): those are keyed by their path in it.
    // Python tools buffer stdout in a pipe: unbuffered, a node's progress lines arrive as they are printed.
    return { root, config, outputs: "models", graph: new Graph(await stageNodes(config, root, scope)), cache: loaded.cache(config), toolRoot: toolFile(), toolEnv: { PYTHONUNBUFFERED: "1" } };
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
    async runs(root, configPath, args) {
      const { config, cache } = await loadConfig(configPath, root);
      const { runsCommand } = await import("./experiments/command.ts");
      return runsCommand({ root, cache: cache(), withRemote: args.remote, currentParams: config.lora as unknown as Json, rest: args.rest, json: args.json, sort: args.options.sort, cli: "npx tsx pipeline.ts" });
    },
    async report(root, configPath, args) {
      const { config, cache } = await loadConfig(configPath, root);
      const store = cache();
      const { writeReport } = await import("./report/report.ts");
      const ids = args.options.runs?.split(",").filter(Boolean);
      const experiments = ids && (await import("./experiments/runs.ts"));
      const remote = experiments && args.remote ? await experiments.openRemote(store) : undefined;
      const runs = experiments && experiments.runsAsEarlier(root, await experiments.projectEntries(root, store.dir, remote), config.lora as unknown as Json, ids);
      return writeReport({ root, storeDir: store.dir, memory: config.memory, ...(runs ? { runs: await runs } : {}) });
    },
  },
};

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await main(app, process.argv.slice(2), {
    // MLX_PIPELINE_REPLAY=off: every command runs, none is answered from a record (to measure, or to rule it out).
    replay: process.env.MLX_PIPELINE_REPLAY !== "off",
    prefetch: async () => (await import("./stages/lib/toolchain/python.ts")).prefetchPython(),
  });
}
