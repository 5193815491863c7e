// Build progress on stderr: listr2 tasks in a terminal, plain throttled lines in CI or a pipe.
import type { DefaultRenderer, ListrTaskWrapper, SimpleRenderer } from "listr2";
import type { BuildObserver, NodeReport } from "./engine.ts";

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
    case "cancelled":
      return `${r.id}: cancelled after ${seconds(r.ms)}`;
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

/** Plain lines; with nodes running at once, every line of a node's (even a multi-line message's) names it. */
function plainObserver(): Observer {
  const lastProgress = new Map<string, number>();
  const write = (id: string, text: string) => process.stderr.write(text.split("\n").map((l) => `[${id}] ${l}\n`).join(""));
  return {
    nodeRunning: (id, reason) => write(id, `rebuilding: ${reason}`),
    progress(id, line) {
      const now = Date.now();
      if (now - (lastProgress.get(id) ?? 0) < PLAIN_THROTTLE_MS) return;
      lastProgress.set(id, now);
      write(id, line);
    },
    note: write,
    nodeFinished(r) {
      const bad = r.status === "failed" || r.status === "cancelled";
      process.stderr.write(`${bad ? "✗" : "✓"} ${summary(r)}\n`);
      if (bad) write(r.id, r.reason);
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

/**
 * Bridges the engine's events onto a listr2 list that shows one task per node, in build order. The tasks
 * run concurrently, as the nodes do: each one's spinner turns while its node works, side by side; a node
 * not started yet says so in its title.
 */
function listrObserver(order: readonly string[], { Listr, ListrLogger, ProcessOutput }: typeof import("listr2")): Observer {
  const states = new Map<string, TaskState>(order.map((id) => [id, {}]));
  const tasks = new Map<string, Task>();
  const processOutput = new ProcessOutput(process.stderr, process.stderr);
  const list = new Listr(
    order.map((id) => ({
      title: `${id}: waiting`,
      task: (_ctx: unknown, task: Task) =>
        new Promise<void>((resolve, reject) => {
          const state = states.get(id)!;
          tasks.set(id, task);
          if (state.output) {
            task.title = id;
            task.output = state.output;
          }
          const settle = (r: NodeReport) => {
            task.title = summary(r);
            if (r.status === "failed" || r.status === "cancelled") reject(new Error(r.reason));
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
      concurrent: true,
      // A failure stops the engine starting nodes, not the list: the nodes still running go on showing.
      exitOnError: false,
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
      if (task) {
        task.title = id;
        task.output = line;
      }
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
      for (const [id, s] of states) {
        if (s.report?.status === "failed" || s.report?.status === "cancelled") process.stderr.write(`\n${id}: ${s.report.reason}\n`);
      }
    },
  };
}
