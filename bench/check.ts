// How long `check` takes to reach its verdicts on each shared model config (config.json only, planned for
// a 16 GB Mac), against the same CLI printing its graph: the difference is the guards' own time.
// The goal is under two seconds per config. mlx-lm's architecture probe is cached per config and
// mlx-lm version, so the first round pays it (when the mlx environment exists) and later rounds do not.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { median, REPO, timed, TSX_ARGS, type Row } from "./lib.ts";

const CONFIGS = join(REPO, "test", "fixtures", "model-configs");
const DATA = readFileSync(join(REPO, "data", "conversions.jsonl"), "utf8").split("\n").slice(0, 40).join("\n") + "\n";
const YAML = "model: ./m\nlora:\n  batch_size: 1\n  max_seq_length: 1024\n  rank: 8\n  num_layers: 12\ndata:\n  test_fraction: 0\n";

export async function checkBench(tmp: string, reps: number): Promise<{ rows: Row[]; notes: string[] }> {
  const rows: Row[] = [];
  const node = process.execPath;
  const cli = join(REPO, "pipeline.ts");
  for (const name of readdirSync(CONFIGS).filter((f) => f.endsWith(".json")).sort()) {
    const dir = join(tmp, `check-${name}`);
    mkdirSync(join(dir, "m"), { recursive: true });
    mkdirSync(join(dir, "data"), { recursive: true });
    writeFileSync(join(dir, "m", "config.json"), readFileSync(join(CONFIGS, name)));
    writeFileSync(join(dir, "data", "train.jsonl"), DATA);
    writeFileSync(join(dir, "pipeline.yaml"), YAML);
    const first = await timed(node, [...TSX_ARGS, cli, "check", "adapters", "--json", "--memory", "16GB", "--os", "macos"], { cwd: dir });
    const checks: number[] = [];
    const baselines: number[] = [];
    let verdict = "?";
    for (let i = 0; i < reps; i++) {
      baselines.push((await timed(node, [...TSX_ARGS, cli, "graph"], { cwd: dir })).ms);
      const run = await timed(node, [...TSX_ARGS, cli, "check", "adapters", "--json", "--memory", "16GB", "--os", "macos"], { cwd: dir });
      checks.push(run.ms);
      const json = JSON.parse(run.stdout) as { verdicts: { code: string; level: string }[] };
      verdict = json.verdicts.find((v) => v.code.startsWith("memory."))?.code ?? "none";
    }
    const total = median(checks);
    rows.push({
      bench: `check: ${name.replace(/\.json$/, "")}`,
      command: "pipeline.ts check adapters --json --memory 16GB --os macos",
      numbers: `first ${Math.round(first.ms)} ms, then median ${Math.round(total)} ms; guards ${Math.round(total - median(baselines))} ms; ${verdict}`,
      ratio: total < 2000 ? "under 2 s" : "OVER 2 s",
    });
  }
  return { rows, notes: ["check: 'guards' = check minus `pipeline.ts graph` (same CLI start-up, no guards), medians of the same rounds"] };
}
