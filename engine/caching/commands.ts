// `cache`, `gc`, `push [node]`, `pull [node]`: the build cache from the command line.
import { statfs } from "node:fs/promises";
import type { Graph } from "../graph.ts";
import type { LockNodes } from "../lockfile.ts";
import type { Json } from "../types.ts";
import { UserError } from "../types.ts";
import type { BuildCache } from "./build-cache.ts";
import { REMOTE_FORMS } from "./backends.ts";
import { formatBytes, totalSize, transferLine, type Progress } from "./cache.ts";
import { uploadEntry } from "./remote.ts";

/** gc's default bound: a tenth of the file system the store is on. */
const DEFAULT_SHARE = 0.1;

function out(json: boolean, doc: Record<string, Json>, text: string): void {
  if (json) process.stdout.write(JSON.stringify(doc) + "\n");
  else process.stderr.write(text + "\n");
}

/** A transfer's progress line with its rate: redrawn in a terminal, every few seconds otherwise. */
function progressLine(label: string): { progress: Progress; end(): void } {
  const started = performance.now();
  const tty = process.stderr.isTTY === true && !process.env.CI;
  let last = 0;
  let line = "";
  return {
    progress(done, total) {
      line = `${label}: ${transferLine(done, total, started)}`;
      const now = performance.now();
      if (tty) process.stderr.write(`\r\x1b[2K${line}`);
      else if (now - last > 2000) {
        last = now;
        process.stderr.write(line + "\n");
      }
    },
    end() {
      if (line) process.stderr.write(tty ? `\r\x1b[2K${line}\n` : line + "\n");
    },
  };
}

/** What the cache commands read of a project: pipeline.lock's entries, the graph, and the build cache. */
export interface CacheProject {
  readonly lock: LockNodes;
  readonly graph: Pick<Graph<unknown>, "ids" | "order">;
  readonly cache: Promise<BuildCache> | undefined;
}

export async function cacheCommand(command: "cache" | "gc" | "push" | "pull", project: CacheProject, node: string | undefined, json: boolean): Promise<number> {
  const cache = await project.cache;
  if (!cache) throw new UserError("This project has no build cache configured.", 2);
  switch (command) {
    case "cache":
      return show(project, cache, json);
    case "gc":
      return gc(project, cache, json);
    case "push":
    case "pull":
      return transfer(command, project, cache, node, json);
    default: {
      const never: never = command;
      return never;
    }
  }
}

/** The lock's entries as node\0fingerprint: what gc never collects. */
function pinned(project: CacheProject): Set<string> {
  return new Set(Object.entries(project.lock).map(([id, e]) => `${id}\0${e.fingerprint}`));
}

async function show(project: CacheProject, cache: BuildCache, json: boolean): Promise<number> {
  const entries = await cache.local.entries();
  const blobs = await cache.local.blobs();
  const bytes = [...blobs.values()].reduce((n, b) => n + b.size, 0);
  const locked = pinned(project);
  const nodes: Record<string, { entries: number; bytes: number; inLock: boolean }> = {};
  for (const { manifest: m } of entries) {
    const n = (nodes[m.node] ??= { entries: 0, bytes: 0, inLock: false });
    n.entries++;
    n.bytes += totalSize(m);
    n.inLock ||= locked.has(`${m.node}\0${m.fingerprint}`);
  }
  const remote = cache.settings.remote;
  const rows = Object.entries(nodes)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([id, n]) => `  ${id.padEnd(12)} ${String(n.entries).padStart(4)} ${n.entries === 1 ? "entry  " : "entries"} ${formatBytes(n.bytes).padStart(10)}${n.inLock ? "   (the current lock's is here)" : ""}`);
  const text = [
    `build cache ${cache.local.dir}: ${formatBytes(bytes)} on disk in ${blobs.size} files, ${entries.length} entries`,
    ...rows,
    remote ? `remote: ${remote.url}${remote.endpoint ? ` at ${remote.endpoint}` : ""}${remote.push ? "" : " (read only: cache.push is false)"}` : "remote: none (set cache.remote to share builds)",
  ].join("\n");
  out(json, { dir: cache.local.dir, bytes, files: blobs.size, entries: entries.length, nodes, remote: remote?.url ?? null }, text);
  return 0;
}

async function gc(project: CacheProject, cache: BuildCache, json: boolean): Promise<number> {
  let maxSize = cache.settings.maxSize;
  if (maxSize === undefined) {
    const fs = await statfs(cache.local.dir).catch(() => undefined);
    maxSize = fs ? Math.floor(fs.blocks * fs.bsize * DEFAULT_SHARE) : 0;
  }
  const r = await cache.local.gc(pinned(project), maxSize, (pids) =>
    process.stderr.write(`gc: waiting for ${pids.length === 1 ? "the build" : "the builds"} using ${cache.local.dir} (pid ${pids.join(", ")}) to finish with it\n`),
  );
  const text = [
    `gc: removed ${r.removedEntries.length} ${r.removedEntries.length === 1 ? "entry" : "entries"}, freed ${formatBytes(r.freedBytes)}.`,
    `kept ${formatBytes(r.keptBytes)}: every entry pipeline.lock references or used in the last hour, then the most recently used within cache.max_size (${formatBytes(maxSize)}).`,
  ].join("\n");
  out(json, { removed: r.removedEntries.map((m) => ({ node: m.node, fingerprint: m.fingerprint })), freedBytes: r.freedBytes, keptBytes: r.keptBytes, maxSize }, text);
  return 0;
}

async function transfer(command: "push" | "pull", project: CacheProject, cache: BuildCache, node: string | undefined, json: boolean): Promise<number> {
  const settings = cache.settings.remote;
  if (!settings) throw new UserError(`No remote cache is configured: set cache.remote in pipeline.yaml (${REMOTE_FORMS}).`, 2);
  if (command === "push" && !settings.push) {
    throw new UserError("cache.push is false: this clone reads the remote cache but does not write it. Push from CI, or set cache.push: true.", 2);
  }
  const remote = await cache.remote();
  const graph = project.graph;
  const ids = node ? graph.order([node]) : graph.ids;
  const results: Record<string, string> = {};
  let failed = false;
  for (const id of ids) {
    const entry = project.lock[id];
    if (!entry) {
      results[id] = "not in pipeline.lock";
      continue;
    }
    const fp = entry.fingerprint;
    const bar = progressLine(`${command} ${id}`);
    try {
      // Entries are compared by output digest, not presence: the store keeps one entry per fingerprint, and a
      // rebuild elsewhere (training on another CPU) may have made one that is not the lock's.
      const want = entry.output.digest;
      if (command === "push") {
        const manifest = await cache.local.manifest(id, fp);
        if (!manifest) results[id] = "not in the local store: build it here (or pull it) first";
        else if (manifest.output.digest !== want) results[id] = "the local store's entry is not pipeline.lock's output (it was rebuilt here with other bytes): not pushed; push from the machine whose build pipeline.lock records";
        else results[id] = await uploadEntry(remote, manifest, (digest) => cache.local.blobPath(digest), true, bar.progress);
      } else {
        const local = await cache.local.manifest(id, fp);
        const there = local?.output.digest === want ? undefined : await remote.manifest(id, fp);
        if (local?.output.digest === want) results[id] = "already in the local store";
        else if (!there) results[id] = "not on the remote: a build runs it";
        else if (there.output.digest !== want) results[id] = "the remote's entry is not pipeline.lock's output: not pulled, a build runs it (push it again from the machine whose build pipeline.lock records)";
        else {
          const manifest = await remote.get(id, fp, bar.progress);
          results[id] = manifest?.output.digest === want
            ? `pulled ${formatBytes(totalSize(manifest))}${local ? " (the local store's entry was another build of the same inputs: replaced)" : ""}`
            : "the remote's entry changed while it was pulled: run pull again";
        }
      }
    } catch (e) {
      if (e instanceof UserError && e.exitCode === 2) throw e;
      failed = true;
      results[id] = `FAILED: ${(e as Error).message}`;
    } finally {
      bar.end();
    }
  }
  const text = Object.entries(results)
    .map(([id, r]) => `${r.startsWith("FAILED") ? "✗" : "✓"} ${id}: ${r}`)
    .join("\n");
  out(json, { ok: !failed, remote: settings.url, results }, text);
  return failed ? 1 : 0;
}
