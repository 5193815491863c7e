// The machine a run is planned for: this one, or the one `check --memory 16GB --os macos` names.
import { readFileSync } from "node:fs";
import { totalmem, freemem } from "node:os";
import { parseMemorySize } from "../config/memory-size.ts";
import { usableMemory, type Machine, type OperatingSystem } from "./memory.ts";

export interface PlannedMachine extends Machine {
  /** "this machine" or "a 16 GiB macos machine", for messages. */
  readonly label: string;
  readonly usableBytes: number;
}

/** Linux's MemAvailable (what can be allocated without swapping), or free memory elsewhere. */
function availableBytes(): number {
  try {
    const line = readFileSync("/proc/meminfo", "utf8").split("\n").find((l) => l.startsWith("MemAvailable:"));
    const kb = Number(line?.split(/\s+/)[1]);
    if (Number.isFinite(kb) && kb > 0) return kb * 1024;
  } catch {
    // Not Linux.
  }
  return freemem();
}

export function plannedMachine(options: { os?: OperatingSystem; total?: string }): PlannedMachine {
  const currentOs: OperatingSystem = process.platform === "darwin" ? "macos" : "linux";
  const os = options.os ?? currentOs;
  const planned = options.total !== undefined || os !== currentOs;
  const totalBytes = options.total !== undefined ? parseMemorySize(options.total) : totalmem();
  const machine: Machine = planned ? { os, totalBytes } : { os, totalBytes, availableBytes: availableBytes() };
  const gib = (totalBytes / 2 ** 30).toFixed(0);
  return { ...machine, label: planned ? `a ${gib} GiB ${os} machine` : `this machine (${gib} GiB, ${os})`, usableBytes: usableMemory(machine) };
}
