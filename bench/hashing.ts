// Benchmark 2: hashing throughput with a fresh stat cache (every byte read and hashed). The engine's Digester
// (hashing threads started as in a real build) against `openssl dgst -sha256` on the same bytes, run
// interleaved. Then several files at once: the Digester should keep every core busy. Where the machine lets
// this process drop the page cache (root), it is dropped before every timed run, so the bytes come from the
// disk; otherwise they come from the page cache, and the rows say so.
import { availableParallelism, loadavg } from "node:os";
import { readdirSync, readFileSync } from "node:fs";
import { stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { closeHashWorkers, Digester, hashStats } from "../engine/digest.ts";
import { hashWasmVariant, variants, type HashVariant } from "./hash-variants.ts";
import { dropPageCache, fmtBytes, load, log, mbps, median, rotated, timedWithCpu, type Row } from "./lib.ts";

const TARGET = 0.9;

interface Sample {
  readonly ms: number;
  readonly cpuS: number;
  readonly digests: readonly string[];
  /** CPU seconds of each thread of this process that did at least a tenth of the work (Linux only). */
  readonly busyThreads?: readonly number[];
}

/** CPU clock ticks of every thread of this process, from /proc (empty elsewhere). */
function threadTicks(): Map<string, number> {
  const ticks = new Map<string, number>();
  try {
    for (const tid of readdirSync("/proc/self/task")) {
      try {
        // Fields after the ")" closing the thread name: utime and stime are the 12th and 13th.
        const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
        const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        ticks.set(tid, Number(f[11]) + Number(f[12]));
      } catch {
        // The thread ended meanwhile.
      }
    }
  } catch {
    // Not Linux.
  }
  return ticks;
}
const TICKS_PER_S = 100;

interface Contender {
  readonly name: string;
  readonly command: string;
  readonly run: () => Promise<Sample>;
}

/** Times `fn` in this process: wall time and CPU time of every thread (the hashing workers included). */
async function inProcess(fn: () => Promise<readonly string[]>): Promise<Sample> {
  const ticks0 = threadTicks();
  // Sampled while it runs too: a hashing thread that finishes first may end (idle timeout) before the last.
  const last = new Map(ticks0);
  const sample = () => threadTicks().forEach((t, tid) => last.set(tid, t));
  const sampler = setInterval(sample, 50);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const digests = await fn().finally(() => clearInterval(sampler));
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  sample();
  const cpuS = (cpu.user + cpu.system) / 1e6;
  const perThread = [...last].map(([tid, t]) => (t - (ticks0.get(tid) ?? 0)) / TICKS_PER_S);
  const busyThreads = perThread.filter((x) => x >= cpuS / 10).sort((a, b) => b - a);
  return { ms, cpuS, digests, busyThreads };
}

function openssl(files: readonly string[]): Contender {
  return {
    name: "openssl",
    command: `openssl dgst -sha256 ${files.length > 1 ? `${files.length} files` : basename(files[0]!)}`,
    run: async () => {
      const r = await timedWithCpu("openssl", ["dgst", "-sha256", ...files]);
      const digests = r.stdout.trim().split("\n").map((l) => l.slice(l.lastIndexOf(" ") + 1));
      return { ms: r.ms, cpuS: r.cpuS, digests };
    },
  };
}

let caches = 0;
/** A Digester with a stat cache that has never been written: every file is read. */
async function coldDigester(tmp: string): Promise<Digester> {
  return Digester.open(join(tmp, `stat-cache-${caches++}.json`));
}

/** Hashes `files` through the engine, all at once (`inputs` expands and hashes its patterns together). */
function digester(tmp: string, files: readonly string[], mode: "together" | "one by one"): Contender {
  return {
    name: `Digester, ${mode}`,
    command: `Digester.inputs(${files.length > 1 ? `${files.length} files` : basename(files[0]!)})${mode === "one by one" ? " each in turn" : ""}`,
    run: async () => {
      const before = hashStats.bytes;
      const s = await inProcess(async () => {
        const d = await coldDigester(tmp);
        const root = dirname(files[0]!);
        if (mode === "together") {
          const out = await d.inputs(root, files);
          return files.map((f) => out[basename(f)]!);
        }
        const digests: string[] = [];
        for (const f of files) digests.push((await d.inputs(root, [f]))[basename(f)]!);
        return digests;
      });
      await closeHashWorkers(); // the next run starts its threads again, as a new build would
      let size = 0;
      for (const f of files) size += (await stat(f)).size;
      if (hashStats.bytes - before !== size) throw new Error(`Digester hashed ${hashStats.bytes - before} bytes, expected ${size}`);
      return s;
    },
  };
}

function variant(v: HashVariant, file: string): Contender {
  return { name: v.name, command: `${v.name} (this thread)`, run: () => inProcess(async () => [await v.hash(file)]) };
}

/** `beforeEach` runs untimed before every timed run (to drop the page cache). */
async function rounds(contenders: readonly Contender[], n: number, expected: readonly string[], beforeEach?: () => void): Promise<Map<Contender, Sample[]>> {
  const samples = new Map(contenders.map((c) => [c, [] as Sample[]]));
  for (let i = 0; i < n; i++) {
    for (const c of rotated(contenders, i)) {
      beforeEach?.();
      const s = await c.run();
      if (s.digests.join() !== expected.join()) throw new Error(`${c.name}: digests ${s.digests.join()} differ from openssl's ${expected.join()}`);
      samples.get(c)!.push(s);
    }
  }
  return samples;
}

const pct = (x: number) => `${(x * 100).toFixed(0)}%`;

export async function hashingBench(tmp: string, bigFile: string, parts: readonly string[], reps: number): Promise<{ rows: Row[]; notes: string[] }> {
  const rows: Row[] = [];
  const notes: string[] = [];
  const size = (await stat(bigFile)).size;
  const cores = availableParallelism();

  // The reference digests, from one untimed read of everything (which also warms the page cache).
  log(`hashing: reference digests (load ${load()})`);
  const [ref] = (await openssl([bigFile]).run()).digests;
  const partRefs = (await openssl(parts).run()).digests;
  const fromDisk = dropPageCache();
  const drop = fromDisk ? () => void dropPageCache() : undefined;
  const source = fromDisk ? "from disk" : "from page cache";
  notes.push(
    fromDisk
      ? "'hash from disk': the page cache was dropped (sync; echo 3 > /proc/sys/vm/drop_caches) before every timed run, so every byte was read from the disk; a fresh stat cache each time."
      : "'hash from page cache': this process may not drop the page cache (that needs root), so the bytes were read from memory, warmed by an untimed read; a fresh stat cache each time. Reading from disk is slower still, for openssl and the Digester alike.",
  );

  // 1. One big file.
  {
    const ossl = openssl([bigFile]);
    const dig = digester(tmp, [bigFile], "together");
    log(`hashing: ${fmtBytes(size)} file ${source}, ${reps} rounds (load ${load()})`);
    const s = await rounds([ossl, dig], reps, [ref!], drop);
    const rate = (c: Contender) => median(s.get(c)!.map((x) => mbps(size, x.ms)));
    const cpuRate = (c: Contender) => median(s.get(c)!.map((x) => mbps(size, x.cpuS * 1000)));
    rows.push({ bench: `hash ${source}, one ${fmtBytes(size)} file`, command: ossl.command, numbers: `${rate(ossl).toFixed(0)} MB/s (per CPU second: ${cpuRate(ossl).toFixed(0)} MB)`, ratio: "reference" });
    const ratio = rate(dig) / rate(ossl);
    rows.push({
      bench: `hash ${source}, one ${fmtBytes(size)} file`,
      command: `${dig.command}, fresh stat cache`,
      numbers: `${rate(dig).toFixed(0)} MB/s (per CPU second: ${cpuRate(dig).toFixed(0)} MB)`,
      ratio: `${pct(ratio)} of openssl (target ≥ ${pct(TARGET)}: ${ratio >= TARGET ? "met" : "MISSED"}); per CPU second ${pct(cpuRate(dig) / cpuRate(ossl))}`,
    });
  }

  // 2. The ways to hash a file in Node, on one part, each against openssl in the same rounds.
  {
    const file = parts[0]!;
    const partSize = (await stat(file)).size;
    const wasm = await hashWasmVariant();
    if (!wasm) notes.push("hash-wasm is not installed (not a dependency): its variant was skipped.");
    const ossl = openssl([file]);
    const all = [ossl, ...[...variants, ...(wasm ? [wasm] : [])].map((v) => variant(v, file))];
    log(`hashing: ${all.length - 1} variants on a ${fmtBytes(partSize)} file, page cache warm, ${reps} rounds (load ${load()})`);
    await ossl.run(); // warms the page cache again: these rows compare hashing code, not disks
    const s = await rounds(all, reps, [partRefs[0]!]);
    const rate = (c: Contender) => median(s.get(c)!.map((x) => mbps(partSize, x.ms)));
    const cpuRate = (c: Contender) => median(s.get(c)!.map((x) => mbps(partSize, x.cpuS * 1000)));
    for (const c of all) {
      rows.push({
        bench: `variant, one ${fmtBytes(partSize)} file, page cache warm`,
        command: c === ossl ? c.command : c.name,
        numbers: `${rate(c).toFixed(0)} MB/s (per CPU second: ${cpuRate(c).toFixed(0)} MB)`,
        ratio: c === ossl ? "reference" : `${pct(rate(c) / rate(ossl))} of openssl; per CPU second ${pct(cpuRate(c) / cpuRate(ossl))}`,
      });
    }
  }

  // 3. Several files at once: the Digester's threads against the same Digester one file at a time, and one openssl.
  {
    let total = 0;
    for (const p of parts) total += (await stat(p)).size;
    const together = digester(tmp, parts, "together");
    const oneByOne = digester(tmp, parts, "one by one");
    const ossl = openssl(parts);
    const loadBefore = loadavg()[0]!;
    log(`hashing: ${parts.length} files of ${fmtBytes(total / parts.length)} ${source}, ${reps} rounds (load ${load()})`);
    const s = await rounds([together, oneByOne, ossl], reps, partRefs, drop);
    const wall = (c: Contender) => median(s.get(c)!.map((x) => x.ms));
    const util = (c: Contender) => median(s.get(c)!.map((x) => x.cpuS / (x.ms / 1000)));
    /** MB hashed per CPU second, all threads counted: the per-core rate, which no number of threads inflates. */
    const perCpu = (c: Contender) => median(s.get(c)!.map((x) => mbps(total, x.cpuS * 1000)));
    /** The busy threads of the median-wall run: how the work was spread. */
    const spread = (c: Contender) => {
      const runs = [...s.get(c)!].sort((a, b) => a.ms - b.ms);
      const t = runs[runs.length >> 1]!.busyThreads;
      return t ? `; ${t.length} busy thread${t.length > 1 ? "s" : ""} (${t.map((x) => x.toFixed(1)).join(" + ")} CPU s)` : "";
    };
    const what = `hash ${source}, ${parts.length} × ${fmtBytes(total / parts.length)}`;
    for (const c of [together, oneByOne, ossl]) {
      rows.push({
        bench: what,
        command: c.command,
        numbers: `${(wall(c) / 1000).toFixed(2)} s, ${mbps(total, wall(c)).toFixed(0)} MB/s, CPU ${pct(util(c))} (of ${cores * 100}%)${spread(c)}; per CPU second ${perCpu(c).toFixed(0)} MB`,
        ratio:
          c === together
            ? `x${(wall(oneByOne) / wall(together)).toFixed(2)} vs one by one, x${(wall(ossl) / wall(together)).toFixed(2)} vs openssl (${cores} threads vs one process); per core ${pct(perCpu(together) / perCpu(ossl))} of openssl`
            : c === ossl
              ? "reference (one process, one core)"
              : `per core ${pct(perCpu(c) / perCpu(ossl))} of openssl`,
      });
    }
    const busy = Math.max(loadBefore, loadavg()[0]!);
    if (busy > cores - 1) {
      notes.push(
        `${what}: the load average was ${busy.toFixed(1)} on ${cores} cores, so other work held the cores these wall times compete for; ` +
          "the busy threads (CPU seconds per thread, from /proc) show how the Digester spread the work whatever the load.",
      );
    }
  }
  return { rows, notes };
}
