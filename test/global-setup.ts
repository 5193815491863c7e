// Every test run gets its own temp root, removed at the end: e2e projects hold models and GGUFs
// (gigabytes per run), and a run must not fill the disk of the machine it runs on.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export default function setup(): () => void {
  const root = mkdtempSync(join(tmpdir(), "mlx-pipeline-tests-"));
  // Workers, the CLI and the Python tools they start all take their temp folder from TMPDIR.
  process.env.TMPDIR = root;
  return () => rmSync(root, { recursive: true, force: true });
}
