// An S3 bucket (or MinIO, Cloudflare R2, any S3-compatible store) as a remote build cache. Loaded only when a
// remote is used: the SDK costs ~70 ms of CPU to load (its CommonJS build: engine/packages.ts), which a warm
// no-op must not pay.
//
//   <prefix>/blobs/<sha256>
//   <prefix>/manifests/<node>/<fingerprint>.json
//
// Credentials come from the AWS chain alone (environment, ~/.aws profiles, SSO, instance roles): never from
// pipeline.yaml, never printed. Every download is hashed as it streams to a temp file in the local store
// and adopted only when its sha256 is its name, so a tampered or truncated object is never used; every
// manifest is validated (manifest.ts) before anything in it is used, and refused unread past a size.
//
// A build must not depend on the remote: every failure of the remote as a whole is a RemoteUnavailable, which
// the build turns into one warning (build-cache.ts). Requests of a few bytes have a deadline; transfers a
// connection and an idle limit, so a slow remote fails instead of hanging the build.
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { rm } from "node:fs/promises";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { S3Client } from "@aws-sdk/client-s3";
import { awsS3, awsUpload } from "../packages.ts";
import type { FileDigest, Fingerprint } from "../types.ts";
import { UserError } from "../types.ts";
import { RemoteUnavailable, type BlobPaths, type Progress, type RemoteCache, type RemoteSettings } from "./cache.ts";
import type { LocalStore } from "./local.ts";
import { InvalidEntry, MANIFEST_NAME, MAX_MANIFEST_BYTES, parseManifest, tooBig, type Manifest } from "./manifest.ts";
import { assertIntact, blobsOf, fetchEntry, missingBlob, parallel, tamperedBlob, type Blob } from "./remote.ts";

// The pinned SDK supports Node 20; its multi-line notice about future releases would bury our one-line errors.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
const s3 = awsS3();
const { Upload } = awsUpload();

/** Multipart: 32 MiB parts, 4 in flight per file, 2 files at once: lib-storage buffers partSize × queueSize per file. */
const PART_SIZE = 32 << 20;
const QUEUE_SIZE = 4;
/** Files uploaded at once (each buffers PART_SIZE × QUEUE_SIZE), and downloaded at once (streamed, no buffer). */
const PARALLEL_UPLOADS = 2;
const PARALLEL_DOWNLOADS = 4;
/** A request of a few bytes (the bucket check, a manifest, a HEAD) taking longer: the remote is too slow to use. */
const SMALL_REQUEST_MS = 10_000;
/**
 * A connection taking longer to open, or a transfer idle longer: the remote is unreachable or stalled. Generous:
 * completing a multipart upload of GBs sends nothing back until the server has assembled the object.
 */
const CONNECT_MS = 5_000;
const IDLE_MS = 120_000;

const deadline = () => ({ abortSignal: AbortSignal.timeout(SMALL_REQUEST_MS) });

export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
  if (!m) throw new UserError(`cache.remote: "${url}" is not an S3 URL. Write it as s3://bucket/prefix (a bucket name: 3-63 lowercase letters, digits, dots, hyphens).`, 2);
  return { bucket: m[1]!, prefix: (m[2] ?? "").replace(/\/+$/, "") };
}

/** One line naming the setting and the fix, for the errors users meet setting a remote up. */
function explain(e: unknown, settings: RemoteSettings, bucket: string): Error {
  if (e instanceof UserError) return e;
  const err = e as { name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number }; cause?: { code?: string } };
  const name = err.name ?? "";
  const status = err.$metadata?.httpStatusCode;
  const where = settings.endpoint ?? "AWS S3";
  if (name === "CredentialsProviderError" || /Could not load credentials/.test(err.message ?? "")) {
    return new RemoteUnavailable("cache.remote: no AWS credentials found. Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with ~/.aws/credentials (never in pipeline.yaml).", 2);
  }
  if (["InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "AccessDenied", "Forbidden"].includes(name) || status === 403) {
    return new RemoteUnavailable(`cache.remote: ${where} refused the credentials for bucket "${bucket}" (${name || status}). Check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, and that they may read (and push: write) the bucket.`, 2);
  }
  if (name === "NoSuchBucket" || (name === "NotFound" && status === 404)) {
    return new RemoteUnavailable(`cache.remote: bucket "${bucket}" does not exist at ${where}. Create it, or fix cache.remote${settings.endpoint ? " / cache.endpoint" : ""}.`, 2);
  }
  const code = err.code ?? err.cause?.code ?? "";
  if (["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "ECONNRESET", "EHOSTUNREACH", "ENETUNREACH", "EPIPE"].includes(code) || ["TimeoutError", "AbortError", "RequestTimeout"].includes(name)) {
    const what = ["TimeoutError", "AbortError"].includes(name) ? `no answer within ${SMALL_REQUEST_MS / 1000} s` : code || name;
    return new RemoteUnavailable(`cache.endpoint: cannot reach ${where} (${what}). Check cache.endpoint and the network, or build with --no-remote.`, 1);
  }
  if (status !== undefined && status >= 500) return new RemoteUnavailable(`cache.remote: ${where} answered ${status} (${name || "server error"}) for ${settings.url}. Try again later.`, 1);
  return new UserError(`remote cache ${settings.url}: ${name || "error"}: ${err.message ?? String(e)}`, 1);
}

function isMissing(e: unknown): boolean {
  const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
  return err.name === "NoSuchKey" || err.name === "NotFound" || err.$metadata?.httpStatusCode === 404;
}

export class S3Cache implements RemoteCache {
  private constructor(
    private readonly client: S3Client,
    private readonly settings: RemoteSettings,
    private readonly bucket: string,
    private readonly prefix: string,
    private readonly local: LocalStore,
  ) {}

  get name(): string {
    return this.settings.url;
  }

  /** Connects and checks the bucket once, so a bad setting fails with its one clear line before any transfer. */
  static async open(settings: RemoteSettings, local: LocalStore): Promise<S3Cache> {
    const { bucket, prefix } = parseS3Url(settings.url);
    const client = new s3.S3Client({
      region: settings.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? "us-east-1",
      ...(settings.endpoint ? { endpoint: settings.endpoint, forcePathStyle: true } : {}),
      requestHandler: { connectionTimeout: CONNECT_MS, socketTimeout: IDLE_MS },
      maxAttempts: 2,
      // Since 3.729 the SDK sends CRC32 checksums by default, which R2 and older S3-compatible servers reject.
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
    });
    try {
      await client.send(new s3.HeadBucketCommand({ Bucket: bucket }), deadline());
    } catch (e) {
      client.destroy();
      throw explain(e, settings, bucket);
    }
    return new S3Cache(client, settings, bucket, prefix, local);
  }

  private key(...parts: string[]): string {
    return [this.prefix, ...parts].filter(Boolean).join("/");
  }

  private manifestKey(node: string, fingerprint: Fingerprint): string {
    return this.key("manifests", node, `${fingerprint}.json`);
  }

  private url(key: string): string {
    return `s3://${this.bucket}/${key}`;
  }

  /** The entry's manifest, validated; undefined when there is none. An invalid one throws (InvalidEntry), naming its URL. */
  async manifest(node: string, fingerprint: Fingerprint): Promise<Manifest | undefined> {
    const url = this.url(this.manifestKey(node, fingerprint));
    const remove = `Delete it (aws s3 rm ${url}) and push the entry again from a trusted machine`;
    let text: string;
    try {
      const r = await this.client.send(new s3.GetObjectCommand({ Bucket: this.bucket, Key: this.manifestKey(node, fingerprint) }), deadline());
      const body = r.Body as Readable;
      // Refused before its body is read: a bucket writer must not make every build read gigabytes.
      if (r.ContentLength === undefined || r.ContentLength > MAX_MANIFEST_BYTES) {
        body.destroy();
        throw tooBig(r.ContentLength ?? Infinity, url, remove);
      }
      text = await r.Body!.transformToString();
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw e instanceof InvalidEntry ? e : explain(e, this.settings, this.bucket);
    }
    return parseManifest(text, node, fingerprint, url, remove);
  }

  async get(node: string, fingerprint: Fingerprint, progress?: Progress): Promise<Manifest | undefined> {
    const manifest = await this.manifest(node, fingerprint);
    return manifest && fetchEntry(this.local, manifest, PARALLEL_DOWNLOADS, (digest, onBytes) => this.download(digest, onBytes), progress);
  }

  async fingerprints(node: string): Promise<Fingerprint[]> {
    const prefix = `${this.key("manifests", node)}/`;
    const out: Fingerprint[] = [];
    let token: string | undefined;
    try {
      do {
        const page = await this.client.send(new s3.ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }), deadline());
        for (const { Key } of page.Contents ?? []) {
          // A key of another shape (a nested path, a stray upload) names no entry.
          const name = Key?.slice(prefix.length) ?? "";
          if (MANIFEST_NAME.test(name)) out.push(name.slice(0, -5) as Fingerprint);
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
    } catch (e) {
      throw explain(e, this.settings, this.bucket);
    }
    return out;
  }

  fetchBlob(digest: FileDigest): Promise<void> {
    return this.local.using(() => this.download(digest, () => {}));
  }

  /** Streams one blob into the local store, hashing as it goes; adopted only if the bytes are its name. */
  private async download(digest: FileDigest, onBytes: (n: number) => void): Promise<void> {
    const key = this.key("blobs", digest);
    let body: Readable;
    try {
      body = (await this.client.send(new s3.GetObjectCommand({ Bucket: this.bucket, Key: key }))).Body as Readable;
    } catch (e) {
      if (isMissing(e)) throw missingBlob(this.url(key));
      throw explain(e, this.settings, this.bucket);
    }
    const tmp = await this.local.tempPath();
    const hash = createHash("sha256");
    let bytes = 0;
    body.on("data", (chunk: Buffer) => {
      hash.update(chunk);
      bytes += chunk.length;
      onBytes(chunk.length);
    });
    try {
      await pipeline(body, createWriteStream(tmp));
      const actual = hash.digest("hex");
      if (actual !== digest) {
        throw tamperedBlob(this.url(key), actual, bytes, `aws s3 rm ${this.url(key)}`);
      }
      await this.local.adopt(tmp, digest);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e instanceof UserError ? e : explain(e, this.settings, this.bucket);
    }
  }

  async set(manifest: Manifest, blobs: BlobPaths, progress?: Progress): Promise<void> {
    await this.putBlobs(manifest, blobs, progress);
    // Blobs first, the manifest last: an entry on the remote never points at a missing blob.
    try {
      await this.client.send(
        new s3.PutObjectCommand({ Bucket: this.bucket, Key: this.manifestKey(manifest.node, manifest.fingerprint), Body: JSON.stringify(manifest, null, 1), ContentType: "application/json" }),
        deadline(),
      );
    } catch (e) {
      throw explain(e, this.settings, this.bucket);
    }
  }

  /**
   * Uploads the blobs of `manifest` the remote lacks (a HEAD for each), each re-hashed first: a local blob
   * rotted on disk is never published under a digest it does not hold. Returns how many were uploaded.
   */
  async putBlobs(manifest: Manifest, blobs: BlobPaths, progress?: Progress): Promise<number> {
    const all = blobsOf(manifest);
    const missing: Blob[] = [];
    await parallel(all, 8, async (b) => {
      if (!(await this.exists(this.key("blobs", b.digest)))) missing.push(b);
    });
    const total = missing.reduce((n, b) => n + b.size, 0);
    const sent = new Map<FileDigest, number>();
    const report = () => progress?.([...sent.values()].reduce((a, b) => a + b, 0), total);
    await parallel(missing, PARALLEL_UPLOADS, async (b) => {
      const path = blobs(b.digest, b.rel);
      await assertIntact(path, b);
      const upload = new Upload({
        client: this.client,
        params: { Bucket: this.bucket, Key: this.key("blobs", b.digest), Body: createReadStream(path) },
        partSize: PART_SIZE,
        queueSize: QUEUE_SIZE,
        leavePartsOnError: false, // an aborted multipart upload leaves no parts behind
      });
      upload.on("httpUploadProgress", (p) => {
        sent.set(b.digest, p.loaded ?? 0);
        report();
      });
      try {
        await upload.done();
      } catch (e) {
        throw explain(e, this.settings, this.bucket);
      }
      sent.set(b.digest, b.size);
      report();
    });
    return missing.length;
  }

  private async exists(key: string): Promise<boolean> {
    try {
      await this.client.send(new s3.HeadObjectCommand({ Bucket: this.bucket, Key: key }), deadline());
      return true;
    } catch (e) {
      if (isMissing(e)) return false;
      throw explain(e, this.settings, this.bucket);
    }
  }
}
