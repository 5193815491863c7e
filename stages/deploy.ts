// Node deploy: what to serve, and eval's proof that it answers like the trained model. The fused GGUF
// (models/gguf) runs anywhere, and in Ollama through models/ollama/Modelfile (its template checked by the ollama node); the base GGUF + LoRA GGUF pair serves the same model with the adapter as a
// separate file of megabytes. Light: it copies nothing, it checks eval's agreement and says how to run each.
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { PipelineConfig } from "../config/schema.ts";
import type { NodeSpec } from "../engine/types.ts";
import { UserError } from "../engine/types.ts";
import { BASE_GGUF_FILE } from "./base-gguf.ts";
import { EVAL_FILE } from "./eval.ts";
import { GGUF_FILE } from "./gguf.ts";
import { LORA_FILE } from "./lora-gguf.ts";
import { MODELFILE } from "./ollama.ts";
import { zod } from "../engine/packages.ts";

const DEPLOY_FILE = "deploy.json";

/** At most one answer in 40 may differ between the LoRA pair and the fused GGUF (f16 rounding of the fused weights). */
const loraNeeds = (n: number) => n - Math.floor(n / 40);

export const deployNode: NodeSpec<PipelineConfig> = {
  id: "deploy",
  deps: ["lora-gguf", "base-gguf", "gguf", "eval", "ollama"],
  description: "the GGUFs to serve, checked by eval",
  inputs: (ctx) => ({ files: [], params: { check: ctx.config.deploy.check }, tools: {}, command: ["read eval.json"] }),
  guard: (ctx) =>
    ctx.config.deploy.check
      ? []
      : [
          {
            level: "warn",
            code: "deploy.unchecked",
            message: "deploy.check is off: the LoRA GGUF and a llama-server are built but eval does not prove they answer like the GGUF.",
            fix: "Set `deploy: {check: true}` in pipeline.yaml.",
          },
        ],
  async run(ctx) {
    const { z } = zod();
    const path = join(ctx.upstream("eval"), EVAL_FILE);
    const evalSchema = z.object({
      examples: z.number().int(),
      deploy: z.object({ loraAgreesWithGguf: z.number().int(), serverAgreesWithGguf: z.number().int() }).optional(),
    });
    const parsed = evalSchema.safeParse(JSON.parse(await readFile(path, "utf8")));
    if (!parsed.success) throw new UserError(`${path}: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}; rebuild it with --force eval.`);
    const { examples: n, deploy } = parsed.data;
    if (deploy && (deploy.serverAgreesWithGguf < n || deploy.loraAgreesWithGguf < loraNeeds(n))) {
      throw new UserError(
        `${path}: llama-server answers like the GGUF on ${deploy.serverAgreesWithGguf}/${n} (all must) and base GGUF + LoRA GGUF on ${deploy.loraAgreesWithGguf}/${n} (at least ${loraNeeds(n)} must): ` +
          "the deployed files do not answer like the trained model. Compare the answers in eval.json (lora, server, gguf) and see cache/logs/eval.log.",
      );
    }
    const files = {
      gguf: join(ctx.upstream("gguf"), GGUF_FILE),
      base: join(ctx.upstream("base-gguf"), BASE_GGUF_FILE),
      lora: join(ctx.upstream("lora-gguf"), LORA_FILE),
    };
    const bytes = Object.fromEntries(await Promise.all(Object.entries(files).map(async ([k, f]) => [k, (await stat(f)).size] as const)));
    const report = { examples: n, ...(deploy ? { checked: deploy } : {}), bytes, run: { gguf: "llama-server -m models/gguf/model.gguf --jinja", lora: "llama-server -m models/base-gguf/base.gguf --lora models/lora-gguf/lora.gguf --jinja", ollama: `ollama create my-model -f models/ollama/${MODELFILE}` } };
    await writeFile(join(ctx.staging, DEPLOY_FILE), JSON.stringify(report, null, 2) + "\n");
    const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
    ctx.note(`models/gguf/model.gguf (${mb(bytes.gguf!)}) or models/base-gguf/base.gguf (${mb(bytes.base!)}) + models/lora-gguf/lora.gguf (${mb(bytes.lora!)})`);
    ctx.note(
      deploy
        ? `eval: base+LoRA GGUF answers like the GGUF on ${deploy.loraAgreesWithGguf}/${n}, llama-server on ${deploy.serverAgreesWithGguf}/${n}`
        : "not checked (deploy.check is off)",
    );
  },
};
