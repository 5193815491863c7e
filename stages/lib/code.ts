// The code a stage runs is part of what decides its output: its own TypeScript, the helpers of stages/lib
// it imports (transitively), and the versions of the npm packages that code imports (the chat template
// renderer, the shuffle's generator, ...). A `git pull` that fixes the rendering makes `formatted` stale.
// An edit to the engine or the guards does not. Nor does one to another stage's module, although a stage
// may import names and readers from it: counting those would retrain adapters whenever data.ts is touched,
// and the other stage's output, what such readers read, is an input already, by its digest.
import { readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import type { NodeSpec } from "../../engine/types.ts";
import { toolFile } from "./toolchain/paths.ts";

const STAGES = toolFile("stages");
const LIB = toolFile("stages", "lib");

/** Value imports and re-exports, static or dynamic; `import type` is erased and decides nothing. */
const IMPORTS = /(?:^|;|\n)\s*(?:import|export)\s+(?!type\s)(?:[^"';]*?\sfrom\s*)?["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/g;

/** Packages that only validate what the stages read: another version can reject a file, not change an output. */
const NOT_SHAPING = new Set(["zod"]);

interface StageCode {
  /** The stage's module and the stages/lib helpers it imports, absolute. */
  readonly files: readonly string[];
  /** npm package → installed version, e.g. { "npm:@huggingface/jinja": "0.5.1" }. */
  readonly packages: Readonly<Record<string, string>>;
}

const memo = new Map<string, StageCode>();

function packageName(specifier: string): string {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]!;
}

function packageVersion(name: string): string {
  try {
    return (JSON.parse(readFileSync(toolFile("node_modules", name, "package.json"), "utf8")) as { version: string }).version;
  } catch {
    return "missing";
  }
}

/** The code closure of one stage module (read once per process: a few small files). */
export function stageCode(module: string): StageCode {
  const known = memo.get(module);
  if (known) return known;
  const files = new Set<string>();
  const packages: Record<string, string> = {};
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    for (const m of readFileSync(file, "utf8").matchAll(IMPORTS)) {
      const specifier = (m[1] ?? m[2])!;
      if (specifier.startsWith(".")) {
        const target = resolve(dirname(file), specifier);
        if (!relative(LIB, target).startsWith("..") && target.endsWith(".ts")) visit(target);
      } else if (!specifier.startsWith("node:")) {
        const name = packageName(specifier);
        if (!NOT_SHAPING.has(name)) packages[`npm:${name}`] = packageVersion(name);
      }
    }
  };
  visit(module);
  const code = { files: [...files].sort(), packages };
  memo.set(module, code);
  return code;
}

/** The node with its code (stages/<id>.ts, by the stages' naming) added to its inputs. */
export function withStageCode<C>(node: NodeSpec<C>): NodeSpec<C> {
  const code = () => stageCode(join(STAGES, `${node.id}.ts`));
  return {
    ...node,
    async inputs(ctx) {
      const declared = await node.inputs(ctx);
      const { files, packages } = code();
      return { ...declared, files: [...declared.files, ...files], tools: { ...declared.tools, ...packages } };
    },
  };
}
