// How long `check` takes to reach its verdicts on each shared model config (config.json only, planned for
// a 16 GB Mac), against the same CLI printing its graph: the difference is the guards' own time.
// The goal is under two seconds per config. mlx-lm's architecture probe is cached per config and
// mlx-lm version (in the per-user cache), so the first run is timed with an empty probe cache: a cache
// folder of this benchmark's own that shares the user's environments (venvs, llama.cpp) but no probes.
// Later rounds find the probe cached. Each row says whether the probe ran, and how.
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { median, REPO, timed, TSX_ARGS, type Row } from "./lib.ts";

/** The per-user cache the tool uses (stages/lib/toolchain/paths.ts). */
const USER_CACHE = process.env.MLX_PIPELINE_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "mlx-lora-pipeline");
const PROBES = "arch-probes";

/** A cache folder with links to everything in the user's but the architecture probes. */
function cacheWithoutProbes(tmp: string): string {
  const dir = join(tmp, "cache-without-probes");
  mkdirSync(dir, { recursive: true });
  let entries: string[] = [];
  try {
    entries = readdirSync(USER_CACHE);
  } catch {
    // No user cache yet: no environment, so the probe is skipped (and the row says so).
  }
  for (const name of entries.filter((n) => n !== PROBES)) symlinkSync(join(USER_CACHE, name), join(dir, name));
  return dir;
}

/** What mlx-lm's architecture probe did in one check, from its verdicts. */
function probeSaid(verdicts: readonly { code: string; message: string }[]): string {
  const v = verdicts.find((x) => x.code.startsWith("arch.mlx") || x.code === "arch.lora-fails" || x.code === "arch.probe-failed");
  if (!v) return "probe skipped (no mlx environment)";
  if (v.code === "arch.probe-failed") return "probe failed";
  return /one LoRA step/.test(v.message) ? "probe: module + one LoRA step" : v.code === "arch.mlx" ? "probe: module only" : `probe: ${v.code}`;
}

const CONFIGS = join(REPO, "test", "fixtures", "model-configs");
const DATA = readFileSync(join(REPO, "data", "conversions.jsonl"), "utf8").split("\n").slice(0, 40).join("\n") + "\n";
const YAML = "model: ./m\nlora:\n  batch_size: 1\n  max_seq_length: 1024\n  rank: 8\n  num_layers: 12\ndata:\n  test_fraction: 0\n";

export async function checkBench(tmp: string, reps: number): Promise<{ rows: Row[]; notes: string[] }> {
  const rows: Row[] = [];
  const node = process.execPath;
  const cli = join(REPO, "pipeline.ts");
  const env = { ...process.env, MLX_PIPELINE_CACHE: cacheWithoutProbes(tmp) };
  const verdictsOf = (stdout: string) => (JSON.parse(stdout) as { verdicts: { code: string; level: string; message: string }[] }).verdicts;
  for (const name of readdirSync(CONFIGS).filter((f) => f.endsWith(".json")).sort()) {
    const dir = join(tmp, `check-${name}`);
    mkdirSync(join(dir, "m"), { recursive: true });
    mkdirSync(join(dir, "data"), { recursive: true });
    writeFileSync(join(dir, "m", "config.json"), readFileSync(join(CONFIGS, name)));
    writeFileSync(join(dir, "data", "train.jsonl"), DATA);
    writeFileSync(join(dir, "pipeline.yaml"), YAML);
    const args = [...TSX_ARGS, cli, "check", "adapters", "--json", "--memory", "16GB", "--os", "macos"];
    const first = await timed(node, args, { cwd: dir, env });
    const cold = probeSaid(verdictsOf(first.stdout));
    const checks: number[] = [];
    const baselines: number[] = [];
    let verdict = "?";
    let warm = "?";
    for (let i = 0; i < reps; i++) {
      baselines.push((await timed(node, [...TSX_ARGS, cli, "graph"], { cwd: dir, env })).ms);
      const run = await timed(node, args, { cwd: dir, env });
      checks.push(run.ms);
      const verdicts = verdictsOf(run.stdout);
      verdict = verdicts.find((v) => v.code.startsWith("memory."))?.code ?? "none";
      warm = probeSaid(verdicts).replace(/^probe: /, "probe cached: ");
    }
    const total = median(checks);
    rows.push({
      bench: `check: ${name.replace(/\.json$/, "")}`,
      command: "pipeline.ts check adapters --json --memory 16GB --os macos",
      numbers: `cold ${Math.round(first.ms)} ms (empty probe cache; ${cold}), then median ${Math.round(total)} ms (${warm}); guards ${Math.round(total - median(baselines))} ms; ${verdict}`,
      ratio: `${first.ms < 2000 ? "cold under 2 s" : "cold OVER 2 s"}, ${total < 2000 ? "warm under 2 s" : "warm OVER 2 s"}`,
    });
  }
  return {
    rows,
    notes: [
      "check: 'cold' = the first run, with a cache folder that has the user's environments but no architecture probe (MLX_PIPELINE_CACHE); the page cache is warm. 'guards' = check minus `pipeline.ts graph` (same CLI start-up, no guards), medians of the same rounds",
    ],
  };
}
