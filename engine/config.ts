// Loads a YAML config and validates it with a zod schema; errors name the file, line, key path and value.
// yaml and zod are loaded only when the file or the schema changed since the last load (see parse-cache.ts).
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { z } from "zod";
import { yaml } from "./packages.ts";
import { parseCached } from "./parse-cache.ts";
import type { Json } from "./types.ts";
import { UserError } from "./types.ts";

export interface ConfigSchema<S extends z.ZodType> {
  /** Loads the schema: kept out of the static imports so that a warm run never loads zod. */
  load(): Promise<S>;
  /** The source files that define the schema: an edit to them invalidates the stored parse. */
  readonly code: readonly string[];
}

function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** The config at `path`, validated; parses are stored under the project's cache/ folder. */
export async function loadYamlConfig<S extends z.ZodType>(path: string, schema: ConfigSchema<S>): Promise<z.output<S>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    throw new UserError(`Config file ${path} not found. Create it, or pass another with --config FILE.`, 2);
  }
  const parser = { id: "config", code: [import.meta.filename, ...schema.code], packages: ["yaml", "zod"], parse: () => validate(path, text, schema) };
  return parseCached(join(dirname(path), "cache"), parser, text) as Promise<z.output<S>>;
}

async function validate<S extends z.ZodType>(path: string, text: string, schema: ConfigSchema<S>): Promise<Json> {
  const { isNode, LineCounter, parseDocument } = yaml();
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true });
  if (doc.errors.length > 0) {
    const messages = doc.errors.map((e) => {
      const at = e.linePos?.[0];
      return `${path}:${at ? `${at.line}:${at.col}` : "?"}: ${e.message.split(" at line")[0]}`;
    });
    throw new UserError(`${path} is not valid YAML:\n  ${messages.join("\n  ")}`, 2);
  }
  const data: unknown = doc.toJS() ?? {};
  const result = (await schema.load()).safeParse(data);
  if (result.success) return result.data as Json;

  const messages = result.error.issues.map((issue) => {
    const keys = issue.path.map(String);
    // Point at the deepest key that exists in the file.
    let line: number | undefined;
    for (let n = keys.length; n >= 0 && line === undefined; n--) {
      const node = doc.getIn(issue.path.slice(0, n) as (string | number)[], true);
      if (isNode(node) && node.range) line = lines.linePos(node.range[0]).line;
    }
    const key = keys.length > 0 ? keys.join(".") : "(top level)";
    let value: unknown = data;
    for (const k of issue.path) value = (value as Record<PropertyKey, unknown> | undefined)?.[k as PropertyKey];
    const got = issue.code === "unrecognized_keys" ? "" : ` (got ${describe(value)})`;
    return `${path}:${line ?? 1}: ${key}: ${issue.message}${got}`;
  });
  throw new UserError(`${path} has ${messages.length} problem${messages.length > 1 ? "s" : ""}:\n  ${messages.join("\n  ")}`, 2);
}
