// What the engine's phases share: the project it builds, and one explicit state object each phase reads and
// updates (no phase keeps state of its own). Types only: importing it loads nothing.
import type { Digester } from "./digest.ts";
import type { FingerprintParts } from "./fingerprint.ts";
import type { LockNodes } from "./lockfile.ts";
import type { OutputStore } from "./outputs.ts";
import type { Fingerprint, TreeDigest } from "./types.ts";
import type { Graph } from "./graph.ts";
import type { CacheSettings } from "./caching/cache.ts";
import type { BuildCache } from "./caching/build-cache.ts";

export interface Project<C> {
  readonly root: string;
  readonly config: C;
  readonly graph: Graph<C>;
  /** The folder (relative to root) where nodes publish their outputs, one entry per node id. */
  readonly outputs: string;
  /** The build cache; none: every stale node runs. */
  readonly cache?: CacheSettings;
  /**
   * The folder of the app that defines the graph (its stage code, its scripts): an input file in it is keyed
   * by its path there, not by where this machine has the app, so every checkout gives the same fingerprints.
   */
  readonly toolRoot?: string;
  /** Environment every tool a node runs gets, under the node's own (what the app's tools need to stream their output). */
  readonly toolEnv?: Readonly<Record<string, string>>;
}

/** cancelled: it was running when the build was interrupted (Ctrl-C, SIGTERM, SIGHUP); its output was discarded. */
export type NodeStatus = "ran" | "restored" | "fresh" | "cutoff" | "failed" | "skipped" | "cancelled";

export interface NodeReport {
  readonly id: string;
  readonly status: NodeStatus;
  readonly reason: string;
  /** When the node started, in ms since the build started: with `ms`, a timeline of the build. */
  readonly startedMs: number;
  readonly ms: number;
}

/** What `status` says of one node. */
export interface NodeState {
  readonly id: string;
  readonly stale: boolean;
  /** Stale, and its new fingerprint is in the build cache: it would be restored, not run. */
  readonly restore?: boolean;
  readonly reasons: readonly string[];
}

/** Receives what happens during a build; the CLI renders it. */
export interface BuildObserver {
  /** A node is about to run, and why. */
  nodeRunning(id: string, reason: string): void;
  progress(id: string, line: string): void;
  note(id: string, line: string): void;
  nodeFinished(report: NodeReport): void;
}

/** A node's fingerprint, its parts, and why it is stale (empty: fresh). */
export interface Evaluation {
  readonly parts: FingerprintParts;
  readonly fingerprint: Fingerprint;
  readonly reasons: string[];
}

/** The build in progress: what the signal handler reports of every node. */
export interface LiveBuild {
  readonly order: readonly string[];
  readonly start: number;
  readonly reports: Map<string, NodeReport>;
  /** Nodes working now, and when they started. */
  readonly running: Map<string, number>;
}

export interface EngineState<C> {
  readonly project: Project<C>;
  readonly digester: Digester;
  readonly store: OutputStore;
  readonly lockPath: string;
  readonly cacheDir: string;
  /** false: --no-remote, the build keeps to the local store. */
  readonly remote: boolean;
  /** false (a `-S` build): lock entries are kept in this process only, pipeline.lock stays as committed. */
  readonly writeLock: boolean;
  /** pipeline.lock's entries as this process knows them. */
  lock: LockNodes;
  /** Output digests known in this process: from the lock for fresh nodes, from the build for rebuilt ones. */
  readonly outputDigests: Map<string, TreeDigest>;
  /** Evaluations made by `status`, reused by `build` for a node none of whose dependencies ran since. */
  readonly planned: Map<string, Evaluation>;
  /** Nodes whose published output exists and matches their current fingerprint: all a guard may read. */
  readonly fresh: Set<string>;
  /** Whether `status` ran, so `fresh` is known. */
  assessed: boolean;
  /** Nodes whose guards ran in this process. */
  readonly guarded: Set<string>;
  cache: Promise<BuildCache> | undefined;
  /** The staging folders being written (one per running node), removed by the signal handler. */
  readonly stagings: Set<string>;
  /** Lock writes, one after the other: concurrent completions each rewrite the whole file from what is on disk. */
  lockWrites: Promise<void>;
  live: LiveBuild | undefined;
}
