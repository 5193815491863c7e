// Loads a YAML config and validates it with a zod schema; errors name the file, line, key path and value.
import { readFile } from "node:fs/promises";
import { isNode, LineCounter, parseDocument } from "yaml";
import type { z } from "zod";
import { UserError } from "./types.ts";

function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

export async function loadYamlConfig<S extends z.ZodType>(path: string, schema: S): Promise<z.output<S>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    throw new UserError(`Config file ${path} not found. Create it, or pass another with --config FILE.`, 2);
  }
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
  const result = schema.safeParse(data);
  if (result.success) return result.data;

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
