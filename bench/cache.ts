// Benchmark: the build cache on a big output (bench/big-pipeline.ts, whose `weights` node splits the input
// into 4 parts).
//  - restore of that output from the local store against running the node that made it, interleaved;
//  - push and pull of it through a local S3 server (moto) against a plain sequential PutObject/GetObject of
//    the same bytes from the same process: moto on 2 cores is slow, so only the ratio means something.
import { createReadStream, createWriteStream, statSync } from "node:fs";
import { copyFile, mkdir, readdir, rm, writeFile } from "node:fs/promises";
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
  if (r.code !== 0) throw new Error(`${args.join(" ")} in ${dir} failed (exit ${r.code}):\n${r.stderr}`);
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

  log(`cache: restore of ${fmtBytes(bytes)} against running the node, ${reps} rounds interleaved`);
  const times: Record<string, number[]> = { run: [], restore: [] };
  for (let round = 0; round < reps; round++) {
    for (const which of rotated(["run", "restore"] as const, round)) {
      if (which === "run") {
        const r = await cli(p.dir, ["weights", "--force", "weights"]);
        if (statusOf(r.json, "weights") !== "ran") throw new Error("weights did not run");
        times.run!.push(r.ms);
      } else {
        await rm(join(p.dir, "models", "weights"), { force: true });
        const r = await cli(p.dir, ["weights"]);
        if (statusOf(r.json, "weights") !== "restored") throw new Error(`weights was ${statusOf(r.json, "weights")}, not restored`);
        times.restore!.push(r.ms);
      }
    }
  }
  const run = median(times.run!);
  const restore = median(times.restore!);
  rows.push({
    bench: `restore ${fmtBytes(bytes)}`,
    command: "rm models/weights; big-pipeline weights  vs  --force weights",
    numbers: `restore ${(restore / 1000).toFixed(1)} s (${mbps(bytes, restore).toFixed(0)} MB/s, digests verified); run ${(run / 1000).toFixed(1)} s`,
    ratio: `restore/run ${(restore / run).toFixed(2)}`,
  });
  notes.push(
    "The fake node only splits a file: real nodes (training, fusing, converting) take minutes to hours, so the restore time is the number to read. " +
      "On ext4 a restore is a full copy plus a sha256 pass; on btrfs/XFS (FICLONE) and APFS (cp -c) the copy is a clone.",
  );

  log(`cache: push and pull of ${fmtBytes(bytes)} through moto, against plain sequential PutObject/GetObject`);
  const server = await startS3();
  const env = { ...ENV, ...server.env };
  try {
    const { S3Client, CreateBucketCommand, PutObjectCommand, GetObjectCommand } = await import("@aws-sdk/client-s3");
    const s3 = new S3Client({ endpoint: server.endpoint, forcePathStyle: true, region: "us-east-1", credentials: { accessKeyId: "testing", secretAccessKey: "testing" }, requestChecksumCalculation: "WHEN_REQUIRED", responseChecksumValidation: "WHEN_REQUIRED" });
    await s3.send(new CreateBucketCommand({ Bucket: "bench" }));
    const remote = `  remote: s3://bench/cache\n  endpoint: ${server.endpoint}\n`;
    await writeFile(join(p.dir, "pipeline.yaml"), `${CONFIG}cache:\n  dir: ${store}\n${remote}`);
    const push = await cli(p.dir, ["push", "weights"], env);

    const parts = (await readdir(join(p.dir, "models", "weights"))).filter((n) => n.includes(".part")).map((n) => join(p.dir, "models", "weights", n));
    let started = performance.now();
    for (const [i, part] of parts.entries()) {
      await s3.send(new PutObjectCommand({ Bucket: "bench", Key: `plain/${i}`, Body: createReadStream(part), ContentLength: statSync(part).size }));
    }
    const plainUp = performance.now() - started;

    const clone = join(tmp, "clone");
    await rm(clone, { recursive: true, force: true });
    await mkdir(join(clone, "input"), { recursive: true });
    await writeFile(join(clone, "pipeline.yaml"), `${CONFIG}cache:\n  dir: ${join(tmp, "clone-store")}\n${remote}`);
    await copyFile(join(p.dir, "pipeline.lock"), join(clone, "pipeline.lock"));
    const pull = await cli(clone, ["pull", "weights"], env);

    started = performance.now();
    for (let i = 0; i < parts.length; i++) {
      const body = (await s3.send(new GetObjectCommand({ Bucket: "bench", Key: `plain/${i}` }))).Body as Readable;
      await pipeline(body, createWriteStream(join(tmp, "plain-download")));
    }
    const plainDown = performance.now() - started;
    s3.destroy();
    rows.push({
      bench: `push ${fmtBytes(bytes)} to S3 (moto)`,
      command: "big-pipeline push weights  vs  4 sequential PutObject",
      numbers: `push ${mbps(bytes, push.ms).toFixed(0)} MB/s (${(push.ms / 1000).toFixed(0)} s); plain ${mbps(bytes, plainUp).toFixed(0)} MB/s (${(plainUp / 1000).toFixed(0)} s)`,
      ratio: `push/plain speed ${(plainUp / push.ms).toFixed(2)}`,
    });
    rows.push({
      bench: `pull ${fmtBytes(bytes)} from S3 (moto)`,
      command: "big-pipeline pull weights  vs  4 sequential GetObject",
      numbers: `pull ${mbps(bytes, pull.ms).toFixed(0)} MB/s (${(pull.ms / 1000).toFixed(0)} s, sha256 verified); plain ${mbps(bytes, plainDown).toFixed(0)} MB/s (${(plainDown / 1000).toFixed(0)} s)`,
      ratio: `pull/plain speed ${(plainDown / pull.ms).toFixed(2)}`,
    });
    notes.push(
      "push: multipart, 32 MiB parts, 4 in flight per file, 2 files at once; pull: 2 files at once, each one stream hashed as it lands. " +
        "moto reassembles a multipart upload in Python on completion, so on it a single PutObject is faster; S3 itself takes parts in parallel.",
    );
  } finally {
    await server.stop();
  }
  return { rows, notes };
}
