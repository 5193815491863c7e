// The node contract and the value types the engine passes around.
// Branded strings keep a file digest, a tree digest and a fingerprint from being swapped by accident.

declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };

/** sha256 (hex) of one file's bytes. */
export type FileDigest = Brand<string, "FileDigest">;
/** sha256 (hex) of a folder's sorted manifest of (relative path, file digest). */
export type TreeDigest = Brand<string, "TreeDigest">;
/** sha256 (hex) of a node's canonical fingerprint parts. */
export type Fingerprint = Brand<string, "Fingerprint">;

/**
 * A node's published output by content: its result files, hashed into `digest` (what downstream fingerprints,
 * cutoff and the lock compare), and its records (`NodeSpec.records`), kept beside it but not hashed into it.
 */
export interface OutputDigests {
  readonly digest: TreeDigest;
  readonly files: Readonly<Record<string, FileDigest>>;
  readonly records?: Readonly<Record<string, FileDigest>>;
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** What a node declares it reads. Everything here goes into its fingerprint. */
export interface DeclaredInputs {
  /** Files, folders or globs (relative to the project root, or absolute; keyed as Digester.inputs says). */
  readonly files: readonly string[];
  /** The slice of the config the node reads, by value. */
  readonly params: Json;
  /** Versions of the external tools it runs, e.g. { mlx_lm: "0.32.2" }. */
  readonly tools: Readonly<Record<string, string>>;
  /** The exact command or tool config it will run. */
  readonly command: Json;
}

export type VerdictLevel = "ok" | "warn" | "error";

export interface Verdict {
  readonly level: VerdictLevel;
  /** Stable machine-readable code, e.g. "memory.exceeds". */
  readonly code: string;
  readonly message: string;
  /** A concrete thing to do; empty for ok verdicts. */
  readonly fix?: string;
}

export interface NodeVerdict extends Verdict {
  readonly node: string;
}

/** Things a node may look at while declaring inputs or guarding. */
export interface BaseCtx<C> {
  readonly config: C;
  /** Absolute project folder (where pipeline.yaml lives). */
  readonly root: string;
  /** Absolute path of a dependency's published output folder. */
  upstream(id: string): string;
  /** Whether a dependency's output is already published (guards run before anything is built). */
  isBuilt(id: string): boolean;
}

export interface ExecOptions {
  readonly cwd?: string;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Called with every output line (split on \n and \r, ANSI stripped). */
  readonly onLine?: (line: string) => void;
  /** Kill the process group (SIGKILL) after this long: a hung native tool becomes a failure, not a stuck build. */
  readonly timeoutMs?: number;
  /** Kills this one process group when aborted (a node's own watchdog), beside the build's signal. */
  readonly signal?: AbortSignal;
}

export interface ExecResult {
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly logPath: string;
  /** Last lines of the combined output, for error messages. */
  readonly tail: readonly string[];
  /** Killed because it ran past ExecOptions.timeoutMs. */
  readonly timedOut?: boolean;
}

export interface RunCtx<C> extends BaseCtx<C> {
  /** Fresh empty folder: the only place run() may write its output. */
  readonly staging: string;
  /** Folder kept across interrupted runs of the same fingerprint (checkpoints); removed on success. */
  readonly scratch: string;
  readonly signal: AbortSignal;
  /** Digests of the files the node declared, as hashed for its fingerprint. */
  readonly inputDigests: Readonly<Record<string, FileDigest>>;
  /** Facts about the build kept in pipeline.lock beside the fingerprint (not part of it), e.g. a hub revision. */
  record(facts: Readonly<Record<string, Json>>): void;
  /** Runs a subprocess in its own process group, streaming its output to the node's log. */
  exec(command: string, args: readonly string[], options?: ExecOptions): Promise<ExecResult>;
  /** Replaces the node's live progress line. */
  progress(line: string): void;
  /** Writes a line to the node's log and to the output shown after the build. */
  note(line: string): void;
}

export type NodeWeight = "heavy" | "light";

export interface NodeSpec<C> {
  readonly id: string;
  readonly deps: readonly string[];
  readonly description: string;
  /**
   * How much of the machine its run takes. Two heavy nodes (training, compiling, anything that fills the
   * memory or every core) never run at once, whatever -j says; light ones (a download, a pip install) run
   * beside anything. Default: light.
   */
  readonly weight?: NodeWeight;
  /**
   * Output files (relative paths in the output folder) that record how a run went rather than what it made:
   * timings, free memory. They are kept, restored and pushed like the rest but left out of the output digest,
   * so a rebuild with identical results cuts off. No node may read another's records: no fingerprint covers them.
   */
  readonly records?: readonly string[];
  /**
   * Facts (`RunCtx.record` keys) that say how a run was made rather than what it made, and can change its bytes
   * though no input changed: a thread count, the CPU. A rebuild from the lock's inputs that gives other bytes
   * names those that differ from the lock's build. Not inputs: another machine may still restore the output.
   */
  readonly conditions?: readonly string[];
  /** Called once the dependencies are built (their outputs can be read). */
  inputs(ctx: BaseCtx<C>): Promise<DeclaredInputs> | DeclaredInputs;
  /** Cheap checks before anything expensive runs. */
  guard(ctx: BaseCtx<C>): Promise<readonly Verdict[]> | readonly Verdict[];
  run(ctx: RunCtx<C>): Promise<void>;
  /** Optional: something outside the output folder the output relies on (a cached venv) is gone. */
  intact?(outputDir: string): Promise<string | undefined> | string | undefined;
}

/** A failure with a message meant for the user; the CLI prints it without a stack. */
export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2 = 1,
  ) {
    super(message);
    this.name = "UserError";
  }
}

/** What a stage does with a tool's result: unless it exited 0, a UserError with its last output lines and the log path. */
export function assertSuccess(result: ExecResult, what: string, lines = 15): void {
  if (result.exitCode === 0) return;
  const how = result.timedOut ? "hung and was killed at its time limit" : result.signal ? `was killed by ${result.signal}` : `exited with code ${result.exitCode}`;
  const tail = result.tail.slice(-lines).map((l) => `    ${l}`).join("\n");
  throw new UserError(`${what} ${how}. Last lines of ${result.logPath}:\n${tail}`);
}
