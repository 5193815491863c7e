// The remote backends the remote-cache tests run the same scenarios against: an S3 server (moto) on
// 127.0.0.1, and a shared folder (file://). Objects are named by their key under the remote's root.
import { copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { BASE_CONFIG, FakeProject } from "./fake-project.ts";
import { startS3, type S3Server } from "./s3-server.ts";

export interface Remote {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** The `cache:` keys of a remote under `prefix`, which exists once this returns. */
  settings(prefix: string): Record<string, string>;
  readonly env: Record<string, string>;
  /** How messages name an object: its URL, or its path. */
  where(key: string): string;
  /** The command the refusals give to delete it. */
  removal(key: string): string;
  put(key: string, body: string): Promise<void>;
  remove(key: string): Promise<void>;
  exists(key: string): Promise<boolean>;
  read(key: string): Promise<string>;
}

export const BUCKET = "team-cache";

export function s3Remote(): Remote & { readonly server: S3Server; readonly client: S3Client } {
  let server: S3Server | undefined;
  let client: S3Client | undefined;
  const c = () => client!;
  return {
    name: "S3",
    get server() {
      return server!;
    },
    get client() {
      return c();
    },
    async start() {
      server = await startS3();
      client = new S3Client({ endpoint: server.endpoint, forcePathStyle: true, region: "us-east-1", credentials: { accessKeyId: "testing", secretAccessKey: "testing" } });
      await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
    },
    async stop() {
      client?.destroy();
      await server?.stop();
    },
    settings: (prefix) => ({ remote: `s3://${BUCKET}/${prefix}`, endpoint: server!.endpoint }),
    get env() {
      return server!.env;
    },
    where: (key) => `s3://${BUCKET}/${key}`,
    removal: (key) => `aws s3 rm s3://${BUCKET}/${key}`,
    put: async (key, body) => void (await c().send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }))),
    remove: async (key) => void (await c().send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key }))),
    exists: (key) => c().send(new HeadObjectCommand({ Bucket: BUCKET, Key: key })).then(() => true, () => false),
    read: async (key) => (await c().send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))).Body!.transformToString(),
  };
}

export function folderRemote(): Remote & { readonly root: string } {
  // Resolved: the backend names objects by the folder's real path.
  const root = realpathSync(mkdtempSync(join(tmpdir(), "shared-cache-")));
  const path = (key: string) => join(root, key);
  return {
    name: "shared folder",
    root,
    start: async () => undefined,
    stop: async () => rmSync(root, { recursive: true, force: true }),
    settings(prefix) {
      mkdirSync(path(prefix));
      return { remote: `file://${path(prefix)}` };
    },
    env: {},
    where: path,
    removal: (key) => `rm ${path(key)}`,
    async put(key, body) {
      mkdirSync(dirname(path(key)), { recursive: true });
      rmSync(path(key), { force: true });
      writeFileSync(path(key), body);
    },
    remove: async (key) => rmSync(path(key), { force: true }),
    exists: async (key) => existsSync(path(key)) && lstatSync(path(key)).isFile(),
    read: async (key) => readFileSync(path(key), "utf8"),
  };
}

export interface Team {
  readonly prefix: string;
  /** A clone with its own local store, sharing the remote; `lockFrom` gives it that project's pipeline.lock. */
  clone(options?: { lockFrom?: FakeProject; inputs?: Record<string, string>; extra?: string }): FakeProject;
}

let prefixes = 0;

/** Projects sharing one remote prefix, each with its own local store (as on teammates' machines). */
export function team(remote: Remote, settings: Record<string, string> = {}): Team {
  const prefix = `run-${process.pid}-${++prefixes}`;
  const shared = { ...remote.settings(prefix), ...settings };
  return {
    prefix,
    clone({ lockFrom, inputs, extra = "" } = {}) {
      const all = { dir: mkdtempSync(join(tmpdir(), "store-")), ...shared };
      const yaml = `${BASE_CONFIG}cache:\n${Object.entries(all).map(([k, v]) => `  ${k}: ${v}\n`).join("")}${extra}`;
      const p = new FakeProject(yaml, inputs);
      p.env = remote.env;
      if (lockFrom) copyFileSync(lockFrom.path("pipeline.lock"), p.path("pipeline.lock"));
      return p;
    },
  };
}

export const storeOf = (p: FakeProject): string => /dir: (.*)/.exec(p.read("pipeline.yaml"))![1]!;
export const fingerprintOf = (p: FakeProject, node: string): string => new RegExp(`\\n  ${node}:\\n[\\s\\S]*?fingerprint: ([0-9a-f]{64})`).exec(p.read("pipeline.lock"))![1]!;
/** The digest pipeline.lock records for an output file. */
export const digestOf = (p: FakeProject, file: string): string => new RegExp(`${file.replace(".", "\\.")}: ([0-9a-f]{64})`).exec(p.read("pipeline.lock"))![1]!;
export const outputs = (p: FakeProject): string[] => ["source/all.txt", "lower/out.txt", "report/report.txt"].map((f) => p.read(`models/${f}`));
/** A string matched literally inside a RegExp. */
export const literal = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
