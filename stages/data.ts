// Node data: validates the jsonl files, shuffles them deterministically and splits train/valid/test.
import { writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { PipelineConfig } from "../config/schema.ts";
import type { NodeSpec, Verdict } from "../engine/types.ts";
import { UserError } from "../engine/types.ts";
import type { Example, Located } from "./lib/data/dataset.ts";

export const SPLITS = ["train", "valid", "test"] as const;
export type Split = (typeof SPLITS)[number];
export const ORIGINS = "origins.json";
// The readers and the shuffle are imported where they are used: a no-op build loads this module for its inputs alone.

/** The data files, as globs relative to the project, in a stable order. */
async function sourceFiles(config: PipelineConfig, root: string): Promise<Record<Split, string[]> | string[]> {
  if (config.data.splits) {
    const { train, valid, test } = config.data.splits;
    return { train: [resolve(root, train)], valid: [resolve(root, valid)], test: test ? [resolve(root, test)] : [] };
  }
  const { default: fg } = await import("fast-glob");
  const files = (await fg(config.data.files, { cwd: root, absolute: true, onlyFiles: true })).sort();
  if (files.length === 0) {
    throw new UserError(`data.files (${config.data.files.join(", ")}) matches no file in ${root}. Point it at your jsonl files.`);
  }
  return files;
}

/** Fisher–Yates with a seeded generator: the same seed gives the same order on every machine. */
export async function shuffle<T>(items: readonly T[], seed: number): Promise<T[]> {
  const [{ uniformInt }, { xoroshiro128plus }] = await Promise.all([import("pure-rand/distribution/uniformInt"), import("pure-rand/generator/xoroshiro128plus")]);
  const out = [...items];
  const rng = xoroshiro128plus(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = uniformInt(rng, 0, i);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Examples per split, after validation, shuffling and splitting. */
export async function loadSplits(config: PipelineConfig, root: string): Promise<Record<Split, Located<Example>[]>> {
  const { DataErrors, readExamples } = await import("./lib/data/dataset.ts");
  const sources = await sourceFiles(config, root);
  let splits: Record<Split, Located<Example>[]>;
  if (Array.isArray(sources)) {
    // mlx-lm batches consecutive lines, so unshuffled data (sorted by topic or length) trains badly.
    const all = await shuffle(await readExamples(sources, root), config.data.seed);
    const nValid = Math.round(all.length * config.data.valid_fraction);
    const nTest = Math.round(all.length * config.data.test_fraction);
    splits = { valid: all.slice(0, nValid), test: all.slice(nValid, nValid + nTest), train: all.slice(nValid + nTest) };
  } else {
    const [train, valid, test] = await Promise.all(SPLITS.map((s) => readExamples(sources[s], root)));
    splits = { train: await shuffle(train!, config.data.seed), valid: valid!, test: test! };
  }
  const formats = new Set(SPLITS.flatMap((s) => splits[s].slice(0, 1).map((e) => e.value.format)));
  if (formats.size > 1) throw new DataErrors([`the splits mix forms (${[...formats].join(", ")}); mlx-lm reads one form per dataset`]);
  const batch = config.lora.batch_size;
  const small = SPLITS.filter((s) => (s !== "test" || splits.test.length > 0) && splits[s].length < batch);
  if (small.length > 0) {
    const which = small.map((s) => `${s} has ${splits[s].length}`).join(", ");
    throw new UserError(
      `Every split needs at least lora.batch_size=${batch} examples, but ${which}. ` +
        `Add examples, raise data.valid_fraction / data.test_fraction, or lower lora.batch_size.`,
    );
  }
  return splits;
}

export const dataNode: NodeSpec<PipelineConfig> = {
  id: "data",
  deps: [],
  description: "validated, shuffled train/valid/test jsonl",
  inputs: (ctx) => ({
    files: ctx.config.data.splits ? Object.values(ctx.config.data.splits).filter((f): f is string => !!f) : ctx.config.data.files,
    params: { ...ctx.config.data, batch_size: ctx.config.lora.batch_size },
    tools: {},
    command: "validate, shuffle, split",
  }),
  async guard(ctx): Promise<Verdict[]> {
    const { DataErrors } = await import("./lib/data/dataset.ts");
    try {
      const splits = await loadSplits(ctx.config, ctx.root);
      const counts = SPLITS.map((s) => `${splits[s].length} ${s}`).join(", ");
      return [{ level: "ok", code: "data.ok", message: `${counts} examples, ${splits.train[0]?.value.format} form` }];
    } catch (e) {
      if (e instanceof DataErrors || e instanceof UserError) {
        return [{ level: "error", code: "data.invalid", message: e.message, fix: "Fix or remove the lines named above; nothing was trained." }];
      }
      throw e;
    }
  },
  async run(ctx) {
    const { toJsonl } = await import("./lib/data/dataset.ts");
    const splits = await loadSplits(ctx.config, ctx.root);
    const origins: Record<string, string[]> = {};
    for (const split of SPLITS) {
      if (splits[split].length === 0) continue;
      await writeFile(join(ctx.staging, `${split}.jsonl`), splits[split].map((e) => toJsonl(e.value)).join("\n") + "\n");
      origins[split] = splits[split].map((e) => e.origin);
    }
    // Lets later nodes name an example's source file and line (formatted, a template that raises).
    await writeFile(join(ctx.staging, ORIGINS), JSON.stringify(origins) + "\n");
    ctx.note(SPLITS.map((s) => `${splits[s].length} ${s}`).join(", "));
  },
};
