// A cache entry's manifest, as read from the local store or a remote: the one schema every reader checks
// before a path or digest in it reaches the file system. A manifest names files the restore writes and
// blobs it reads (and, when they are corrupt, deletes): a bucket writer must not reach anything else.
// Loaded with the store only (zod is not part of a warm no-op).
import { posix } from "node:path";
import type { output } from "zod";
import { zod } from "../packages.ts";
import type { FileDigest, Fingerprint, TreeDigest } from "../types.ts";
import { UserError } from "../types.ts";

const { z } = zod();

/** Bigger than any real manifest (one line per output file) by far; checked before a byte is read. */
export const MAX_MANIFEST_BYTES = 8 << 20;

const HEX64 = /^[0-9a-f]{64}$/;

/** A manifest's file name in a store or a remote: its fingerprint, `.json`. */
export const MANIFEST_NAME = /^[0-9a-f]{64}\.json$/;

/** A path inside the output: relative, normalized, no `..`, no empty or `.` segment, no NUL or backslash. */
export function isInsidePath(rel: string): boolean {
  if (rel.length === 0 || rel.length > 4096 || rel.startsWith("/") || /[\0\\]/.test(rel)) return false;
  return posix.normalize(rel) === rel && rel.split("/").every((s) => s !== "" && s !== "." && s !== "..");
}

const relPath = z.string().refine(isInsidePath, { message: "not a normalized relative path inside the output" });
const digest = z.string().regex(HEX64, "not a sha256 (64 lowercase hex digits)");

export const manifestSchema = z
  .object({
    version: z.literal(1),
    node: z.string().min(1),
    fingerprint: digest.transform((s) => s as Fingerprint),
    output: z.object({
      digest: digest.transform((s) => s as TreeDigest),
      files: z.record(relPath, digest.transform((s) => s as FileDigest)),
      /** Records of the run (timings, machine facts): restored like files, not part of the digest. */
      records: z.record(relPath, digest.transform((s) => s as FileDigest)).optional(),
    }),
    /** Bytes per file (relative path), for progress, `cache` and `gc`. */
    sizes: z.record(relPath, z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)),
    /** Files restored with the executable bit. */
    executable: z.array(relPath),
    facts: z.record(z.string(), z.json()).optional(),
    /** The node's params and the project that built it: lets `report` overlay a project's earlier trainings. */
    params: z.json().optional(),
    project: z
      .string()
      .regex(/^[0-9a-f]{16}$/)
      .transform((s) => s as ProjectId)
      .optional(),
    /** The output digests of the nodes it was built from: links an eval's entry back to the training it scored. */
    upstream: z.record(z.string(), digest).optional(),
    /** When it was built, and how long its run took: the `runs` table's when and wall time. */
    built: z.iso.datetime().optional(),
    seconds: z.number().nonnegative().optional(),
  })
  .superRefine((m, ctx) => {
    const records = Object.keys(m.output.records ?? {});
    for (const rel of records) if (rel in m.output.files) ctx.addIssue({ code: "custom", path: ["output", "records", rel], message: "is also listed as a file" });
    const files = [...Object.keys(m.output.files), ...records];
    for (const rel of files) if (m.sizes[rel] === undefined) ctx.addIssue({ code: "custom", path: ["sizes", rel], message: "a file without a size" });
    const all = new Set(files);
    for (const rel of m.executable) if (!all.has(rel)) ctx.addIssue({ code: "custom", path: ["executable"], message: `${rel} is not a file of the output` });
    // "a" and "a/b" cannot both be files: one would have to be a folder.
    for (const rel of files) {
      const parts = rel.split("/");
      for (let i = 1; i < parts.length; i++) {
        if (all.has(parts.slice(0, i).join("/"))) ctx.addIssue({ code: "custom", path: ["output", "files", rel], message: "lies under another file" });
      }
    }
  });

/** What a node's fingerprint made: enough to materialize its output and write its lock entry. */
export type Manifest = output<typeof manifestSchema>;

/** A project, as manifests name it: a digest of its root, so entries pushed to a remote do not carry a user's paths. */
export type ProjectId = string & { readonly __brand: "ProjectId" };

/** An entry that is there but must not be used: refused with where it is and what to delete. Not a config error. */
export class InvalidEntry extends UserError {}

/**
 * The manifest in `text` if it is one, and the one asked for; `where` names it (the store path or the S3 URL)
 * and `remove` says how to delete it, for the refusal (no final stop: callers append what happens next).
 */
export function parseManifest(text: string, node: string, fingerprint: Fingerprint, where: string, remove: string): Manifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new InvalidEntry(`build cache: ${where} is not a manifest (not JSON): refused. ${remove}`);
  }
  const r = manifestSchema.safeParse(json);
  if (!r.success) {
    let issue = r.error.issues[0]!;
    const at = issue.path.map(String).join(".");
    // A record's bad key (a path) is reported as "Invalid key in record"; the reason is the inner issue.
    while (issue.code === "invalid_key" && issue.issues[0]) issue = issue.issues[0];
    throw new InvalidEntry(`build cache: ${where} is not a valid manifest (${at ? `${at}: ` : ""}${issue.message}): refused. ${remove}`);
  }
  if (r.data.node !== node || r.data.fingerprint !== fingerprint) {
    throw new InvalidEntry(`build cache: ${where} names another entry (${r.data.node} ${r.data.fingerprint.slice(0, 12)}…): refused. ${remove}`);
  }
  return r.data;
}

export function tooBig(bytes: number, where: string, remove: string): InvalidEntry {
  return new InvalidEntry(`build cache: ${where} is ${bytes} bytes, more than a manifest can be (${MAX_MANIFEST_BYTES}): refused unread. ${remove}`);
}
