// The shared real-model configs, each placed alone as config.json in a temp folder, as a user's
// model folder would look before any weights are downloaded.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ModelShape, readModelShape } from "../../guard/model-shape.ts";

export const CONFIGS_DIR = join(import.meta.dirname, "../fixtures/model-configs");

export interface ConfigFolder {
  readonly name: string;
  readonly folder: string;
  readonly shape: ModelShape;
}

let cached: ConfigFolder[] | undefined;

export function configFolders(): ConfigFolder[] {
  cached ??= writeFolders(mkdtempSync(join(tmpdir(), "guard-configs-")));
  return cached;
}

function writeFolders(root: string): ConfigFolder[] {
  return readdirSync(CONFIGS_DIR)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((file) => {
      const folder = join(root, file.replace(/\.json$/, ""));
      mkdirSync(folder);
      const path = join(folder, "config.json");
      writeFileSync(path, readFileSync(join(CONFIGS_DIR, file)));
      return { name: file, folder, shape: readModelShape(JSON.parse(readFileSync(path, "utf8")), path) };
    });
}

export function shapeOf(name: string): ModelShape {
  const found = configFolders().find((c) => c.name === name);
  if (!found) throw new Error(`no shared config ${name}`);
  return found.shape;
}
