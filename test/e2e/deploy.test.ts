// Deploy on tiny random models with the real tools: the adapters as a LoRA GGUF on a base GGUF (every target
// module lands on a llama.cpp tensor; base + LoRA answers like the fused GGUF, a wrong alpha does not), the
// guard's refusals, and llama-server answering like the GGUF, gone after a kill -9 of the tool.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gguf } from "@huggingface/gguf";
import { describe, expect, it } from "vitest";
import { askLlama } from "../helpers/export.ts";
import { alive, pipelineYaml, Project, ran, REPO, waitFor, type RunResult } from "../helpers/project.ts";
import { sharedConfig, sharedFamily, sharedProject } from "../helpers/shared-project.ts";

/** A training, three conversions and eval's models on a shared 2-core machine. */
const SLOW = 1_800_000;
/** What mlx-lm adapts by default in a dense block: every linear. */
const TARGETS = ["mlp.down_proj", "mlp.gate_proj", "mlp.up_proj", "self_attn.k_proj", "self_attn.o_proj", "self_attn.q_proj", "self_attn.v_proj"];
const PROMPTS = ["Convert 3 km to m.", "What is 12 inches in cm?", "How many grams are in 2 kg?"];

async function tensorNames(path: string): Promise<string[]> {
  return (await gguf(path, { allowLocalFile: true })).tensorInfos.map((t) => t.name);
}

/**
 * Greedy tokens of a GGUF, with a LoRA GGUF applied when given, for each prompt: up to 8, ending at an
 * end-of-generation token. One llama.cpp child answers every prompt, as eval's does.
 */
async function greedy(model: string, lora?: string): Promise<number[][]> {
  const { answers } = await askLlama({ model, ...(lora ? { lora } : {}), answers: { prompts: PROMPTS, maxTokens: 8 } });
  expect(answers).toHaveLength(PROMPTS.length);
  return answers!.map((a) => a.tokens);
}

/** Every LoRA tensor is <base tensor>.lora_a / .lora_b of a tensor the base GGUF has: llama.cpp applies it there. */
async function expectMapped(p: Project): Promise<void> {
  const lora = await tensorNames(p.path("models/lora-gguf/lora.gguf"));
  const base = new Set(await tensorNames(p.path("models/base-gguf/base.gguf")));
  const report = p.readJson<{ modules: number; targets: string[]; alpha: number; rank: number }>("models/lora-gguf/lora-gguf.json");
  expect(report.targets).toEqual(TARGETS);
  expect(report.alpha).toBe(20 * report.rank); // FAST_LORA's scale × rank
  expect(lora).toHaveLength(2 * report.modules);
  const targets = lora.map((name) => name.replace(/\.lora_[ab]$/, ""));
  expect(targets.filter((t) => !base.has(t))).toEqual([]);
  // Each kind of projection lands on its own llama.cpp tensor in every layer.
  expect(new Set(targets.map((t) => t.replace(/^blk\.\d+\./, "")))).toEqual(new Set(["attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight", "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"]));
}

/**
 * Base + LoRA answers like the fused GGUF, and the base alone does not: the adapter is applied, at its scale.
 * `exact`: every greedy token; otherwise the first token of each prompt. The tiny gemma3 (random weights, a
 * 262k-token vocabulary) has near-tied logits, where the fused weights' f16 rounding against the adapter
 * applied at run time flips a later token.
 */
async function expectSameModel(p: Project, exact = true): Promise<void> {
  const first = (runs: number[][]) => (exact ? runs : runs.map((r) => r[0]));
  const fused = first(await greedy(p.path("models/gguf/model.gguf")));
  expect(first(await greedy(p.path("models/base-gguf/base.gguf"), p.path("models/lora-gguf/lora.gguf")))).toEqual(fused);
  expect(first(await greedy(p.path("models/base-gguf/base.gguf")))).not.toEqual(fused);
}

function verdicts(result: RunResult, node: string): { code: string; level: string; message: string; fix?: string }[] {
  return (result.json.verdicts ?? []).filter((v) => v.node === node) as { code: string; level: string; message: string; fix?: string }[];
}

/** The llama-server processes below `pid`, with the port each was told to listen on. */
function servers(pid: number): { pid: number; port: number }[] {
  const rows = execFileSync("ps", ["-A", "-o", "pid=,ppid=,args="], { encoding: "utf8" })
    .split("\n")
    .map((l) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(l))
    .filter((m) => m !== null)
    .map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]), args: m[3]! }));
  const below = new Set([pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const r of rows) if (below.has(r.ppid) && !below.has(r.pid)) grew = Boolean(below.add(r.pid));
  }
  return rows
    .filter((r) => below.has(r.pid) && r.pid !== pid && /\/llama-server\s/.test(r.args))
    .map((r) => ({ pid: r.pid, port: Number(/\s--port\s+(\d+)/.exec(r.args)?.[1] ?? 0) }));
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => (socket.destroy(), resolve(true)));
    socket.once("error", () => resolve(false));
  });
}

describe("deploy guard (before training)", () => {
  it("refuses DoRA and LoRA on embeddings for lora-gguf only, in the converter's words, with the fused GGUF as the fix", async () => {
    const dora = new Project(pipelineYaml({ lora: { fine_tune_type: "dora" } }));
    const refused = await dora.run(["check", "lora-gguf", "--json"]);
    expect(refused.code).not.toBe(0);
    const [v] = verdicts(refused, "lora-gguf");
    expect(v).toMatchObject({ level: "error", code: "lora-gguf.dora" });
    expect(v!.message).toMatch(/Not a lora_A or lora_B tensor/);
    expect(v!.fix).toMatch(/fused GGUF.*models\/gguf\/model\.gguf/);
    // The guard belongs to lora-gguf: a DoRA fine-tune still builds its fused GGUF.
    const gguf = await dora.run(["check", "gguf", "--json"]);
    expect(verdicts(gguf, "lora-gguf")).toEqual([]);
    expect(gguf.code).toBe(0);

    const embed = await new Project(pipelineYaml({ lora: { keys: ["self_attn.q_proj", "embed_tokens"] } })).run(["check", "deploy", "--json"]);
    expect(embed.code).not.toBe(0);
    const e = verdicts(embed, "lora-gguf").find((x) => x.code === "lora-gguf.embeddings");
    expect(e?.message).toMatch(/embed_tokens.*Embeddings is present in the adapter/);
  });
});

describe("deploy on tiny:llama", () => {
  let p: Project;

  it("builds the LoRA GGUF, the base GGUF and llama-server; eval proves both answer like the GGUF", async () => {
    // The shared project, trained and converted through eval: deploy adds its own nodes and eval's checks, nothing else.
    ({ project: p } = await sharedProject());
    p.write("pipeline.yaml", sharedConfig({ deploy: { check: true } }));
    const built = await p.mustBuild("deploy");
    expect(ran(built).sort()).toEqual(["base-gguf", "deploy", "eval", "llama-server", "lora-gguf", "ollama"]);
    await expectMapped(p);
    await expectSameModel(p);
    const report = p.readJson<{ examples: number; deploy: { loraAgreesWithGguf: number; serverAgreesWithGguf: number }; answers: { gguf: string; lora: string; server: string }[] }>("models/eval/eval.json");
    expect(report.deploy).toEqual({ loraAgreesWithGguf: 4, serverAgreesWithGguf: 4 });
    // Compared by token ids: this model's answers read " =  = ...." from the server and " =  =...." from llama.cpp's
    // detokenizer, which drops a space before punctuation for Llama 3's tokenizer, for the same tokens.
    for (const a of report.answers) expect(a.server.replace(/ (?=[.,!?])/g, "").trim()).toBe(a.gguf.trim());
    expect(built.stderr).toMatch(/base\+LoRA GGUF agrees with the GGUF on 4\/4, llama-server on 4\/4/);
    // A megabyte-scale adapter against the whole model.
    const deploy = p.readJson<{ bytes: { gguf: number; lora: number } }>("models/deploy/deploy.json");
    expect(deploy.bytes.lora * 20).toBeLessThan(deploy.bytes.gguf);
  }, SLOW);

  it("a wrong lora_alpha (half the trained scale) no longer answers like the fused GGUF", async () => {
    const tc = p.toolchain("llama-cpp");
    const peft = mkdtempSync(join(tmpdir(), "peft-"));
    const env = { ...process.env, ...tc.env, HF_HUB_OFFLINE: "1" };
    execFileSync(tc.python, [join(REPO, "stages/py/mlx_to_peft.py"), p.path("models/adapters"), p.path("models/hf"), peft], { env });
    const config = JSON.parse(readFileSync(join(peft, "adapter_config.json"), "utf8")) as { lora_alpha: number };
    writeFileSync(join(peft, "adapter_config.json"), JSON.stringify({ ...config, lora_alpha: config.lora_alpha / 2 }));
    const wrong = join(peft, "wrong.gguf");
    execFileSync(tc.python, [join(tc.source!, "convert_lora_to_gguf.py"), peft, "--base", p.path("models/hf"), "--outfile", wrong, "--outtype", "f16"], { env, stdio: "ignore" });
    expect(await greedy(p.path("models/base-gguf/base.gguf"), wrong)).not.toEqual(await greedy(p.path("models/gguf/model.gguf")));
  }, SLOW);

  it("kill -9 of the tool while llama-server runs: the server is gone and its port closed", async () => {
    let killed: number[] = [];
    let port = 0;
    const run = await p.run(["eval", "--force", "eval", "--json"], (child) => {
      // The server and its port are read from the process table, not from the progress line announcing it: in CI
      // mode progress lines are throttled, and one that follows another closely is dropped. Polling ends with the
      // tool, so a run that ends first fails the assertions below, not a later file.
      let exited = false;
      child.once("exit", () => (exited = true));
      let found: { pid: number; port: number }[] = [];
      void waitFor(() => exited || (found = servers(child.pid!).filter((s) => s.port > 0)).length > 0, 400_000).then(() => {
        if (exited) return;
        killed = found.map((s) => s.pid);
        port = found[0]!.port;
        child.kill("SIGKILL");
      });
    });
    expect(run.signal).toBe("SIGKILL");
    expect(killed.length).toBeGreaterThan(0);
    expect(port).toBeGreaterThan(0);
    await waitFor(() => killed.every((pid) => !alive(pid)), 10_000);
    expect(await portOpen(port)).toBe(false);
  }, SLOW);
});

describe.each(["qwen3", "gemma3"] as const)("deploy on tiny:%s", (family) => {
  it("every LoRA target lands on a llama.cpp tensor; base + LoRA answers like the fused GGUF", async () => {
    // The project export-<family>.test.ts checks, trained and converted through gguf: adapters and hf are fresh.
    const { project: p } = await sharedFamily(family);
    expect(ran(await p.mustBuild("lora-gguf"))).toEqual(["lora-gguf"]);
    expect(ran(await p.mustBuild("base-gguf"))).toEqual(["base-gguf"]);
    await expectMapped(p);
    await expectSameModel(p, family !== "gemma3");
  }, SLOW);
});
