// The command line's entry point. A build that found everything up to date is recorded with everything it read
// (replay/): the same command again, while none of that changed, is answered from the record without loading
// the graph, the engine or the stages. Any other command, or a record that no longer holds, runs the CLI.
import type { CliApp } from "./cli.ts";
import type { RecordedProject } from "./replay/save.ts";
import { identityOf } from "./replay/record.ts";
import { replay } from "./replay/replay.ts";

export interface MainOptions {
  /** Whether to answer from, and write, no-op records (off: every command runs). */
  readonly replay: boolean;
  /** Started before the CLI's modules load, to overlap with them (an interpreter's version asked, say). */
  readonly prefetch?: () => Promise<void>;
}

export async function main<C>(app: CliApp<C>, argv: readonly string[], options: MainOptions): Promise<number> {
  // Taken before anything runs: the run may set variables of its own.
  const identity = options.replay ? identityOf(argv, process.cwd()) : undefined;
  if (identity) {
    const code = replay(argv, app.defaultConfig, identity);
    if (code !== undefined) return code;
  }
  const trace = identity ? (await import("./replay/trace.ts")).startTrace() : undefined;
  const prefetched = options.prefetch?.();
  const { runCli } = await import("./cli.ts");
  await prefetched;
  let upToDate: RecordedProject | undefined;
  const code = await runCli(app, argv, { upToDate: (project) => (upToDate = project) });
  const outcome = trace?.stop();
  if (identity && outcome && upToDate && code === 0) {
    const { saveRecord } = await import("./replay/save.ts");
    // A record only makes the next no-op faster: one that cannot be written (a read-only cache folder) is no error.
    await saveRecord(identity, outcome, upToDate, process.argv[1]!).catch(() => undefined);
  }
  return code;
}
