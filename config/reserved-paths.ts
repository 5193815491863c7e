// models/ and cache/ belong to the tool: it replaces and sweeps what is in them on every build. A path in
// pipeline.yaml that points into them (a previous output as the base model, data under models/) would be
// read while the build replaces it, so it is a config error, said before anything runs.
import { homedir } from "node:os";
import { join, relative, resolve, sep } from "node:path";
import type { PipelineConfig } from "./schema.ts";
import { UserError } from "../engine/types.ts";
import { parseModelRef } from "./model-ref.ts";

const RESERVED = ["models", "cache"] as const;

function expand(path: string): string {
  return path.startsWith("~/") ? join(homedir(), path.slice(2)) : path;
}

/** How a path meets a reserved folder, if it does: inside it, or (a recursive glob from above) reaching into it. */
function reservedFolder(root: string, path: string): string | undefined {
  const abs = resolve(root, expand(path));
  const parts = abs.split(sep);
  const firstGlob = parts.findIndex((p) => /[*?[\]{}!]/.test(p));
  const base = firstGlob < 0 ? abs : parts.slice(0, firstGlob).join(sep);
  for (const name of RESERVED) {
    const folder = join(root, name);
    const inside = relative(folder, base);
    if (inside === "" || !inside.startsWith("..")) return `is inside ${name}/`;
    // A recursive glob from above the folder reaches into it too.
    if (firstGlob >= 0 && parts.slice(firstGlob).includes("**") && !relative(base, folder).startsWith("..")) return `reaches into ${name}/`;
  }
  return undefined;
}

/** Throws a config error (exit 2) naming every key whose path is inside models/ or cache/. */
export function assertNoReservedPaths(config: PipelineConfig, root: string, configPath: string): void {
  const paths: [string, string][] = [
    ...(parseModelRef(config.model, root).kind === "local" ? [["model", config.model] as [string, string]] : []),
    ...config.data.files.map((f, i): [string, string] => [`data.files[${i}]`, f]),
    ...Object.entries(config.data.splits ?? {}).map(([k, f]): [string, string] => [`data.splits.${k}`, f ?? ""]),
    ...(config.llama_cpp ? [["llama_cpp", config.llama_cpp] as [string, string]] : []),
    ...(config.python ? [["python", config.python] as [string, string]] : []),
  ];
  const problems = paths.flatMap(([key, path]) => {
    const how = path ? reservedFolder(root, path) : undefined;
    return how ? [`${key}: ${path} ${how}, which the tool manages: it replaces or removes what is there when it builds.`] : [];
  });
  if (problems.length === 0) return;
  throw new UserError(
    `${configPath} names paths inside the tool's own folders:\n  ${problems.join("\n  ")}\n` +
      `Copy what you need out of them (e.g. \`cp -rL models/hf ./my-model\`) and name the copy; for a glob, name the folder it starts in (data/**/*.jsonl).`,
    2,
  );
}
