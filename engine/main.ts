// The command line's entry point. A build that found everything up to date is recorded with everything it read
// (replay/): the same command again, while none of that changed, is answered from the record without loading
// the graph, the engine or the stages. Any other command, or a record that no longer holds, runs the CLI.
import type { CliApp } from "./cli.ts";
import { replay } from "./replay/replay.ts";

export interface MainOptions {
  /** Whether to answer from, and write, no-op records (off: every command runs). */
  readonly replay: boolean;
  /** Started before the CLI's modules load, to overlap with them (an interpreter's version asked, say). */
  readonly prefetch?: () => Promise<void>;
}

export async function main<C>(app: CliApp<C>, argv: readonly string[], options: MainOptions): Promise<number> {
  if (options.replay) {
    const code = replay(argv, app.defaultConfig);
    if (code !== undefined) return code;
  }
  const trace = options.replay ? (await import("./replay/trace.ts")).startTrace() : undefined;
  const prefetched = options.prefetch?.();
  const { runCli } = await import("./cli.ts");
  await prefetched;
  let upToDate: { root: string; own: string[] } | undefined;
  const code = await runCli(app, argv, { upToDate: (project) => (upToDate = project) });
  const outcome = trace?.stop();
  if (outcome && upToDate && code === 0) {
    const [{ saveRecord }, { identityOf }] = await Promise.all([import("./replay/save.ts"), import("./replay/record.ts")]);
    await saveRecord(identityOf(argv, process.cwd()), outcome, upToDate, process.argv[1]!);
  }
  return code;
}
