// tiny:llama from nothing to a GGUF with the real converter, and the GGUF run in llama.cpp: f16 (tokenizer parity and
// special tokens checked), q8_0 (only gguf reruns), a K-quant through llama-quantize, a converter that refuses the
// architecture, and a GGUF that makes llama.cpp abort. On the way, what the README promises of the real pipeline:
// a no-op hashes nothing and loads no parser, a byte-identical rebuild cuts the cascade off, the lock records the
// tool versions and status names a change. The other families and a K-quant of wide rows: export-*.test.ts.
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import { ALL, checkF16, generate, type GgufReport, loadsInTransformers, pythonSays } from "../helpers/export.ts";
import { ggufTypes, K_TYPES, shareIn } from "../helpers/gguf.ts";
import { type Project, ran, REPO, type RunResult } from "../helpers/project.ts";
import { sharedConfig, sharedProject } from "../helpers/shared-project.ts";
import { COUNT_MODULES, packagesLoaded } from "../helpers/modules.ts";

/** Parsers a warm no-op must not load: config and lock (yaml, zod), globs, GGUF headers, chat templates. */
const PARSERS = ["yaml", "zod", "fast-glob", "@huggingface/gguf", "@huggingface/jinja"];

describe("tiny:llama to GGUF", () => {
  let p: Project;
  let first: RunResult;

  beforeAll(async () => {
    // A copy of the project every file that needs a trained tiny:llama shares, built from nothing through eval.
    ({ project: p, first } = await sharedProject());
  }, 1_800_000);

  it("builds every node and an f16 GGUF that llama.cpp runs like mlx-lm", async () => {
    expect(ran(first)).toEqual([...ALL, "eval"].sort());
    await checkF16(p, "llama");
  });

  it("the hf folder loads in transformers", () => {
    loadsInTransformers(p);
  });

  it("a second run is a no-op (in a copy of the project: a clone with its outputs is fresh)", async () => {
    const again = await p.build("gguf");
    expect(again.code, again.stderr).toBe(0);
    expect(ran(again)).toEqual([]);
    expect(again.statuses).toEqual(Object.fromEntries(ALL.map((id) => [id, "fresh"])));
  });

  it("a no-op hashes no file and loads no parser", async () => {
    const again = await p.run(["gguf", "--json"], undefined, { NODE_OPTIONS: COUNT_MODULES.join(" ") });
    expect(again.code, again.stderr).toBe(0);
    expect(ran(again)).toEqual([]);
    expect(again.json.hashed).toEqual({ files: 0, bytes: 0 });
    expect(packagesLoaded(again.stderr).filter((k) => PARSERS.includes(k))).toEqual([]);
  });

  it("--force data: a byte-identical rebuild stops the cascade at formatted", async () => {
    const before = p.lock().data!.output.digest;
    const forced = await p.build("gguf", "--force", "data");
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.statuses).toEqual({ ...Object.fromEntries(ALL.map((id) => [id, "fresh"])), data: "ran", formatted: "cutoff" });
    expect(p.lock().data!.output.digest).toBe(before);
  });

  it("--force formatted: a byte-identical rebuild stops the cascade at adapters", async () => {
    const forced = await p.build("gguf", "--force", "formatted");
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.statuses).toEqual({ ...Object.fromEntries(ALL.map((id) => [id, "fresh"])), formatted: "ran", adapters: "cutoff" });
  });

  it("the lock records the mlx-lm, llama.cpp and torch versions the environments hold", () => {
    const lock = p.lock();
    const tools = (id: string) => lock[id]!.tools as Record<string, string>;
    const mlxLm = pythonSays(p, "mlx-env", "import importlib.metadata as m; print(m.version('mlx-lm'))");
    const torch = pythonSays(p, "llama-cpp", "import torch; print(torch.__version__)");
    const llamaCpp = (JSON.parse(readFileSync(join(REPO, "node_modules/node-llama-cpp/llama/llama.cpp.info.json"), "utf8")) as { tag: string }).tag;
    expect(mlxLm).toMatch(/^\d+\.\d+/);
    expect(torch).toMatch(/^\d+\.\d+/);
    for (const id of ["model", "adapters", "fused"]) expect(tools(id).mlx_lm, id).toBe(mlxLm);
    for (const id of ["hf", "gguf"]) expect(tools(id).torch, id).toBe(torch);
    for (const id of ["llama-cpp", "gguf"]) expect(tools(id).llama_cpp, id).toBe(llamaCpp);
  });

  it("status names a tool version that differs from the lock's, and only its node and those after it are stale", async () => {
    const text = p.read("pipeline.lock");
    const installed = (p.lock().adapters!.tools as Record<string, string>).mlx_lm;
    // The lock as a build with an older mlx-lm wrote it: that version, and a fingerprint that hashed it.
    const older = YAML.parse(text) as { nodes: Record<string, { tools: Record<string, string>; fingerprint: string }> };
    older.nodes.adapters!.tools.mlx_lm = "0.28.0";
    older.nodes.adapters!.fingerprint = "0".repeat(64);
    p.write("pipeline.lock", YAML.stringify(older));
    try {
      type State = { id: string; stale: boolean; restore?: boolean; reasons: string[] };
      // With no build cache to restore from: adapters reruns, and what follows it may.
      const status = await p.run(["status", "gguf", "--json"], undefined, { MLX_PIPELINE_STORE: mkdtempSync(join(tmpdir(), "empty-store-")) });
      expect(status.code, status.stderr).toBe(0);
      const nodes = status.json.nodes as unknown as State[];
      const why = Object.fromEntries(nodes.map((n) => [n.id, n.reasons]));
      expect(why.adapters).toEqual([`tool mlx_lm changed: 0.28.0 → ${installed}`]);
      expect(why.fused!.join("\n")).toMatch(/upstream adapters will rebuild/);
      expect(nodes.filter((n) => n.stale).map((n) => n.id)).toEqual(["adapters", "fused", "hf", "gguf"]);
      // With the project's build cache, which holds the adapters of the installed mlx-lm: restored, nothing after it stale.
      const cached = (await p.run(["status", "gguf", "--json"])).json.nodes as unknown as State[];
      expect(cached.filter((n) => n.stale).map((n) => [n.id, n.restore === true])).toEqual([["adapters", true]]);
    } finally {
      p.write("pipeline.lock", text);
    }
  });

  it("gguf.outtype q8_0 reruns gguf only, and the q8_0 file runs", async () => {
    const f16Bytes = p.readJson<GgufReport>("models/gguf/gguf.json").bytes;
    p.write("pipeline.yaml", sharedConfig({ gguf: { outtype: "q8_0" } }));
    const result = await p.build("gguf");
    expect(result.code, result.stderr.slice(-3000)).toBe(0);
    expect(ran(result)).toEqual(["gguf"]);
    const report = p.readJson<GgufReport>("models/gguf/gguf.json");
    expect(report.type).toBe("q8_0");
    const types = await ggufTypes(p.path("models/gguf/model.gguf"));
    expect(types.fileType).toBe("Q8_0");
    expect(shareIn(types, ["Q8_0"])).toBe(1);
    expect(report.bytes).toBeLessThan(f16Bytes);
    expect(await generate(p.path("models/gguf/model.gguf"), report.llamaCpp.prompt)).toHaveLength(4);
  });

  it("gguf.quantize Q4_K_M builds llama-quantize (once) and a K-quant GGUF that runs", { timeout: 1_800_000 }, async () => {
    const q8Bytes = p.readJson<GgufReport>("models/gguf/gguf.json").bytes;
    p.write("pipeline.yaml", sharedConfig({ gguf: { outtype: "q8_0", quantize: "Q4_K_M" } }));
    const result = await p.build("gguf");
    expect(result.code, result.stderr.slice(-3000)).toBe(0);
    expect(ran(result)).toEqual(["gguf", "quantizer"]);
    const report = p.readJson<GgufReport>("models/gguf/gguf.json");
    expect(report.type).toBe("Q4_K_M");
    // llama-quantize wrote it: the header says Q4_K_M. But K-quant blocks hold 256 values and these rows hold 128,
    // so nearly every matrix falls back to another type (the next describe quantizes rows of 256).
    const types = await ggufTypes(p.path("models/gguf/model.gguf"));
    expect(types.fileType).toBe("Q4_K_M");
    expect(shareIn(types, K_TYPES)).toBeLessThan(0.5);
    expect(report.bytes).toBeLessThanOrEqual(q8Bytes);
    expect(await generate(p.path("models/gguf/model.gguf"), report.llamaCpp.prompt)).toHaveLength(4);
  });

  it("a converter that refuses the architecture: exit 1, a clear message, the previous GGUF kept", async () => {
    const source = p.toolchain("llama-cpp").source!;
    const mine = join(mkdtempSync(join(tmpdir(), "llama-cpp-no-llama-")), "llama.cpp");
    cpSync(source, mine, { recursive: true, filter: (from) => !["ggml", "models", ".git", "build"].map((d) => join(source, d)).includes(from) });
    const init = join(mine, "conversion", "__init__.py");
    const text = readFileSync(init, "utf8");
    const edited = text.replace(/^\s*"LlamaForCausalLM": "llama",\n/m, "");
    expect(edited).not.toBe(text);
    writeFileSync(init, edited);

    const before = p.sha256("models/gguf/model.gguf");
    const beforeLock = p.lock().gguf!.output.digest;
    p.write("pipeline.yaml", sharedConfig({ gguf: { outtype: "q8_0" }, llama_cpp: mine }));
    const result = await p.build("gguf");
    expect(result.code).toBe(1);
    const said = `${result.stderr}\n${result.json.error ?? ""}\n${JSON.stringify(result.json.verdicts ?? [])}`;
    expect(said).toMatch(/LlamaForCausalLM/);
    expect(said).toMatch(/not supported|does not support/i);
    expect(result.statuses.gguf ?? "not run").not.toBe("ran");
    expect(p.sha256("models/gguf/model.gguf")).toBe(before);
    expect(p.lock().gguf!.output.digest).toBe(beforeLock);
  });

  it("a GGUF that makes llama.cpp abort is a clean node failure: exit 1, llama.cpp's last lines, the previous GGUF kept, and the next build works", async () => {
    // A converter that writes a SentencePiece tokenizer type over the BPE vocabulary in full conversions only
    // (the guard's --vocab-only run stays clean): loading that file, llama.cpp throws std::out_of_range and aborts.
    const source = p.toolchain("llama-cpp").source!;
    const mine = join(mkdtempSync(join(tmpdir(), "llama-cpp-abort-")), "llama.cpp");
    cpSync(source, mine, { recursive: true, filter: (from) => !["ggml", "models", ".git", "build"].map((d) => join(source, d)).includes(from) });
    const script = join(mine, "convert_hf_to_gguf.py");
    const text = readFileSync(script, "utf8");
    const patched = text.replace(
      "        if args.vocab_only:\n",
      "        if not args.vocab_only:\n            _w = model_instance.gguf_writer; _add = _w.add_tokenizer_model; _w.add_tokenizer_model = lambda _m: _add(\"llama\")\n        if args.vocab_only:\n",
    );
    expect(patched).not.toBe(text);
    writeFileSync(script, patched);

    const before = p.sha256("models/gguf/model.gguf");
    p.write("pipeline.yaml", sharedConfig({ gguf: { outtype: "q8_0" }, llama_cpp: mine }));
    const result = await p.build("gguf");
    expect(result.code, result.stderr.slice(-3000)).toBe(1);
    expect(result.statuses.gguf).toBe("failed");
    const failure = result.json.nodes.find((n) => n.id === "gguf")!.reason;
    expect(failure).toMatch(/llama\.cpp crashed \(SIGABRT: llama\.cpp aborted\)/);
    expect(failure).toMatch(/terminate called after throwing an instance of 'std::out_of_range'/);
    expect(failure).toMatch(/cache\/logs\/gguf\.log/);
    expect(p.sha256("models/gguf/model.gguf")).toBe(before);
    // No staging folder is left behind.
    expect(readdirSync(p.path("models/.builds")).filter((n) => n.includes(".staging-"))).toEqual([]);

    p.write("pipeline.yaml", sharedConfig({ gguf: { outtype: "q8_0" } }));
    const next = await p.build("gguf");
    expect(next.code, next.stderr.slice(-3000)).toBe(0);
    expect(existsSync(p.path("models/gguf/model.gguf"))).toBe(true);
    expect(await generate(p.path("models/gguf/model.gguf"), p.readJson<GgufReport>("models/gguf/gguf.json").llamaCpp.prompt)).toHaveLength(4);
  });
});
