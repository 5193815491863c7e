// Benchmark 1: the overhead of a warm no-op build, which must not grow with the size of the artifacts.
//
// Every contender is `node --import <tsx loader> FILE …`, run interleaved (order rotated each round) with
// the same node running an empty .ts file; the engine's share is the median of the per-round differences.
import { link, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { FAKE, FakeProject } from "../test/helpers/fake-project.ts";
import { fmtBytes, load, log, median, quartiles, REPO, rotated, timed, TSX_ARGS, type Row } from "./lib.ts";

export const BIG = join(REPO, "bench/big-pipeline.ts");
const EMPTY = join(REPO, "bench/empty.ts");
const DEMO = join(REPO, "pipeline.ts");
const IMPORT_ONE = join(REPO, "bench/import-one.mjs");
const TARGET_MS = 100;
const ENV = { ...process.env, CI: "true" };

const CONFIG = `report:
  title: Weekly
tools:
  fake: "1.0"
`;

interface BuildJson {
  ok: boolean;
  nodes: { id: string; status: string }[];
  hashed?: { files: number; bytes: number };
}

export interface Project {
  readonly label: string;
  readonly dir: string;
  readonly script: string;
  /** Bytes under input/ and models/ (what a careless engine would re-read). */
  readonly bytes: number;
}

/** `npx tsx`: how the README runs the CLI (npm's npx, then tsx's own CLI, then node with tsx's loader). */
const NPX_TSX = ["npx", "tsx"] as const;

async function build(
  p: { dir: string; script: string; target?: string },
  launcher: "node --import tsx" | "npx tsx" = "node --import tsx",
  env: Record<string, string> = {},
): Promise<{ ms: number; json: BuildJson }> {
  const [command, ...args] = launcher === "npx tsx" ? NPX_TSX : [process.execPath, ...TSX_ARGS];
  const r = await timed(command!, [...args, p.script, p.target ?? "report", "--json"], { cwd: p.dir, env: { ...ENV, ...env } });
  let json: BuildJson;
  try {
    json = JSON.parse(r.stdout) as BuildJson;
  } catch {
    throw new Error(`build in ${p.dir} printed no JSON (exit ${r.code}):\n${r.stderr}`);
  }
  if (r.code !== 0 || !json.ok) throw new Error(`build in ${p.dir} failed (exit ${r.code}):\n${r.stderr}`);
  return { ms: r.ms, json };
}

async function duBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) total += (await stat(join(e.parentPath, e.name))).size;
  }
  return total;
}

/**
 * A big-pipeline project whose one input is `inputFile` (hard-linked, so no copy) or `inputBytes` of
 * fresh data, built once. The first build's time and hashed bytes are logged.
 */
export async function makeBigProject(parent: string, label: string, input: { file: string } | { bytes: number }): Promise<Project> {
  const dir = await mkdtemp(join(parent, "big-pipeline-"));
  await mkdir(join(dir, "input"));
  if ("file" in input) await link(input.file, join(dir, "input", "model.bin"));
  else await writeFile(join(dir, "input", "model.bin"), Buffer.alloc(input.bytes, "0123456789abcdef"));
  await writeFile(join(dir, "pipeline.yaml"), CONFIG);
  const first = await build({ dir, script: BIG });
  const bytes = (await duBytes(join(dir, "input"))) + (await duBytes(join(dir, "models")));
  log(`  ${label}: first build ${(first.ms / 1000).toFixed(1)} s, hashed ${first.json.hashed?.files} files / ${fmtBytes(first.json.hashed?.bytes ?? 0)}`);
  return { label, dir, script: BIG, bytes };
}

/** The output parts of a built big-pipeline project (4 × a quarter of its input). */
export async function weightParts(p: Project): Promise<string[]> {
  const dir = join(p.dir, "models", "weights");
  return (await readdir(dir)).filter((n) => n.includes(".part")).sort().map((n) => join(dir, n));
}

interface Contender {
  readonly name: string;
  readonly command: string;
  readonly run: () => Promise<{ ms: number; hashedFiles?: number; hashedBytes?: number; allFresh?: boolean }>;
}

function noopContender(p: Project): Contender {
  const rel = p.script.slice(REPO.length + 1);
  return {
    name: p.label,
    command: `node --import tsx ${rel} report --json`,
    run: async () => {
      const { ms, json } = await build(p);
      return { ms, hashedFiles: json.hashed?.files, hashedBytes: json.hashed?.bytes, allFresh: json.nodes.every((n) => n.status === "fresh") };
    },
  };
}

function plainContender(name: string, command: string, args: readonly string[], options: { tsx?: boolean; cwd?: string } = {}): Contender {
  const argv = [...(options.tsx === false ? [] : TSX_ARGS), ...args];
  return {
    name,
    command,
    run: async () => {
      const r = await timed(process.execPath, argv, { cwd: options.cwd ?? REPO, env: ENV });
      if (r.code !== 0) throw new Error(`${command} failed: ${r.stderr}`);
      return { ms: r.ms };
    },
  };
}

/** Runs `node --import tsx ARGS` with a terminal on stdout and stderr (`script`), as a person at a prompt does. */
function terminalContender(name: string, command: string, args: readonly string[], cwd = REPO): Contender {
  const line = [process.execPath, ...TSX_ARGS, ...args].map((a) => `'${a}'`).join(" ");
  const env = { ...process.env };
  delete env.CI;
  return {
    name,
    command,
    run: async () => {
      const r = await timed("script", ["-qec", line, "/dev/null"], { cwd, env });
      if (r.code !== 0) throw new Error(`${command} failed: ${r.stdout}`);
      return { ms: r.ms };
    },
  };
}

/**
 * The real pipeline's no-op in this checkout (`pipeline.ts gguf`), when its demo is built and fresh: the
 * engine plus the stages' own inputs (a Python shim asked its version, the toolchains' files). Run both as
 * the tests and benchmarks start CLIs (`node --import tsx`) and as the README tells people to (`npx tsx`).
 */
async function demoContenders(): Promise<Contender[]> {
  const status = await timed(process.execPath, [...TSX_ARGS, DEMO, "status", "gguf", "--json"], { cwd: REPO, env: ENV });
  const fresh = status.code === 0 && (JSON.parse(status.stdout) as { nodes: { stale: boolean }[] }).nodes.every((n) => !n.stale);
  if (!fresh) {
    log("no-op: the demo is not built and fresh here (run `npx tsx pipeline.ts gguf`): its rows are left out");
    return [];
  }
  const variants = [
    { name: "node --import tsx", launcher: "node --import tsx" },
    { name: "npx tsx", launcher: "npx tsx" },
    // Planning every time, as a no-op did before records (and does with MLX_PIPELINE_REPLAY=off).
    { name: "node --import tsx, planned", launcher: "node --import tsx", env: { MLX_PIPELINE_REPLAY: "off" } },
    // The first no-op after a change that rebuilds nothing: it plans, traced, and writes its record.
    { name: "node --import tsx, recording", launcher: "node --import tsx", env: { BENCH_NOOP: "recording" }, recording: true },
  ] as const;
  return variants.map((v) => {
    const env: Record<string, string> = "env" in v ? v.env : {};
    let record: string | undefined; // this variant's own record (its environment differs from the others'), found on its first run
    return {
      name: `demo, ${v.name}`,
      command: `${"env" in v ? Object.entries(v.env).map(([k, x]) => `${k}=${x} `).join("") : ""}${v.launcher} pipeline.ts gguf --json`,
      run: async () => {
        const records = join(REPO, "cache", "noop");
        const before = "recording" in v && !record ? new Set(await readdir(records).catch(() => [])) : undefined;
        if (record) await rm(record, { force: true });
        const { ms, json } = await build({ dir: REPO, script: DEMO, target: "gguf" }, v.launcher, env);
        if (before) record = (await readdir(records)).filter((n) => !before.has(n)).map((n) => join(records, n))[0];
        if ("recording" in v && !record) throw new Error("the recording no-op wrote no record in cache/noop");
        return { ms, hashedFiles: json.hashed?.files, hashedBytes: json.hashed?.bytes, allFresh: json.nodes.every((n) => n.status === "fresh") };
      },
    };
  });
}

/** `npx tsx FILE`, the baseline the `npx tsx` demo row is measured against. */
function npxContender(name: string, command: string, args: readonly string[]): Contender {
  const [npx, ...npxArgs] = NPX_TSX;
  return {
    name,
    command,
    run: async () => {
      const r = await timed(npx, [...npxArgs, ...args], { cwd: REPO, env: ENV });
      if (r.code !== 0) throw new Error(`${command} failed: ${r.stderr}`);
      return { ms: r.ms };
    },
  };
}

/** Runs every contender once per round, order rotated; returns each one's samples. */
async function rounds(contenders: readonly Contender[], n: number) {
  const samples = new Map(contenders.map((c) => [c, [] as Awaited<ReturnType<Contender["run"]>>[]]));
  for (const c of contenders) await c.run(); // warm-up: disk cache, tsx's transform cache
  for (let i = 0; i < n; i++) for (const c of rotated(contenders, i)) samples.get(c)!.push(await c.run());
  return samples;
}

const ms = (x: number) => `${x.toFixed(0)} ms`;
const iqr = (xs: readonly number[]) => `${quartiles(xs).map((x) => x.toFixed(0)).join("–")} ms`;

export async function noopBench(parent: string, big: Project, reps: number): Promise<{ rows: Row[]; notes: string[] }> {
  const rows: Row[] = [];
  const notes: string[] = [];
  log(`no-op: setting up the small projects (load ${load()})`);
  const small = await makeBigProject(parent, "big-pipeline, 4 KiB input", { bytes: 4096 });
  const fake = new FakeProject(undefined, { "a.txt": "Hello World\n".repeat(340) });
  try {
    const first = await fake.build();
    if (first._result.code !== 0) throw new Error(`fake pipeline build failed: ${first._result.stderr}`);
    const fakeProject: Project = { label: "fake-pipeline (test fixture), 4 KiB", dir: fake.dir, script: FAKE, bytes: await duBytes(fake.dir) };

    const empty = plainContender("empty .ts", "node --import tsx bench/empty.ts", [EMPTY]);
    const importOnly = plainContender("imports only", "node --import tsx bench/import-one.mjs bench/big-pipeline.ts", [IMPORT_ONE, BIG]);
    const projects = [fakeProject, small, big];
    const noops = projects.map(noopContender);
    const emptyTty = terminalContender("empty .ts", "script -qec 'node --import tsx bench/empty.ts'", [EMPTY]);
    const bigTty = terminalContender("no-op", `script -qec 'node --import tsx bench/big-pipeline.ts report'`, [BIG, "report"], big.dir);
    const demos = await demoContenders();
    const emptyNpx = npxContender("empty .ts, npx tsx", "npx tsx bench/empty.ts", [EMPTY]);
    const all = [empty, importOnly, ...noops, ...(demos.length > 0 ? [...demos, emptyNpx] : []), emptyTty, bigTty];
    log(`no-op: ${reps} interleaved rounds of ${all.length} commands (load ${load()})`);
    const s = await rounds(all, reps);
    const emptyMs = s.get(empty)!.map((x) => x.ms);
    /** Per-round difference with the empty run of the same round. */
    const share = (c: Contender) => s.get(c)!.map((x, i) => x.ms - emptyMs[i]!);

    rows.push({ bench: "no-op: baseline", command: empty.command, numbers: `median ${ms(median(emptyMs))} (IQR ${iqr(emptyMs)})`, ratio: "" });
    const imp = share(importOnly);
    rows.push({
      bench: "no-op: module loading",
      command: importOnly.command,
      numbers: `median ${ms(median(s.get(importOnly)!.map((x) => x.ms)))}; over baseline ${ms(median(imp))}`,
      ratio: "imports of the CLI, runs nothing",
    });
    const shares = new Map<Project, number[]>();
    projects.forEach((p, k) => {
      const c = noops[k]!;
      const runs = s.get(c)!;
      const d = share(c);
      shares.set(p, d);
      const zero = runs.every((r) => r.hashedFiles === 0 && r.hashedBytes === 0);
      const fresh = runs.every((r) => r.allFresh);
      const med = median(d);
      rows.push({
        bench: `no-op: ${p.label}`,
        command: c.command,
        numbers:
          `median ${ms(median(runs.map((r) => r.ms)))}; engine share ${ms(med)} (IQR ${iqr(d)}); ` +
          `${fmtBytes(p.bytes)} on disk; hashed ${zero ? "0 files / 0 B" : "SOME FILES"} in ${runs.length}/${runs.length} runs${fresh ? ", all nodes fresh" : ", NOT ALL FRESH"}`,
        ratio: `${med <= TARGET_MS ? "under" : "OVER"} the ${TARGET_MS} ms target`,
      });
    });
    if (demos.length > 0) {
      const npxMs = s.get(emptyNpx)!.map((x) => x.ms);
      rows.push({ bench: "no-op: baseline, npx tsx", command: emptyNpx.command, numbers: `median ${ms(median(npxMs))} (IQR ${iqr(npxMs)})`, ratio: "npx and tsx's CLI start before node does" });
      for (const demo of demos) {
        const runs = s.get(demo)!;
        const viaNpx = demo.command.startsWith("npx");
        // Each against the empty file started the same way, in the same round.
        const d = runs.map((x, i) => x.ms - (viaNpx ? npxMs : emptyMs)[i]!);
        const zero = runs.every((r) => r.hashedFiles === 0 && r.hashedBytes === 0);
        rows.push({
          bench: `no-op: demo pipeline (this checkout), ${demo.name.slice("demo, ".length)}`,
          command: demo.command,
          numbers: `median ${ms(median(runs.map((r) => r.ms)))}; share over ${viaNpx ? emptyNpx.command : empty.command} ${ms(median(d))} (IQR ${iqr(d)}); hashed ${zero ? "0 files / 0 B" : "SOME FILES"}${runs.every((r) => r.allFresh) ? ", all nodes fresh" : ", NOT ALL FRESH"}`,
          ratio: demo.name.endsWith("planned") || demo.name.endsWith("recording")
            ? "for comparison: the target is for the no-op a user repeats (the rows above)"
            : `${median(d) <= TARGET_MS ? "under" : "OVER"} the ${TARGET_MS} ms target (answered from its record)`,
        });
      }
    }
    const ttyShare = s.get(bigTty)!.map((x, i) => x.ms - s.get(emptyTty)!.map((y) => y.ms)[i]!);
    rows.push({
      bench: `no-op in a terminal: ${big.label}`,
      command: bigTty.command,
      numbers: `median ${ms(median(s.get(bigTty)!.map((x) => x.ms)))}; share over ${emptyTty.command}: ${ms(median(ttyShare))} (IQR ${iqr(ttyShare)})`,
      ratio: `${median(ttyShare) <= TARGET_MS ? "under" : "OVER"} the ${TARGET_MS} ms target (listr2 progress)`,
    });
    const growth = shares.get(big)!.map((x, i) => x - shares.get(small)![i]!);
    rows.push({
      bench: "no-op: growth with size",
      command: `${fmtBytes(big.bytes)} project − ${fmtBytes(small.bytes)} project, same graph`,
      numbers: `${median(growth) >= 0 ? "+" : ""}${ms(median(growth))} (IQR ${iqr(growth)})`,
      ratio: `x${(median(shares.get(big)!) / median(shares.get(small)!)).toFixed(2)} share`,
    });

    // Where the share goes: imports per package (each through tsx's hooks), module counts, a CPU profile.
    if (Math.max(...[...shares.values()].map(median)) > TARGET_MS) {
      rows.push(...(await importCosts(Math.max(3, Math.ceil(reps / 3)))));
      notes.push(...(await modulesAndProfile(big, parent)));
    }
  } finally {
    await rm(fake.dir, { recursive: true, force: true });
    await rm(small.dir, { recursive: true, force: true });
  }
  return { rows, notes };
}

/** What importing each dependency alone adds to start-up, through tsx's loader and under plain node. */
async function importCosts(reps: number): Promise<Row[]> {
  const packages = ["zod", "yaml", "fast-glob", "hasha", "piscina", "listr2", "zx"];
  const cmd = "bench/import-one.mjs";
  const none = plainContender("nothing", `node --import tsx ${cmd}`, [IMPORT_ONE]);
  const nonePlain = plainContender("nothing", `node ${cmd}`, [IMPORT_ONE], { tsx: false });
  const each = packages.map((p) => plainContender(p, `node --import tsx ${cmd} ${p}`, [IMPORT_ONE, p]));
  const eachPlain = packages.map((p) => plainContender(p, `node ${cmd} ${p}`, [IMPORT_ONE, p], { tsx: false }));
  log(`no-op: import cost of ${packages.length} packages, with and without tsx, ${reps} rounds (load ${load()})`);
  const s = await rounds([none, nonePlain, ...each, ...eachPlain], reps);
  const over = (c: Contender, base: Contender) => s.get(c)!.map((x, i) => x.ms - s.get(base)!.map((y) => y.ms)[i]!);
  return each.map((c, k) => {
    const d = over(c, none);
    const plain = over(eachPlain[k]!, nonePlain);
    return {
      bench: `import cost: ${c.name}`,
      command: `${c.command} (vs ${cmd} alone)`,
      numbers: `+${ms(median(d))} (IQR ${iqr(d)}); under plain node: +${ms(median(plain))}`,
      ratio: "",
    };
  });
}

interface Profile {
  nodes: { id: number; callFrame: { url: string; functionName: string } }[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time by package from one `--cpu-prof` no-op (every thread's profile), plus the ES modules loaded. */
async function modulesAndProfile(p: Project, parent: string): Promise<string[]> {
  const notes: string[] = [];
  const counted = await timed(process.execPath, ["--import", join(REPO, "test/helpers/count-modules.mjs"), ...TSX_ARGS, p.script, "report", "--json"], { cwd: p.dir, env: ENV });
  const m = /@@modules (.*)/.exec(counted.stderr);
  if (m) {
    const { total, byPackage } = JSON.parse(m[1]!) as { total: number; byPackage: Record<string, number> };
    const top = Object.entries(byPackage).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`);
    notes.push(`ES modules through the loader in one no-op: ${total} (${top.join(", ")})`);
  }
  const dir = await mkdtemp(join(parent, "cpu-prof-"));
  try {
    const r = await timed(process.execPath, ["--cpu-prof", "--cpu-prof-dir", dir, ...TSX_ARGS, p.script, "report", "--json"], { cwd: p.dir, env: ENV });
    for (const f of (await readdir(dir)).sort()) {
      const prof = JSON.parse(await readFile(join(dir, f), "utf8")) as Profile;
      const byId = new Map(prof.nodes.map((n) => [n.id, n]));
      const self = new Map<string, number>();
      const internals = new Map<string, number>();
      let total = 0;
      prof.samples.forEach((id, i) => {
        const frame = byId.get(id)!.callFrame;
        const url = frame.url;
        const pkg = /node_modules\/((@[^/]+\/)?[^/]+)/.exec(url)?.[1];
        const key = pkg ?? (url.startsWith("file://" + REPO) ? url.slice(REPO.length + 8) : url.startsWith("node:") ? "node internals" : url ? url : `(${frame.functionName || "native"})`);
        const d = prof.timeDeltas[i]! / 1000;
        total += d;
        self.set(key, (self.get(key) ?? 0) + d);
        if (url.startsWith("node:")) {
          const area = url.replace(/^node:(internal\/)?/, "").split("/").slice(0, 2).join("/");
          internals.set(area, (internals.get(area) ?? 0) + d);
        }
      });
      const top = [...self].sort((a, b) => b[1] - a[1]).slice(0, 9).map(([k, v]) => `${k} ${v.toFixed(0)}`);
      // CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile: thread 0 is the main one.
      const thread = /\.0\.\d+\.cpuprofile$/.test(f) ? "main thread" : "tsx hooks thread";
      const inner = [...internals].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([k, v]) => `${k} ${v.toFixed(0)}`);
      notes.push(`--cpu-prof no-op (${ms(r.ms)} wall with profiling), ${thread}, ${total.toFixed(0)} ms sampled, self ms: ${top.join(", ")}; node internals by area: ${inner.join(", ")}`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return notes;
}
