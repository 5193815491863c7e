// The one place a node is registered: its module (stages/<id>.ts), its weight, and through the module its code
// closure. Adding a node is its file plus one line in STAGES.
//
// A stage's code is an input of its output: its own module, the helpers of stages/lib and config/ it imports
// (transitively), and the versions of the npm packages that code imports (the chat template renderer, the
// shuffle's generator, ...). A `git pull` that fixes the rendering makes `formatted` stale. An edit to the engine
// or the guards does not, nor one to this registry (no stage imports it), nor one to another stage's module,
// although a stage may import names and readers from it: counting those would retrain adapters whenever data.ts
// is touched, and the other stage's output, what such readers read, is an input already, by its digest.
//
// The weight says how heavy a run is, for the engine's scheduler: two heavy nodes never run at once (see
// NodeSpec.weight). It is declared here, not in the stage's module: how a node is scheduled does not change
// what it builds, so declaring it there would make every built output stale.
import { readFileSync } from "node:fs";
import { dirname, relative, resolve } from "node:path";
import { parseModelRef } from "../config/model-ref.ts";
import type { PipelineConfig } from "../config/schema.ts";
import type { NodeSpec, NodeWeight } from "../engine/types.ts";
import { toolFile } from "./lib/toolchain/paths.ts";

type Node = NodeSpec<PipelineConfig>;

interface Stage<M> {
  /** The node's id; its module is stages/<id>.ts. */
  readonly id: string;
  /** Imported when the graph is built, and only when the command reads the node: a warm no-op loads only what planning needs. */
  readonly module: () => Promise<M>;
  readonly node: (module: M, config: PipelineConfig, root: string) => Node;
  /** Heavy: fills the memory with a whole model or keeps every core busy. */
  readonly weight: NodeWeight | ((config: PipelineConfig, root: string) => NodeWeight);
  /** Whether the config asks for the node at all (default: always). */
  readonly when?: (config: PipelineConfig) => boolean;
}

const stage = <M,>(s: Stage<M>): Stage<unknown> => s as Stage<unknown>;

/** A GGUF dequantized into a Hugging Face folder holds the whole model in memory; a download or a copy is light. */
const modelWeight = (config: PipelineConfig, root: string): NodeWeight => (["gguf", "pypi"].includes(parseModelRef(config.model, root).kind) ? "heavy" : "light");

export const STAGES: readonly Stage<unknown>[] = [
  stage({ id: "mlx-env", module: () => import("./mlx-env.ts"), node: (m) => m.mlxEnv, weight: "light" }), // pip installs
  stage({ id: "llama-cpp", module: () => import("./llama-cpp.ts"), node: (m) => m.llamaCppNode, weight: "light" }), // a git clone, pip installs
  stage({ id: "quantizer", module: () => import("./quantizer.ts"), node: (m) => m.quantizerNode, weight: "heavy", when: (c) => !!c.gguf.quantize }), // compiling llama.cpp keeps every core busy
  stage({ id: "model", module: () => import("./model.ts"), node: (m, c, root) => m.modelNode(c, root), weight: modelWeight }),
  stage({ id: "data", module: () => import("./data.ts"), node: (m) => m.dataNode, weight: "light" }), // small files
  stage({ id: "formatted", module: () => import("./formatted.ts"), node: (m) => m.formattedNode, weight: "light" }), // small files
  stage({ id: "adapters", module: () => import("./adapters.ts"), node: (m) => m.adaptersNode, weight: "heavy" }), // training takes the memory and every core
  stage({ id: "fused", module: () => import("./fused.ts"), node: (m) => m.fusedNode, weight: "heavy" }), // holds the whole model in memory, dequantized
  stage({ id: "hf", module: () => import("./hf.ts"), node: (m) => m.hfNode, weight: "heavy" }), // loads the model in transformers to prove it loads
  stage({ id: "gguf", module: () => import("./gguf.ts"), node: (m, c) => m.ggufNode(c), weight: "heavy" }), // converts the whole model, quantizes it on every core
  stage({ id: "eval", module: () => import("./eval.ts"), node: (m, c) => m.evalNode(c), weight: "heavy" }), // loads and runs three models
  stage({ id: "lora-gguf", module: () => import("./lora-gguf.ts"), node: (m) => m.loraGgufNode, weight: "light" }), // the adapters, megabytes, in PEFT layout then GGUF
  stage({ id: "base-gguf", module: () => import("./base-gguf.ts"), node: (m) => m.baseGgufNode, weight: "heavy" }), // converts the whole base model
  stage({ id: "llama-server", module: () => import("./llama-server.ts"), node: (m) => m.llamaServerNode, weight: "heavy" }), // compiling llama.cpp keeps every core busy
  stage({ id: "ollama", module: () => import("./ollama.ts"), node: (m) => m.ollamaNode, weight: "light" }), // a Modelfile, its template checked
  stage({ id: "deploy", module: () => import("./deploy.ts"), node: (m) => m.deployNode, weight: "light" }), // what ships, and the checks it needs
];

/**
 * The nodes the config asks for, each with its code among its inputs and its weight. With `scope`, only those
 * nodes and what they depend on: their modules are all a build of them imports, found by following each node's
 * deps (its module is the one place they are declared). Without it, or when it names a node that is not one, the
 * graph is built whole, and the graph's own check names every node.
 */
export async function stageNodes(config: PipelineConfig, root: string, scope?: readonly string[]): Promise<Node[]> {
  const wanted = new Map(STAGES.filter((s) => s.when?.(config) ?? true).map((s) => [s.id, s]));
  const nodes = new Map<string, Node>();
  let next = scope?.every((id) => wanted.has(id)) ? [...scope] : [...wanted.keys()];
  while (next.length > 0) {
    const batch = [...new Set(next)].filter((id) => !nodes.has(id) && wanted.has(id)); // an unknown dep: the graph says so
    const made = await Promise.all(batch.map((id) => stageNode(wanted.get(id)!, config, root)));
    for (const node of made) nodes.set(node.id, node);
    next = made.flatMap((n) => n.deps);
  }
  return [...wanted.keys()].filter((id) => nodes.has(id)).map((id) => nodes.get(id)!);
}

async function stageNode(s: Stage<unknown>, config: PipelineConfig, root: string): Promise<Node> {
  const node = s.node(await s.module(), config, root);
  if (node.id !== s.id) throw new Error(`stages/index.ts registers "${s.id}" but stages/${s.id}.ts makes a node "${node.id}": make them agree.`);
  return { ...withStageCode(node), weight: typeof s.weight === "function" ? s.weight(config, root) : s.weight };
}

/** The folders whose imported files are part of a stage's code. */
const CODE_ROOTS = [toolFile("stages", "lib"), toolFile("config")];

/** Value imports and re-exports, static or dynamic; `import type` is erased and decides nothing. */
const IMPORTS = /(?:^|;|\n)\s*(?:import|export)\s+(?!type\s)(?:[^"';]*?\sfrom\s*)?["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/g;

/** Packages that only validate what the stages read: another version can reject a file, not change an output. */
const NOT_SHAPING = new Set(["zod"]);

interface StageCode {
  /** The stage's module and the stages/lib and config/ files it imports (TypeScript or plain JavaScript), absolute. */
  readonly files: readonly string[];
  /** npm package → installed version, e.g. { "npm:@huggingface/jinja": "0.5.1" }. */
  readonly packages: Readonly<Record<string, string>>;
}

const memo = new Map<string, StageCode>();

function packageName(specifier: string): string {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]!;
}

const versions = new Map<string, string>();

/** An installed package's version, read once per process. */
function packageVersion(name: string): string {
  let version = versions.get(name);
  if (version === undefined) {
    try {
      version = (JSON.parse(readFileSync(toolFile("node_modules", name, "package.json"), "utf8")) as { version: string }).version;
    } catch {
      version = "missing";
    }
    versions.set(name, version);
  }
  return version;
}

interface Imports {
  /** The stages/lib and config/ files it imports, absolute. */
  readonly files: readonly string[];
  /** The packages it imports that may shape an output. */
  readonly packages: readonly string[];
}

const importMemo = new Map<string, Imports>();

/**
 * What a file imports, read and resolved once per process: stages share most of their helpers, and resolving
 * every specifier again for each stage that reaches the file cost more than reading them all.
 */
function importsOf(file: string): Imports {
  let found = importMemo.get(file);
  if (!found) {
    const files: string[] = [];
    const packages: string[] = [];
    for (const m of readFileSync(file, "utf8").matchAll(IMPORTS)) {
      const specifier = (m[1] ?? m[2])!;
      if (specifier.startsWith(".")) {
        const target = resolve(dirname(file), specifier);
        if (CODE_ROOTS.some((r) => !relative(r, target).startsWith("..")) && /\.m?[jt]s$/.test(target)) files.push(target);
      } else if (!specifier.startsWith("node:")) {
        const name = packageName(specifier);
        if (!NOT_SHAPING.has(name)) packages.push(name);
      }
    }
    found = { files, packages };
    importMemo.set(file, found);
  }
  return found;
}

/** The code closure of one stage module. */
function stageCode(module: string): StageCode {
  const known = memo.get(module);
  if (known) return known;
  const files = new Set<string>();
  const packages: Record<string, string> = {};
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    const imports = importsOf(file);
    for (const name of imports.packages) packages[`npm:${name}`] = packageVersion(name);
    imports.files.forEach(visit);
  };
  visit(module);
  const code = { files: [...files].sort(), packages };
  memo.set(module, code);
  return code;
}

/**
 * The node with its code (stages/<id>.ts) added to its inputs. The closure is read as soon as the module has
 * loaded, while tsx's loader thread still loads the next stages' modules and this thread would wait for them:
 * a no-op of gguf took 10 to 23 ms less than reading it when its inputs are asked (3 runs of 25 to 40 alternating rounds).
 */
function withStageCode(node: Node): Node {
  const { files, packages } = stageCode(toolFile("stages", `${node.id}.ts`));
  return {
    ...node,
    async inputs(ctx) {
      const declared = await node.inputs(ctx);
      return { ...declared, files: [...declared.files, ...files], tools: { ...declared.tools, ...packages } };
    },
  };
}
