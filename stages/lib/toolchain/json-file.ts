// The JSON files stages publish and read back (toolchain.json, model.json). Planning reads them on every
// build, so their zod schemas are built on first use and each parse is memoized by content: a warm no-op
// never loads zod (see engine/parse-cache.ts).
import { readFile } from "node:fs/promises";
import type { z } from "zod";
import { parseCached } from "../../../engine/parse-cache.ts";
import type { Json } from "../../../engine/types.ts";
import { userCacheDir } from "./paths.ts";
import { zod } from "../../../engine/packages.ts";

export type Zod = typeof z;

export interface JsonFile<S extends z.ZodType> {
  /** What the file is, for the cache slot. */
  readonly name: string;
  /** The source file that defines the schema (its bytes key the memo). */
  readonly code: string;
  schema(zod: Zod): S;
}

export function jsonFile<S extends z.ZodType>(name: string, code: string, schema: (zod: Zod) => S): JsonFile<S> {
  return { name, code, schema };
}

export type JsonOf<F> = F extends JsonFile<infer S> ? z.output<S> : never;

/** Reads `path` as JSON and validates it; throws the JSON or zod error as it is. */
export async function readJsonFile<S extends z.ZodType>(path: string, file: JsonFile<S>): Promise<z.output<S>> {
  const text = await readFile(path, "utf8");
  const parser = {
    id: file.name,
    code: [file.code],
    packages: ["zod"],
    parse: async (t: string) => file.schema(zod().z).parse(JSON.parse(t)) as Json,
  };
  return (await parseCached(userCacheDir(), parser, text)) as z.output<S>;
}
