// Build progress on stderr: listr2 tasks in a terminal, plain throttled lines in CI or a pipe.
import type { DefaultRenderer, ListrTaskWrapper, SimpleRenderer } from "listr2";
import type { BuildObserver, NodeReport } from "./runner.ts";

export interface Observer extends BuildObserver {
  done(): Promise<void>;
}

const PLAIN_THROTTLE_MS = 5_000;

function seconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function summary(r: NodeReport): string {
  switch (r.status) {
    case "ran":
      return `${r.id}: built in ${seconds(r.ms)}`;
    case "restored":
      return `${r.id}: restored from the build cache in ${seconds(r.ms)}`;
    case "fresh":
      return `${r.id}: up to date`;
    case "cutoff":
      return `${r.id}: up to date (${r.reason})`;
    case "failed":
      return `${r.id}: FAILED after ${seconds(r.ms)}`;
    case "skipped":
      return `${r.id}: skipped (${r.reason})`;
    default: {
      const never: never = r.status;
      return never;
    }
  }
}

export async function createObserver(order: readonly string[], work: boolean): Promise<Observer> {
  const interactive = work && process.stderr.isTTY === true && !process.env.CI;
  return interactive ? listrObserver(order, await import("listr2")) : plainObserver();
}

function plainObserver(): Observer {
  const lastProgress = new Map<string, number>();
  const write = (line: string) => process.stderr.write(line + "\n");
  return {
    nodeRunning: (id, reason) => write(`[${id}] rebuilding: ${reason}`),
    progress(id, line) {
      const now = Date.now();
      if (now - (lastProgress.get(id) ?? 0) < PLAIN_THROTTLE_MS) return;
      lastProgress.set(id, now);
      write(`[${id}] ${line}`);
    },
    note: (id, line) => write(`[${id}] ${line}`),
    nodeFinished(r) {
      write(`${r.status === "failed" ? "✗" : "✓"} ${summary(r)}`);
      if (r.status === "failed") write(r.reason);
    },
    done: async () => undefined,
  };
}

type Task = ListrTaskWrapper<unknown, typeof DefaultRenderer, typeof SimpleRenderer>;

interface TaskState {
  output?: string;
  report?: NodeReport;
  finish?: (r: NodeReport) => void;
}

/** Bridges the engine's events onto a listr2 list that shows one task per node, in build order. */
function listrObserver(order: readonly string[], { Listr, ListrLogger, ProcessOutput }: typeof import("listr2")): Observer {
  const states = new Map<string, TaskState>(order.map((id) => [id, {}]));
  const tasks = new Map<string, Task>();
  const processOutput = new ProcessOutput(process.stderr, process.stderr);
  const list = new Listr(
    order.map((id) => ({
      title: id,
      task: (_ctx: unknown, task: Task) =>
        new Promise<void>((resolve, reject) => {
          const state = states.get(id)!;
          tasks.set(id, task);
          if (state.output) task.output = state.output;
          const settle = (r: NodeReport) => {
            task.title = summary(r);
            if (r.status === "failed") reject(new Error(r.reason));
            else if (r.status === "skipped") {
              task.skip(summary(r));
              resolve();
            } else resolve();
          };
          if (state.report) settle(state.report);
          else state.finish = settle;
        }),
    })),
    {
      concurrent: false,
      exitOnError: true,
      registerSignalListeners: false,
      renderer: "default",
      rendererOptions: { logger: new ListrLogger({ processOutput }), collapseSubtasks: false },
    },
  );
  const running = list.run().catch(() => undefined);
  /** Notes (a final loss, a file size) outlive the task list's transient output lines. */
  const notes: string[] = [];
  return {
    nodeRunning(id, reason) {
      this.progress(id, `rebuilding: ${reason}`);
    },
    progress(id, line) {
      states.get(id)!.output = line;
      const task = tasks.get(id);
      if (task) task.output = line;
    },
    note(id, line) {
      notes.push(`${id}: ${line}`);
      this.progress(id, line);
    },
    nodeFinished(r) {
      const state = states.get(r.id)!;
      state.report = r;
      state.finish?.(r);
    },
    async done() {
      await running;
      if (notes.length > 0) process.stderr.write(`\n${notes.join("\n")}\n`);
      // Failures are also printed in full, after the list, where long messages stay readable.
      for (const s of states.values()) if (s.report?.status === "failed") process.stderr.write(`\n${s.report.reason}\n`);
    },
  };
}
