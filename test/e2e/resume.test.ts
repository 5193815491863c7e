// A training run killed with SIGKILL after its first checkpoint resumes from that checkpoint on the next build
// (also when the resumed run is killed in turn), and its metrics continue where the killed run stopped.
import { execFileSync, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { alive, pipelineYaml, Project, ran, sample, waitFor } from "../helpers/project.ts";

/** Every descendant of `pid` (children, grandchildren, ...), from `ps`: works on Linux and macOS. */
function descendants(pid: number): number[] {
  const rows = execFileSync("ps", ["-A", "-o", "pid=,ppid="], { encoding: "utf8" })
    .split("\n")
    .map((l) => l.trim().split(/\s+/).map(Number))
    .filter((r) => r.length === 2 && !r.some(Number.isNaN)) as [number, number][];
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const parent = queue.shift()!;
    for (const [child, ppid] of rows) {
      if (ppid === parent) {
        out.push(child);
        queue.push(child);
      }
    }
  }
  return out;
}


/** The checkpoint mlx-lm writes at iteration 5, in the scratch folder of the adapters build (keyed by fingerprint). */
function checkpoint(p: Project, iteration: number): boolean {
  const root = p.path("cache", "scratch", "adapters");
  const name = `${String(iteration).padStart(7, "0")}_adapters.safetensors`;
  try {
    return readdirSync(root).some((fp) => readdirSync(join(root, fp, "run")).includes(name));
  } catch {
    return false;
  }
}

/**
 * Builds adapters and, once `when` holds, kills the engine (SIGKILL: no handler runs). The training process
 * it started is left alone: it must die with the engine (see engine/exec.ts), not be cleaned up by the test.
 */
async function killedWhen(p: Project, when: (engine: ChildProcess) => boolean): Promise<void> {
  let python: number[] = [];
  const killed = await p.run(["adapters", "--json"], (child) => {
    void waitFor(() => when(child), 400_000).then(() => {
      python = descendants(child.pid!);
      child.kill("SIGKILL");
    });
  });
  expect(killed.signal).toBe("SIGKILL");
  expect(python.length).toBeGreaterThan(0);
  // No training process outlives the engine by more than the watcher's grace period.
  await waitFor(() => python.every((pid) => !alive(pid)), 10_000);
  expect(p.exists("models/adapters")).toBe(false);
}

/** Whether a resumed run (progress.json says iteration 5, its checkpoints wiped) has started training. */
function resumedRunTraining(p: Project, engine: ChildProcess): boolean {
  const root = p.path("cache", "scratch", "adapters");
  try {
    const resumed = readdirSync(root).some((fp) => readFileSync(join(root, fp, "progress.json"), "utf8").includes('"offset":5'));
    return resumed && descendants(engine.pid!).length > 0;
  } catch {
    return false;
  }
}

const LORA = { iters: 15, save_every: 5, steps_per_report: 5, steps_per_eval: 15, val_batches: 1 };

/** The build after the kills resumed from iteration 5 and its metrics count on from there. */
async function expectResumedFrom5(p: Project): Promise<void> {
  const resumed = await p.build("adapters");
  expect(resumed.code, resumed.stderr.slice(-3000)).toBe(0);
  expect(ran(resumed)).toEqual(["adapters"]);
  expect(p.lock().adapters!.facts).toMatchObject({ resumed_from_iteration: 5 });
  const said = /resuming from the checkpoint at iteration 5\b/;
  expect(said.test(resumed.stderr) || said.test(p.read("cache/logs/adapters.log"))).toBe(true);

  const metrics = p.readJsonl<{ type: string; iteration: number }>("models/adapters/metrics.jsonl");
  const train = metrics.filter((m) => m.type === "train").map((m) => m.iteration);
  // 5 from the killed run, then 10 and 15 from the resumed one: the count continues, it does not restart at 5.
  expect(train).toEqual([5, 10, 15]);
  expect(p.readJson<{ iters: number }>("models/adapters/adapter_config.json").iters).toBe(15);
  // The scratch folder (checkpoints) is removed once the build succeeds.
  expect(checkpoint(p, 5)).toBe(false);
}

describe.concurrent("resuming interrupted training", () => {
  it("kill -9 after the first checkpoint, then rebuild: resumes from iteration 5", async () => {
    const p = new Project(pipelineYaml({ lora: LORA }), { "data/train.jsonl": sample(40) });
    await killedWhen(p, () => checkpoint(p, 5));
    expect(checkpoint(p, 5)).toBe(true);
    await expectResumedFrom5(p);
  });

  it("killed again before the resumed run's first checkpoint: the next build still resumes from iteration 5", async () => {
    const p = new Project(pipelineYaml({ lora: LORA }), { "data/train.jsonl": sample(40) });
    await killedWhen(p, () => checkpoint(p, 5));
    await killedWhen(p, (engine) => resumedRunTraining(p, engine)); // before it saves anything
    expect(checkpoint(p, 5)).toBe(false);
    await expectResumedFrom5(p);
  });
});
