// A bench-only graph shaped like test/fixtures/fake-pipeline.ts (same imports, same CLI), whose outputs
// can be as big as its inputs: `weights` splits every input file into parts, like a model saved in shards.
//
//   weights (input/*.bin, split in 4) ─► manifest (sizes) ─► report (title)
//
// The fake pipeline cannot hold gigabytes: its `report` node reads its upstream file into one string.
import { writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { runCli } from "../engine/cli.ts";
import { loadYamlConfig, type ConfigSchema } from "../engine/config.ts";
import type { BigConfig, bigSchema } from "./big-schema.ts";
import { Graph } from "../engine/graph.ts";
import { cacheSettings } from "../engine/caching/settings.ts";
import { assertSuccess } from "../engine/exec.ts";
import type { NodeSpec, RunCtx } from "../engine/types.ts";

const CONFIG: ConfigSchema<typeof bigSchema> = {
  load: async () => (await import("./big-schema.ts")).bigSchema,
  code: [join(import.meta.dirname, "big-schema.ts")],
};

async function shell(ctx: RunCtx<BigConfig>, what: string, script: string): Promise<void> {
  assertSuccess(await ctx.exec("sh", ["-c", script], { cwd: ctx.root }), `${what}'s command`);
}

const weights: NodeSpec<BigConfig> = {
  id: "weights",
  deps: [],
  description: "splits every input file into parts",
  inputs: (ctx) => ({ files: [ctx.config.inputs], params: { inputs: ctx.config.inputs, parts: ctx.config.parts }, tools: {}, command: "split" }),
  guard: () => [],
  run: async (ctx) => {
    const files = Object.keys(ctx.inputDigests);
    const script = files
      .map((f) => `split --number=${ctx.config.parts} --numeric-suffixes=1 '${f}' '${join(ctx.staging, basename(f, ".bin"))}.part'`)
      .join(" && ");
    await shell(ctx, "weights", script || "true");
  },
};

const manifest: NodeSpec<BigConfig> = {
  id: "manifest",
  deps: ["weights"],
  description: "lists the parts and their sizes",
  inputs: (ctx) => ({ files: [], params: {}, tools: { fake: ctx.config.tools.fake }, command: "wc -c" }),
  guard: () => [],
  run: (ctx) => shell(ctx, "manifest", `cd '${ctx.upstream("weights")}/' && wc -c * > '${ctx.staging}/manifest.txt'`),
};

const report: NodeSpec<BigConfig> = {
  id: "report",
  deps: ["manifest"],
  description: "adds a title",
  inputs: (ctx) => ({ files: [], params: { title: ctx.config.report.title }, tools: {}, command: "report" }),
  guard: () => [],
  run: async (ctx) => {
    await writeFile(join(ctx.staging, "report.txt"), `# ${ctx.config.report.title}\n`);
  },
};

export const bigApp = {
  name: "big-pipeline",
  defaultConfig: "pipeline.yaml",
  usage: "usage: big-pipeline <node> | status | check | graph | verify\n",
  async loadProject(configPath: string) {
    const config = await loadYamlConfig(configPath, CONFIG);
    const root = dirname(configPath);
    const cache = config.cache && cacheSettings(config.cache, root, join(root, "cache", "store"));
    return { root, config, outputs: "models", graph: new Graph([weights, manifest, report]), ...(cache ? { cache } : {}) };
  },
};

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await runCli(bigApp, process.argv.slice(2));
}
