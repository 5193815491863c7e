// The gguf node's guard, one call: can llama.cpp's converter turn this model into a GGUF of the asked type? Its
// facts are read by the node (the converter's registry from its source, the base model's config.json and
// tokenizer files); the converter's own run on the vocabulary follows when this finds nothing wrong.
import type { Verdict } from "../engine/types.ts";

/** The files a tokenizer is read from; one of them must be there. */
export const TOKENIZER_MODELS = ["tokenizer.json", "tokenizer.model"] as const;

export interface ExportFacts {
  readonly outtype: string;
  /** The converter as messages name it, and what it converts (read from its source). */
  readonly converter: { readonly label: string; readonly architectures: readonly string[]; readonly outtypes: readonly string[] };
  /** The base model once its config.json can be read: its folder, its config, which TOKENIZER_MODELS it has. */
  readonly model?: { readonly dir: string; readonly config: Record<string, unknown>; readonly tokenizers: readonly string[] };
}

export function judgeExport(facts: ExportFacts): Verdict[] {
  const { outtype, converter, model } = facts;
  const verdicts: Verdict[] = [];
  if (!converter.outtypes.includes(outtype)) {
    verdicts.push({
      level: "error",
      code: "export.outtype",
      message: `gguf.outtype ${outtype} is not a type ${converter.label}'s converter writes.`,
      fix: `Use one of ${converter.outtypes.join(", ")}; for K-quants such as Q4_K_M set gguf.quantize instead.`,
    });
  }
  if (model) verdicts.push(...converterVerdicts(model.config, converter.architectures, converter.label), ...tokenizerVerdicts(model.dir, model.tokenizers));
  return verdicts;
}

/** The converter's registry has the checkpoint's architecture. */
function converterVerdicts(config: Record<string, unknown>, supported: readonly string[], converter: string): Verdict[] {
  const archs = Array.isArray(config.architectures) ? (config.architectures as string[]) : [];
  const arch = archs[0];
  if (!arch) {
    return [{ level: "error", code: "export.no-architecture", message: "config.json has no `architectures`: llama.cpp's converter picks its model class from it.", fix: 'Add e.g. "architectures": ["LlamaForCausalLM"] to config.json.' }];
  }
  if (!supported.includes(arch)) {
    return [
      {
        level: "error",
        code: "export.unsupported",
        message: `${converter} does not support ${arch}: the GGUF step would fail after training.`,
        fix: "Use a model llama.cpp converts, or point llama_cpp: at a newer llama.cpp checkout.",
      },
    ];
  }
  return [{ level: "ok", code: "export.arch", message: `${converter} converts ${arch}` }];
}

function tokenizerVerdicts(dir: string, present: readonly string[]): Verdict[] {
  if (present.length > 0) return [{ level: "ok", code: "export.tokenizer", message: `tokenizer files present (${present.join(", ")})` }];
  return [{ level: "error", code: "export.no-tokenizer", message: `${dir} has neither tokenizer.json nor tokenizer.model: nothing can tokenize for this model.`, fix: "Copy the base model's tokenizer files into the folder." }];
}
