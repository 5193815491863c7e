// llama.cpp never runs in the tool's process: only the child worker may import node-llama-cpp (an abort in
// llama.cpp then ends the child, not the build). Every other module reaches it through stages/lib/llama/child.ts.
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO } from "../helpers/cli.ts";

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.(ts|mjs)$/.test(e.name))
    .map((e) => join(e.parentPath, e.name));
}

describe("llama.cpp out of process", () => {
  it("only stages/lib/llama/worker.mjs imports node-llama-cpp", () => {
    const files = ["engine", "stages", "guard", "config"].flatMap((d) => sources(join(REPO, d))).concat(join(REPO, "pipeline.ts"));
    const importing = files.filter((f) => /(from|import\()\s*["']node-llama-cpp["']/.test(readFileSync(f, "utf8"))).map((f) => relative(REPO, f));
    expect(importing).toEqual(["stages/lib/llama/worker.mjs"]);
  });
});
