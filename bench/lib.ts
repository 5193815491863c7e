// Shared helpers for the benchmarks: timed subprocesses, medians, the load average, the result table.
import { execFileSync, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { loadavg } from "node:os";

export { REPO, TSX_ARGS } from "../test/helpers/cli.ts";

/** One line of the printed table. */
export interface Row {
  readonly bench: string;
  readonly command: string;
  readonly numbers: string;
  readonly ratio: string;
}

export interface Timed {
  readonly ms: number;
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to completion; `ms` is the wall time from spawn to exit. */
export function timed(command: string, args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Timed> {
  return new Promise((resolvePromise, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolvePromise({ ms: performance.now() - started, code, stdout, stderr }));
  });
}

/** Like `timed`, under /usr/bin/time: also the child's CPU seconds (user + system). */
export async function timedWithCpu(command: string, args: readonly string[]): Promise<Timed & { cpuS: number }> {
  const r = await timed("/usr/bin/time", ["-f", "@@cpu %U %S", command, ...args]);
  const m = /@@cpu ([\d.]+) ([\d.]+)/.exec(r.stderr);
  if (r.code !== 0 || !m) throw new Error(`${command} ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return { ...r, cpuS: Number(m[1]) + Number(m[2]) };
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Lower and upper quartiles, to show the spread a shared machine adds. */
export function quartiles(xs: readonly number[]): [number, number] {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.round(q * (s.length - 1))))]!;
  return [at(0.25), at(0.75)];
}

/** Rotates the order each round, so no contender always runs first (or right after the same one). */
export function rotated<T>(items: readonly T[], round: number): T[] {
  const k = round % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

export function load(): string {
  return loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");
}

export const MB = 1e6;
export const GiB = 2 ** 30;

export function mbps(bytes: number, ms: number): number {
  return bytes / MB / (ms / 1000);
}

export function fmtBytes(n: number): string {
  if (n >= GiB) return `${(n / GiB).toFixed(n % GiB ? 2 : 0)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(0)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(0)} KiB`;
  return `${n} B`;
}

export function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

export function printTable(rows: readonly Row[]): void {
  const head: Row = { bench: "benchmark", command: "command", numbers: "numbers", ratio: "ratio / verdict" };
  const all = [head, ...rows];
  const w = (k: keyof Row) => Math.max(...all.map((r) => r[k].length));
  const widths = { bench: w("bench"), command: w("command"), numbers: w("numbers"), ratio: w("ratio") };
  const line = (r: Row) => `| ${r.bench.padEnd(widths.bench)} | ${r.command.padEnd(widths.command)} | ${r.numbers.padEnd(widths.numbers)} | ${r.ratio.padEnd(widths.ratio)} |`;
  const sep = `|${"-".repeat(widths.bench + 2)}|${"-".repeat(widths.command + 2)}|${"-".repeat(widths.numbers + 2)}|${"-".repeat(widths.ratio + 2)}|`;
  process.stdout.write([line(head), sep, ...rows.map(line)].join("\n") + "\n");
}

/**
 * Empties the kernel's page cache (`sync; echo 3 > /proc/sys/vm/drop_caches`), so the next read of a file
 * comes from the disk. Only root can, and not in every container: false when it could not.
 */
export function dropPageCache(): boolean {
  try {
    execFileSync("sync"); // dirty pages are not dropped: written out first, they are
    writeFileSync("/proc/sys/vm/drop_caches", "3\n");
    return true;
  } catch {
    return false;
  }
}
