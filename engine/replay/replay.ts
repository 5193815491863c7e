// Answers a command from its record (record.ts) when nothing the record names has changed: the same
// identity, and every path with the signature it had. Anything else, and the command runs as usual.
import { projectRootOf, readRecord, recordPath, signatureOf } from "./record.ts";

/** The exit code of a replayed answer, or undefined when the command must run. `identity`: identityOf(argv, cwd). */
export function replay(argv: readonly string[], defaultConfig: string, identity: string, cwd = process.cwd()): number | undefined {
  const record = readRecord(recordPath(projectRootOf(argv, defaultConfig, cwd), identity));
  if (record?.identity !== identity) return undefined;
  for (const [path, signature] of record.paths) if (signatureOf(path) !== signature) return undefined;
  for (const [stream, text] of record.output) (stream === 1 ? process.stdout : process.stderr).write(text);
  return 0;
}
