// A node's fingerprint: everything that decides its output, hashed by value.
import type { FileDigest, Fingerprint, Json, TreeDigest } from "./types.ts";
import { sha256 } from "./digest.ts";

export interface FingerprintParts {
  readonly params: Json;
  readonly files: Readonly<Record<string, FileDigest>>;
  /** Output digests of the dependencies: a byte-identical rebuild upstream changes nothing here. */
  readonly upstream: Readonly<Record<string, TreeDigest>>;
  readonly tools: Readonly<Record<string, string>>;
  readonly command: Json;
}

/** JSON with object keys sorted at every depth, so equal values always serialize alike. */
function canonicalJson(value: Json): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k] as Json)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

export function fingerprintOf(id: string, parts: FingerprintParts): Fingerprint {
  return sha256(canonicalJson({ id, ...parts } as unknown as Json)) as Fingerprint;
}

/** Flattens nested params into dotted paths, so a diff can name "lora.rank" rather than "params". */
function flatten(value: Json, prefix = ""): Record<string, string> {
  if (value !== null && typeof value === "object" && !Array.isArray(value) && Object.keys(value).length > 0) {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(value)) Object.assign(out, flatten(v, prefix ? `${prefix}.${k}` : k));
    return out;
  }
  return { [prefix || "(value)"]: canonicalJson(value) };
}

/** Human reasons why `now` differs from `before`, most specific first. */
export function explainChange(before: FingerprintParts, now: FingerprintParts): string[] {
  const reasons: string[] = [];
  const diff = (kind: string, a: Record<string, string>, b: Record<string, string>, show: boolean) => {
    for (const key of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
      const x = a[key];
      const y = b[key];
      if (x === y) continue;
      if (x === undefined) reasons.push(`${kind} ${key} added${show ? ` (${y})` : ""}`);
      else if (y === undefined) reasons.push(`${kind} ${key} removed`);
      else reasons.push(`${kind} ${key} changed${show ? `: ${x} → ${y}` : ""}`);
    }
  };
  diff("param", flatten(before.params), flatten(now.params), true);
  diff("file", before.files, now.files, false);
  diff("upstream output", before.upstream, now.upstream, false);
  diff("tool", before.tools, now.tools, true);
  if (canonicalJson(before.command) !== canonicalJson(now.command)) reasons.push("command changed");
  return reasons;
}
