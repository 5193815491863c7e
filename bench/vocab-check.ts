// How long the gguf guard's converter check takes (llama.cpp's converter with --vocab-only on the base model,
// then the vocab-only GGUF loaded in a llama.cpp child and compared with the Hugging Face tokenizer), cold and
// cached, against `check gguf` of the same project with the cache entry in place and `graph` (CLI start-up).
// Needs the mlx and converter environments (built by any earlier build or test).
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { userCacheDir } from "../stages/lib/toolchain/paths.ts";
import { log, median, REPO, timed, TSX_ARGS, type Row } from "./lib.ts";

const CLI = join(REPO, "pipeline.ts");
const DATA = '{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}\n';

export async function vocabBench(tmp: string, reps: number): Promise<{ rows: Row[]; notes: string[] }> {
  const node = process.execPath;
  const cli = (dir: string, ...args: string[]) => timed(node, [...TSX_ARGS, CLI, ...args], { cwd: dir });
  const project = (name: string, model: string) => {
    const dir = join(tmp, name);
    mkdirSync(join(dir, "data"), { recursive: true });
    writeFileSync(join(dir, "data", "train.jsonl"), DATA.repeat(20));
    writeFileSync(join(dir, "pipeline.yaml"), `model: ${model}\nlora:\n  num_layers: -1\n  max_seq_length: 128\n`);
    return dir;
  };
  log("vocab: building tiny:llama's model folder");
  const maker = project("vocab-maker", "tiny:llama");
  const built = await cli(maker, "model");
  if (built.code !== 0) throw new Error(`building tiny:llama failed: ${built.stderr.slice(-2000)}`);
  const model = join(maker, "models", "model", "model");
  // A key the converter ignores, so this run's check is never one cached by an earlier run.
  const genConfig = join(model, "generation_config.json");
  writeFileSync(genConfig, JSON.stringify({ ...JSON.parse(readFileSync(genConfig, "utf8")), bench_nonce: Date.now() }));
  const dir = project("vocab-check", model);

  const cacheDir = userCacheDir("vocab-checks");
  const listing = () => new Set(readdirSync(cacheDir, { withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name));
  mkdirSync(cacheDir, { recursive: true });
  const before = listing();
  const first = await cli(dir, "check", "gguf", "--json");
  // The entry this model's check wrote (or found): removed before each cold round, only it.
  const mine = [...listing()].filter((n) => !before.has(n));
  const colds: number[] = [];
  const warms: number[] = [];
  const graphs: number[] = [];
  for (let i = 0; i < reps; i++) {
    for (const name of mine) rmSync(join(cacheDir, name), { force: true });
    colds.push((await cli(dir, "check", "gguf", "--json")).ms);
    warms.push((await cli(dir, "check", "gguf", "--json")).ms);
    graphs.push((await cli(dir, "graph")).ms);
  }
  const parity = (JSON.parse(first.stdout) as { verdicts: { code: string; level: string }[] }).verdicts.find((v) => v.code === "export.tokenizer-parity")?.level ?? "?";
  const ms = (n: number) => `${Math.round(n)} ms`;
  return {
    rows: [
      {
        bench: "vocab check (tiny:llama)",
        command: "pipeline.ts check gguf --json",
        numbers: `cold median ${ms(median(colds))}, cached ${ms(median(warms))} (graph ${ms(median(graphs))}); parity ${parity}`,
        ratio: `cold/cached ${(median(colds) / median(warms)).toFixed(1)}x`,
      },
    ],
    notes: [`vocab: cold = the check's cache entry removed before the run (${mine.length} entry)`],
  };
}
