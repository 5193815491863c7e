// A bench-only graph shaped like test/fixtures/fake-pipeline.ts (the same app, test/fixtures/fake-app.ts), whose outputs
// can be as big as its inputs: `weights` splits every input file into parts, like a model saved in shards.
//
//   weights (input/*.bin, split in 4) ─► manifest (sizes) ─► report (title)
//
// The fake pipeline cannot hold gigabytes: its `report` node reads its upstream file into one string.
import { writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import type { ConfigSchema } from "../engine/config.ts";
import type { BigConfig, bigSchema } from "./big-schema.ts";
import { assertSuccess } from "../engine/types.ts";
import type { NodeSpec, RunCtx } from "../engine/types.ts";
import { fakeApp, runIfMain } from "../test/fixtures/fake-app.ts";

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

// A build cache only where the config asks for one: the other benchmarks measure the engine without it.
export const bigApp = fakeApp({ name: "big-pipeline", schema: CONFIG, nodes: () => [weights, manifest, report], cache: (config) => config.cache ?? false });

await runIfMain(import.meta.url, bigApp);
