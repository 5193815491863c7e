// A GGUF's header, parsed in JavaScript (llama.cpp itself only ever reads the file in a child: child.ts).
import { gguf } from "@huggingface/gguf";

export interface GgufHeader {
  readonly architecture: string;
  readonly tensorCount: number;
  readonly tokenizerModel: string | undefined;
  readonly tokenizerPre: string | undefined;
  readonly hasChatTemplate: boolean;
  readonly chatTemplate: string | undefined;
  readonly fileType: number | undefined;
}

export async function readGgufHeader(path: string): Promise<GgufHeader> {
  const { metadata, tensorInfos } = await gguf(path, { allowLocalFile: true });
  const meta = metadata as Record<string, unknown>;
  const str = (key: string) => (typeof meta[key] === "string" ? (meta[key] as string) : undefined);
  return {
    architecture: str("general.architecture") ?? "unknown",
    tensorCount: tensorInfos.length,
    tokenizerModel: str("tokenizer.ggml.model"),
    tokenizerPre: str("tokenizer.ggml.pre"),
    hasChatTemplate: typeof meta["tokenizer.chat_template"] === "string",
    chatTemplate: str("tokenizer.chat_template"),
    fileType: typeof meta["general.file_type"] === "number" ? (meta["general.file_type"] as number) : undefined,
  };
}
