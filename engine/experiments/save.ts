// `--save`: a finished -S build's setting written into the config file, its comments and layout kept
// (yaml's Document API edits the nodes in place), so the committed config and pipeline.lock agree again.
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { replaceFile } from "../durable.ts";
import { writeLockEntries, type LockNodes } from "../lockfile.ts";
import { yaml } from "../packages.ts";
import { UserError } from "../types.ts";
import { settingArgs, type Setting } from "./overrides.ts";

export async function saveSetting(configPath: string, setting: Setting): Promise<void> {
  const doc = yaml().parseDocument(await readFile(configPath, "utf8"));
  if (doc.errors.length > 0) throw new UserError(`${configPath} no longer parses (${doc.errors[0]!.message}): the setting was not saved.`, 1);
  for (const s of setting) doc.setIn([...s.path], s.value);
  await replaceFile(configPath, doc.toString());
}

/**
 * After a -S build: with --save and success, the setting goes into the config file and this build's lock entries
 * into pipeline.lock, together; otherwise the lock stays as committed, and the user is told how to keep the setting.
 */
export async function afterSettingBuild(
  engine: { readonly lockPath: string; readonly cacheDir: string; readonly lockNodes: LockNodes },
  configPath: string,
  setting: Setting,
  outcome: { readonly ok: boolean; readonly save: boolean },
): Promise<void> {
  const args = settingArgs(setting).join(" ");
  const name = basename(configPath);
  if (!outcome.ok) {
    if (outcome.save) process.stderr.write(`${args}: not saved, the build did not finish; ${name} and pipeline.lock are unchanged.\n`);
    return;
  }
  if (!outcome.save) {
    process.stderr.write(`${args}: built for this run only; ${name} and pipeline.lock are unchanged (add --save to keep this setting).\n`);
    return;
  }
  await saveSetting(configPath, setting);
  await writeLockEntries(engine.lockPath, engine.cacheDir, engine.lockNodes);
  process.stderr.write(`${args}: saved into ${name} (comments kept) and pipeline.lock.\n`);
}
