// The ollama node on a tiny model, end to end: the Modelfile FROMs the GGUF the pipeline built, carries the
// translated TEMPLATE, a stop per end token, num_ctx at the trained length, SYSTEM exactly when every training
// conversation had the same one; and its TEMPLATE rendered (Go, as Ollama) the probes and 20 training
// conversations as the Jinja template does.
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { LORA } from "../helpers/export.ts";
import { FAST_LORA, pipelineYaml, Project, ran, SAMPLE_LINES, type RunResult } from "../helpers/project.ts";
import { sharedProject } from "../helpers/shared-project.ts";
import { editedModel, tinyModelFolder } from "../helpers/tiny-model.ts";

const SYSTEM = "You are a precise unit converter. Answer in one line.";

interface Line {
  messages: { role: string; content: string }[];
}

/** The sample's first 40 conversations, each with `system` as its system prompt. */
function data(system: string): string {
  return (
    SAMPLE_LINES.slice(0, 40)
      .map((l) => {
        const turns = (JSON.parse(l) as Line).messages.filter((m) => m.role !== "system");
        return JSON.stringify({ messages: [{ role: "system", content: system }, ...turns] });
      })
      .join("\n") + "\n"
  );
}

/** The Modelfile's commands: name → every value (the TEMPLATE's lines joined). */
function commands(modelfile: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  const re = /^(FROM|TEMPLATE|PARAMETER|SYSTEM|ADAPTER) ("""[\s\S]*?"""|.*)$/gm;
  for (const m of modelfile.matchAll(re)) (out[m[1]!] ??= []).push(m[2]!);
  return out;
}

/** An instruction-style chat template, of no family the tool translates. */
const ALPACA =
  "{% for message in messages %}{% if message['role'] == 'user' %}{{ '### Instruction:\\n' + message['content'] + '\\n\\n' }}" +
  "{% else %}{{ '### Response:\\n' + message['content'] + '\\n\\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '### Response:\\n' }}{% endif %}";
/** Its Ollama TEMPLATE, as a user writes it by hand. */
const ALPACA_GO = `{{- range .Messages }}{{ if eq .Role "user" }}### Instruction:
{{ .Content }}

{{ else }}### Response:
{{ .Content }}

{{ end }}{{ end }}### Response:
`;

function verdict(result: RunResult, code: string): { level: string; message: string; fix?: string } {
  const found = (result.json.verdicts ?? []).find((v) => v.code === code);
  expect(found, `${code} in ${JSON.stringify(result.json.verdicts)}\n${result.stderr.slice(-2000)}`).toBeDefined();
  return found as { level: string; message: string; fix?: string };
}

describe("ollama node", () => {
  it("refuses a chat template it cannot translate before anything trains, and takes a hand-written TEMPLATE that renders alike", async () => {
    const model = editedModel(await tinyModelFolder("llama"), { "tokenizer_config.json": (c) => void (c.chat_template = ALPACA) });
    const p = new Project(pipelineYaml({ model, lora: LORA }), { "data/train.jsonl": data(SYSTEM) });
    const refused = await p.build("ollama");
    expect(refused.code).toBe(1);
    expect(refused.json.nodes).toEqual([]); // nothing ran, let alone trained
    const v = verdict(refused, "ollama.template");
    expect(v.level).toBe("error");
    expect(v.message).toMatch(/tokenizer_config\.json \(chat_template\): this chat template cannot be translated to an Ollama TEMPLATE: its turns match none of the template families/);
    expect(v.fix).toMatch(/`ollama: \{ template: FILE \}`/);

    p.write("alpaca.gotmpl", ALPACA_GO);
    p.write("pipeline.yaml", pipelineYaml({ model, lora: LORA, ollama: { template: "alpaca.gotmpl" } }));
    const accepted = await p.run(["check", "ollama", "--json"]);
    expect(verdict(accepted, "ollama.template")).toMatchObject({ level: "ok", message: expect.stringMatching(/^Ollama TEMPLATE hand-written \(alpaca\.gotmpl\): 4 probe conversations render byte for byte as the chat template does$/) });

    // One byte off, and the hand-written template is refused as well.
    p.write("alpaca.gotmpl", ALPACA_GO.replace("### Response:\n{{ .Content }}", "### Response: {{ .Content }}"));
    const off = verdict(await p.run(["check", "ollama", "--json"]), "ollama.template");
    expect(off.level).toBe("error");
    expect(off.message).toMatch(/^alpaca\.gotmpl: probe: system \+ user: the renderings differ at character \d+/);
  });

  it("writes a Modelfile for the fused GGUF whose TEMPLATE renders the training data as the chat template does", async () => {
    // The shared tiny:llama project, built through eval: its GGUF is fresh, and its training data (the sample's
    // first 40 lines) mixes conversations with and without a system prompt, so the Modelfile sets none.
    const { project: p } = await sharedProject();
    const mixed = await p.mustBuild("ollama");
    expect(ran(mixed)).toEqual(["ollama"]);
    expect(commands(p.read("models/ollama/Modelfile")).SYSTEM).toBeUndefined();
    expect(p.readJson<{ checked: number }>("models/ollama/template-check.json").checked).toBe(24);

    // The same conversations, every one with the same system prompt: retrained, and the Modelfile carries it.
    p.write("data/train.jsonl", data(SYSTEM));
    const built = await p.mustBuild("ollama");
    expect(built.statuses.ollama).toBe("ran");
    // This training answers the gguf node's greedy prompt with <|eot_id|> (128009) second: llama.cpp's greedy run
    // goes on past it as mlx-lm's does, so the two agree (node-llama-cpp stops there unless asked not to).
    const greedy = p.readJson<{ llamaCpp: { tokens: number[] }; mlx: { tokens: number[] } }>("models/gguf/gguf.json");
    expect(greedy.mlx.tokens.slice(0, 4)).toContain(128009);
    expect(greedy.llamaCpp.tokens).toEqual(greedy.mlx.tokens);
    const modelfile = p.read("models/ollama/Modelfile");
    const c = commands(modelfile);

    expect(c.FROM).toEqual(["../gguf/model.gguf"]);
    // Ollama resolves FROM against the Modelfile's folder.
    expect(existsSync(resolve(p.path("models/ollama"), c.FROM![0]!))).toBe(true);
    expect(c.TEMPLATE).toHaveLength(1);
    expect(c.TEMPLATE![0]).toContain("<|start_header_id|>{{ .Role }}<|end_header_id|>");
    expect(c.PARAMETER).toEqual(['stop "<|eot_id|>"', 'stop "<|end_of_text|>"', `num_ctx ${FAST_LORA.max_seq_length}`]);
    expect(c.SYSTEM).toEqual([`"""${SYSTEM}"""`]);
    expect(c.ADAPTER).toBeUndefined();

    const check = p.readJson<{ ollama: string; family: string; checked: number; probes: number; training_examples: number }>("models/ollama/template-check.json");
    expect(check).toMatchObject({ family: "llama3", probes: 4, training_examples: 20, checked: 24 });
    expect(built.stderr).toMatch(/TEMPLATE \(llama3\) renders 24\/24 conversations/);
  }, 1_800_000); // one retraining to the GGUF after the shared build
});
