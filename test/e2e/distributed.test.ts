// Data-parallel training through mlx.launch, with the real tools: two local processes train the same model as
// one (same global batch); a rank reached through a real sshd on 127.0.0.1; the guards that stop a run before
// anything trains; and a hung rank, Ctrl-C and a killed rank, each leaving no rank running and a build that
// resumes. One project is shared by every test (in order), a copy of the one-process training training.test.ts
// starts from (shared-project.ts), so the model, the data and that training are built once.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { alive, pipelineYaml, type Project, ran, waitFor, type RunResult } from "../helpers/project.ts";
import { sharedTraining } from "../helpers/shared-project.ts";
import { freePorts, startSshd, type TestSshd } from "../helpers/sshd.ts";

let sshd: TestSshd;
let project: Project;
let port: number;
/** The one-process training's report, from the shared build. */
let oneProcessBuild: RunResult;

beforeAll(async () => {
  sshd = await startSshd();
  port = await freePorts(3);
  ({ project, first: oneProcessBuild } = await sharedTraining());
}, 1_800_000);
afterAll(() => sshd?.stop());

function configure(distributed: Record<string, unknown> | undefined, lora: Record<string, unknown> = {}): void {
  project.write("pipeline.yaml", pipelineYaml({ lora, ...(distributed ? { distributed: { port, ...distributed } } : {}) }));
}

const RANK1 = { ssh: "rank1", ip: "127.0.0.1" };

interface Losses {
  final_train_loss: number;
  final_val_loss: number;
  world_size?: number;
  resumed_from_iteration?: number;
}
const losses = () => project.lock().adapters!.facts as unknown as Losses;
const adaptersMs = (r: RunResult) => r.json.nodes.find((n) => n.id === "adapters")?.ms ?? NaN;

function expectClose(a: number, b: number, relative: number): void {
  expect(Math.abs(a - b) / Math.abs(b), `${a} vs ${b}`).toBeLessThan(relative);
}

/** The scratch folder of the adapters build in progress (one fingerprint at a time here). */
function scratch(): string | undefined {
  const root = project.path("cache", "scratch", "adapters");
  if (!existsSync(root)) return undefined;
  const dirs = readdirSync(root).map((d) => join(root, d)).sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  return dirs[0];
}

/** The pids the ranks wrote (rank → pid), of ranks still running. */
function rankPids(): Map<number, number> {
  const dir = scratch() && join(scratch()!, "ranks");
  const out = new Map<number, number>();
  if (!dir || !existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const rank = /^rank-(\d+)\.pid$/.exec(name)?.[1];
    let pid = NaN;
    try {
      pid = rank === undefined ? NaN : Number(readFileSync(join(dir, name), "utf8"));
    } catch {
      // Removed meanwhile: the rank's run is over.
    }
    if (pid > 0 && alive(pid)) out.set(Number(rank), pid);
  }
  return out;
}

function checkpointIn(run: string, iteration: number): boolean {
  const dir = scratch();
  return !!dir && existsSync(join(dir, run, `${String(iteration).padStart(7, "0")}_adapters.safetensors`));
}

/** Whether the build in progress has recorded rank 0's train report of `iteration`. */
function reported(iteration: number): boolean {
  const file = scratch() && join(scratch()!, "metrics.jsonl");
  return !!file && existsSync(file) && readFileSync(file, "utf8").includes(`"type":"train","iteration":${iteration},`);
}

/** Every rank pid seen during a run, collected while it runs (the files go when the node cleans up). */
function watchRanks(): { pids: Set<number>; stop: () => void } {
  const pids = new Set<number>();
  // Only live ones: an interrupted build leaves its (dead) ranks' files until the next build clears them.
  const timer = setInterval(() => rankPids().forEach((pid) => alive(pid) && pids.add(pid)), 200);
  return { pids, stop: () => clearInterval(timer) };
}

/** The ranks running now, added to the watched set first: the watcher polls, and a rank killed next may die between polls. */
function seen(ranks: { pids: Set<number> }): Map<number, number> {
  const now = rankPids();
  now.forEach((pid) => ranks.pids.add(pid));
  return now;
}

async function expectNoRankLeft(pids: Set<number>): Promise<void> {
  expect(pids.size).toBe(2);
  await waitFor(() => [...pids].every((pid) => !alive(pid)), 15_000);
}

describe("distributed training through mlx.launch", () => {
  let oneProcess: Losses;

  it("two local processes train what one process trains with the same global batch", async () => {
    // The shared project trained in one process with these settings: fresh.
    configure(undefined);
    expect((await project.mustBuild("adapters")).statuses.adapters).toBe("fresh");
    oneProcess = losses();

    // The hosts are not part of the fingerprint: the same global batch trains the same adapters.
    configure({ hosts: ["127.0.0.1", "127.0.0.1"] });
    expect((await project.mustBuild("adapters")).statuses.adapters).toBe("fresh");

    const double = await project.mustBuild("adapters", "--force", "adapters");
    expect(ran(double)).toEqual(["adapters"]);
    const two = losses();
    expect(two.world_size).toBe(2);
    expectClose(two.final_train_loss, oneProcess.final_train_loss, 0.03);
    expectClose(two.final_val_loss, oneProcess.final_val_loss, 0.03);
    // The live line shows the world size beside the summed tokens/s.
    expect(double.stderr).toMatch(/tok\/s over 2 processes/);
    console.log(
      `one process: train ${oneProcess.final_train_loss}, valid ${oneProcess.final_val_loss}, ${(adaptersMs(oneProcessBuild) / 1000).toFixed(1)} s; ` +
        `two processes: train ${two.final_train_loss}, valid ${two.final_val_loss}, ${(adaptersMs(double) / 1000).toFixed(1)} s`,
    );
  }, 1_200_000);

  it("the adapters two processes trained fuse, and the pipeline reaches gguf", async () => {
    const result = await project.mustBuild("gguf");
    expect(ran(result)).toEqual(expect.arrayContaining(["fused", "hf", "gguf"]));
    expect(ran(result)).not.toContain("adapters");
    expect(project.lock().adapters!.facts).toMatchObject({ world_size: 2 });
    expect(project.exists("models/gguf/model.gguf")).toBe(true);
  }, 1_200_000);

  it("a rank on another host is reached through a real sshd, its inputs copied there", async () => {
    const before = sshd.logins();
    configure({ hosts: ["127.0.0.1", RANK1], ssh_config: sshd.sshConfig });
    const result = await project.mustBuild("adapters", "--force", "adapters");
    expect(ran(result)).toContain("adapters");
    const viaSsh = losses();
    expect(viaSsh.world_size).toBe(2);
    expectClose(viaSsh.final_train_loss, oneProcess.final_train_loss, 0.03);
    // The guard's probe, rsync (twice) and mlx.launch's rank 1 all logged in.
    expect(sshd.logins() - before).toBeGreaterThanOrEqual(4);
    const log = project.read("cache/logs/adapters.log");
    expect(log).toMatch(/rsync -aRL --delete -e \S+\/ssh \S+ \S+ rank1:\//);
    expect(log).toMatch(/"rank": 1, "iteration": 6/);
  });

  describe("guards stop the build before anything trains", () => {
    const cases: [string, Record<string, unknown>, string, RegExp][] = [
      ["a batch size the world size does not divide", { hosts: ["127.0.0.1", "127.0.0.1", "127.0.0.1"] }, "distributed.batch", /batch_size 2 does not divide by the 3 processes/],
      ["an unreachable host", { hosts: ["127.0.0.1", { ssh: "closed", ip: "127.0.0.1" }] }, "distributed.unreachable", /closed does not answer over ssh/],
      ["a host without the environment", { hosts: ["127.0.0.1", { ssh: "noenv", ip: "127.0.0.1" }] }, "distributed.no-env", /noenv has no pinned mlx environment at \S*\/empty-cache\/venvs\/mlx-/],
    ];
    for (const [what, distributed, code, message] of cases) {
      it(what, async () => {
        configure({ ssh_config: sshd.sshConfig, ...distributed });
        const lockBefore = project.read("pipeline.lock");
        const logBefore = project.read("cache/logs/adapters.log");
        const result = await project.build("adapters", "--force", "adapters");
        expect(result.code).toBe(1);
        expect(result.stderr).toMatch(/Stopped before running anything/);
        const errors = (result.json.verdicts ?? []).filter((v) => v.level === "error");
        expect(errors.map((v) => v.code)).toEqual([code]);
        expect(errors[0]!.message).toMatch(message);
        expect(result.json.nodes).toEqual([]);
        expect(project.read("cache/logs/adapters.log")).toBe(logBefore);
        expect(project.read("pipeline.lock")).toBe(lockBefore);
      });
    }
  });

  it("a hung rank trips the watchdog, Ctrl-C and a killed rank stop every rank, and each next build resumes", async () => {
    // A report every iteration keeps the watchdog short; checkpoints every 3 iterations. Its 30 s are five times what
    // two local ranks take from the build's start to their first report on this 2-core machine, idle or with a core
    // busy (6 s); while it waits, rank 0 spins in all_sum on a full core, so each of its seconds costs a core-second.
    const lora = { iters: 9, save_every: 3, steps_per_report: 1, steps_per_eval: 9 };
    configure({ hosts: ["127.0.0.1", RANK1], ssh_config: sshd.sshConfig, watchdog: 30 }, lora);

    // 1. Rank 1 (behind sshd) freezes after the first checkpoint: rank 0 blocks in all_sum, no metrics come.
    let ranks = watchRanks();
    const hung = await project.run(["adapters", "--json"], () => {
      void waitFor(() => checkpointIn("run", 3) && rankPids().has(1), 500_000).then(() => process.kill(seen(ranks).get(1)!, "SIGSTOP"));
    });
    ranks.stop();
    expect(hung.code).toBe(1);
    expect(hung.stderr).toMatch(/training hung: no metrics line for 30 s \(distributed.watchdog\) after iteration [3-5]; every rank was stopped/);
    expect(hung.stderr).toMatch(/The next build resumes from the last checkpoint/);
    await expectNoRankLeft(ranks.pids);

    // 2. Ctrl-C once the resumed run has saved its own first checkpoint (iteration 6).
    ranks = watchRanks();
    const interrupted = await project.run(["adapters", "--json"], (child) => {
      // Its report of iteration 6 too: it comes before the checkpoint, but through mlx.launch's relay.
      void waitFor(() => checkpointIn("run", 3) && rankPids().size === 2 && reported(6), 500_000).then(() => (seen(ranks), child.kill("SIGINT")));
    });
    ranks.stop();
    expect(interrupted.code).toBe(130);
    await expectNoRankLeft(ranks.pids);

    // 3. Rank 1 killed outright, before the resumed run saves anything.
    ranks = watchRanks();
    const killed = await project.run(["adapters", "--json"], () => {
      void waitFor(() => rankPids().size === 2, 500_000).then(() => process.kill(seen(ranks).get(1)!, "SIGKILL"));
    });
    ranks.stop();
    expect(killed.code).toBe(1);
    expect(killed.stderr).toMatch(/training across 2 processes failed: rank 1 \(rank1\) exited with code 255 \(its ssh session ended: the rank was killed or the connection dropped\)/);
    await expectNoRankLeft(ranks.pids);
    expect(project.exists("models/adapters/adapters.safetensors")).toBe(true); // the earlier output is intact

    // 4. The next build resumes from iteration 6 and finishes; the metrics count on from the checkpoints.
    const resumed = await project.mustBuild("adapters");
    expect(ran(resumed)).toEqual(["adapters"]);
    expect(losses()).toMatchObject({ resumed_from_iteration: 6, world_size: 2 });
    const train = project.readJsonl<{ type: string; iteration: number }>("models/adapters/metrics.jsonl").filter((m) => m.type === "train");
    expect(train.map((m) => m.iteration)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  }, 1_800_000);
});
