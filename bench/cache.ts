// Benchmark: the build cache on a big output (bench/big-pipeline.ts, whose `weights` node splits the input
// into 4 parts), each contender beside what the same work costs without the tool, in the same run:
//  - restore of that output from the local store (copy + sha256 of every file) against `cp` of the same files
//    plus `sha256sum` of the copies, interleaved;
//  - push and pull of it through a local S3 server (moto) against plain parallel PutObject/GetObject of the same
//    bytes from the same process and server: moto on 2 cores is slow, so only the ratio means something.
import { createReadStream, createWriteStream, statSync } from "node:fs";
import { mkdir, readdir, rm, writeFile, copyFile } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fmtBytes, log, mbps, median, REPO, rotated, timed, TSX_ARGS, type Row } from "./lib.ts";
import { startS3 } from "../test/helpers/s3-server.ts";

const BIG = join(REPO, "bench/big-pipeline.ts");
const ENV = { ...process.env, CI: "true" };
const CONFIG = `report:\n  title: Weekly\ntools:\n  fake: "1.0"\n`;

async function cli(dir: string, args: string[], env: NodeJS.ProcessEnv = ENV): Promise<{ ms: number; json: { nodes?: { id: string; status: string }[] } }> {
  const r = await timed(process.execPath, [...TSX_ARGS, BIG, ...args, "--json"], { cwd: dir, env });
  if (r.code !== 0) throw new Error(`${args.join(" ")} in ${dir} failed (exit ${r.code}):\n${r.stdout}\n${r.stderr.slice(-2000)}`);
  return { ms: r.ms, json: JSON.parse(r.stdout) as { nodes?: { id: string; status: string }[] } };
}

const statusOf = (json: { nodes?: { id: string; status: string }[] }, id: string) => json.nodes?.find((n) => n.id === id)?.status;

/** `p`: the built big-pipeline project of the other benchmarks; a build cache is added to its config here. */
export async function cacheBench(tmp: string, p: { dir: string }, bytes: number, reps: number): Promise<{ rows: Row[]; notes: string[] }> {
  const rows: Row[] = [];
  const notes: string[] = [];
  const store = join(tmp, "store");
  await writeFile(join(p.dir, "pipeline.yaml"), `${CONFIG}cache:\n  dir: ${store}\n`);
  await cli(p.dir, ["weights", "--force", "weights"]); // recorded in the store

  const output = join(p.dir, "models", "weights");
  const parts = (await readdir(output)).filter((n) => n.includes(".part")).sort();
  log(`cache: restore of ${fmtBytes(bytes)} against cp + sha256sum of the same ${parts.length} files, ${reps} rounds interleaved`);
  const times: Record<string, number[]> = { plain: [], restore: [] };
  const copies = join(tmp, "plain-copy");
  for (let round = 0; round < reps; round++) {
    for (const which of rotated(["plain", "restore"] as const, round)) {
      if (which === "plain") {
        await rm(copies, { recursive: true, force: true });
        await mkdir(copies);
        const cp = await timed("cp", [...parts.map((n) => join(output, n)), copies]);
        const sum = await timed("sha256sum", parts.map((n) => join(copies, n)));
        if (cp.code !== 0 || sum.code !== 0) throw new Error(`cp/sha256sum failed: ${cp.stderr}${sum.stderr}`);
        times.plain!.push(cp.ms + sum.ms);
      } else {
        await rm(output, { force: true });
        const r = await cli(p.dir, ["weights"]);
        if (statusOf(r.json, "weights") !== "restored") throw new Error(`weights was ${statusOf(r.json, "weights")}, not restored`);
        times.restore!.push(r.ms);
      }
    }
  }
  await rm(copies, { recursive: true, force: true });
  const plainCopy = median(times.plain!);
  const restore = median(times.restore!);
  rows.push({
    bench: `restore ${fmtBytes(bytes)}`,
    command: "rm models/weights; big-pipeline weights  vs  cp + sha256sum",
    numbers: `restore ${(restore / 1000).toFixed(1)} s (${mbps(bytes, restore).toFixed(0)} MB/s, CLI start and digests included); cp + sha256sum ${(plainCopy / 1000).toFixed(1)} s`,
    ratio: `restore/plain ${(restore / plainCopy).toFixed(2)} (goal ≤ 1.3)`,
  });
  notes.push(
    "restore: the whole CLI (start-up, planning, copy, sha256 of every file, publish, lock) against the bare copy and hash of the same bytes. " +
      "On ext4 both are full copies; on btrfs/XFS (FICLONE) and APFS (cp -c) the restore's copy is a clone.",
  );

  log(`cache: push and pull of ${fmtBytes(bytes)} through moto, against plain parallel PutObject/GetObject`);
  const server = await startS3();
  const env = { ...ENV, ...server.env };
  try {
    const { S3Client, CreateBucketCommand, PutObjectCommand, GetObjectCommand } = await import("@aws-sdk/client-s3");
    const s3 = new S3Client({ endpoint: server.endpoint, forcePathStyle: true, region: "us-east-1", credentials: { accessKeyId: "testing", secretAccessKey: "testing" }, requestChecksumCalculation: "WHEN_REQUIRED", responseChecksumValidation: "WHEN_REQUIRED" });
    await s3.send(new CreateBucketCommand({ Bucket: "bench" }));
    const remote = `  remote: s3://bench/cache\n  endpoint: ${server.endpoint}\n`;
    await writeFile(join(p.dir, "pipeline.yaml"), `${CONFIG}cache:\n  dir: ${store}\n${remote}`);
    const files = parts.map((n) => join(output, n));
    const push = await cli(p.dir, ["push", "weights"], env);
    let started = performance.now();
    await Promise.all(files.map((f, i) => s3.send(new PutObjectCommand({ Bucket: "bench", Key: `plain/${i}`, Body: createReadStream(f), ContentLength: statSync(f).size }))));
    const plainUp = performance.now() - started;

    const clone = join(tmp, "clone");
    await rm(clone, { recursive: true, force: true });
    await mkdir(join(clone, "input"), { recursive: true });
    await writeFile(join(clone, "pipeline.yaml"), `${CONFIG}cache:\n  dir: ${join(tmp, "clone-store")}\n${remote}`);
    await copyFile(join(p.dir, "pipeline.lock"), join(clone, "pipeline.lock"));
    const pull = await cli(clone, ["pull", "weights"], env);

    // The same objects the pull fetched (the entry's blobs), all at once, as a plain parallel client would.
    const keys = (await readdir(join(tmp, "clone-store", "blobs"), { recursive: true })).filter((n) => /[0-9a-f]{64}$/.test(n)).map((n) => `cache/blobs/${n.split("/").at(-1)}`);
    if (keys.length !== parts.length) throw new Error(`the pull fetched ${keys.length} blobs, not ${parts.length}`);
    started = performance.now();
    await Promise.all(
      keys.map(async (key, i) => {
        const body = (await s3.send(new GetObjectCommand({ Bucket: "bench", Key: key }))).Body as Readable;
        await pipeline(body, createWriteStream(join(tmp, `plain-download-${i}`)));
      }),
    );
    const plainDown = performance.now() - started;
    s3.destroy();
    rows.push({
      bench: `push ${fmtBytes(bytes)} to S3 (moto)`,
      command: `big-pipeline push weights  vs  ${parts.length} parallel PutObject`,
      numbers: `push ${mbps(bytes, push.ms).toFixed(0)} MB/s (${(push.ms / 1000).toFixed(0)} s, local blobs re-hashed); plain ${mbps(bytes, plainUp).toFixed(0)} MB/s (${(plainUp / 1000).toFixed(0)} s)`,
      ratio: `push/plain time ${(push.ms / plainUp).toFixed(2)}`,
    });
    rows.push({
      bench: `pull ${fmtBytes(bytes)} from S3 (moto)`,
      command: `big-pipeline pull weights  vs  ${parts.length} parallel GetObject`,
      numbers: `pull ${mbps(bytes, pull.ms).toFixed(0)} MB/s (${(pull.ms / 1000).toFixed(0)} s, sha256 verified); plain ${mbps(bytes, plainDown).toFixed(0)} MB/s (${(plainDown / 1000).toFixed(0)} s)`,
      ratio: `pull/plain time ${(pull.ms / plainDown).toFixed(2)} (goal ≤ 1.2)`,
    });
    notes.push(
      "push: each file re-hashed, then multipart, 32 MiB parts, 4 in flight per file, 2 files at once; pull: 4 files at once, each one stream hashed as it lands. " +
        "moto reassembles a multipart upload in Python on completion, so on it a single PutObject is faster; S3 itself takes parts in parallel.",
    );
  } finally {
    await server.stop();
  }
  return { rows, notes };
}
