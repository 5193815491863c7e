// The Modelfile's text, quoted the way Ollama's parser (parser/parser.go) reads it back.

export interface ModelfileSpec {
  /** The GGUF, relative to the Modelfile's folder (Ollama resolves FROM against it). */
  readonly from: string;
  readonly template: string;
  readonly stops: readonly string[];
  readonly numCtx?: number;
  readonly system?: string;
}

/** Control characters other than tab and newline are dropped by Ollama's parser: refused rather than lost. */
const UNPRINTABLE = /[\u0000-\u0008\u000b-\u001f\u007f]/;

/** `"""text"""`, or why Ollama could not read it back as written. */
function tripleQuoted(name: string, text: string): string {
  if (text.includes('"""')) throw new Error(`the ${name} contains """, which ends a Modelfile value early`);
  if (UNPRINTABLE.test(text)) throw new Error(`the ${name} contains a control character, which Ollama's Modelfile parser drops`);
  return `"""${text}"""`;
}

function quoted(name: string, text: string): string {
  if (/["\n\r]/.test(text) || UNPRINTABLE.test(text)) throw new Error(`the ${name} ${JSON.stringify(text)} cannot be written as a quoted Modelfile value`);
  return `"${text}"`;
}

export function modelfileText(spec: ModelfileSpec): string {
  return [
    "# Written by the ollama node of mlx-lora-pipeline. Use it with: ollama create <name> -f models/ollama/Modelfile",
    `FROM ${spec.from}`,
    `TEMPLATE ${tripleQuoted("TEMPLATE", spec.template)}`,
    ...spec.stops.map((s) => `PARAMETER stop ${quoted("stop token", s)}`),
    ...(spec.numCtx === undefined ? [] : [`PARAMETER num_ctx ${spec.numCtx}`]),
    ...(spec.system === undefined ? [] : [`SYSTEM ${tripleQuoted("SYSTEM prompt", spec.system)}`]),
    "",
  ].join("\n");
}
