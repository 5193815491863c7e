// `-S key=value`: a setting for this build only, on top of the config file, validated by the config's own schema.
// A comma gives several values (`-S lora.rank=4,8`): a sweep over them (see grid.ts). Loaded only when -S is used.
import type { z } from "zod";
import { yaml } from "../packages.ts";
import type { Json } from "../types.ts";
import { UserError } from "../types.ts";

/** One `-S` argument: a dotted key and the values it takes (one, or several for a sweep). */
export interface Override {
  /** As typed, for messages: `-S lora.rank=4,8` (an app's own flag giving a key: `--memory 16GB`). */
  readonly arg: string;
  readonly path: readonly string[];
  readonly values: readonly Json[];
}

/** One combination: every key with one value. */
export type Setting = readonly { readonly arg: string; readonly path: readonly string[]; readonly value: Json }[];

const KEY = /^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*$/;

/** Splits on the commas outside brackets, braces and quotes: `[a,b],[c]` is two values, `"1,2"` one. */
function splitValues(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quote: string | undefined;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === "[" || c === "{") depth++;
    else if (c === "]" || c === "}") depth--;
    else if (c === "," && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

/** Parses every `-S` argument; a malformed one is exit 2 naming it. A key given twice is refused. */
export function parseOverrides(args: readonly string[]): Override[] {
  const seen = new Set<string>();
  return args.map((arg) => {
    const eq = arg.indexOf("=");
    const key = eq < 0 ? arg : arg.slice(0, eq);
    if (eq < 0 || !KEY.test(key)) {
      throw new UserError(`-S ${arg}: write it as key=value with a dotted key of the config, e.g. -S lora.rank=16 (several values: -S lora.rank=4,8).`, 2);
    }
    if (seen.has(key)) throw new UserError(`-S ${arg}: ${key} is set twice; give its values once, separated by commas (-S ${key}=a,b).`, 2);
    seen.add(key);
    const values = splitValues(arg.slice(eq + 1)).map((text) => {
      if (text.trim() === "") throw new UserError(`-S ${arg}: an empty value for ${key}.`, 2);
      try {
        return yaml().parse(text) as Json;
      } catch (e) {
        throw new UserError(`-S ${arg}: ${JSON.stringify(text)} is not a YAML value (${(e as Error).message.split("\n")[0]}).`, 2);
      }
    });
    return { arg: `-S ${arg}`, path: key.split("."), values };
  });
}

/** Every combination of the overrides' values, the first key varying slowest: one Setting per build of a sweep. */
export function grid(overrides: readonly Override[]): Setting[] {
  let settings: Setting[] = [[]];
  for (const o of overrides) {
    settings = settings.flatMap((s) => o.values.map((value) => [...s, { arg: o.arg, path: o.path, value }]));
  }
  return settings;
}

/** `-S lora.rank=8 -S lora.learning_rate=0.0003`: the arguments that give this setting, for a message or a command. */
export function settingArgs(setting: Setting): string[] {
  return setting.map((s) => `-S ${s.path.join(".")}=${typeof s.value === "string" ? s.value : JSON.stringify(s.value)}`);
}

function setIn(target: Record<string, Json>, path: readonly string[], value: Json): void {
  let at = target;
  for (const key of path.slice(0, -1)) {
    const next = at[key];
    // A key under a scalar (model.name where model is a string) is left for the schema to name.
    const inner: Record<string, Json> = next !== null && typeof next === "object" && !Array.isArray(next) ? { ...next } : {};
    at[key] = inner;
    at = inner;
  }
  at[path[path.length - 1]!] = value;
}

/**
 * The config with one setting applied, validated by `schema` (the config file's own). A bad key or value is exit 2
 * naming the -S argument, the key and what was wrong: `-S lora.rnk=8: unknown key lora.rnk`.
 */
export function applySetting<S extends z.ZodType>(config: z.output<S>, setting: Setting, schema: S, file: string): z.output<S> {
  const raw = structuredClone(config) as Record<string, Json>;
  for (const s of setting) setIn(raw, s.path, s.value);
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const messages = result.error.issues.map((issue) => {
    const at = issue.path.map(String);
    const keys = issue.code === "unrecognized_keys" ? issue.keys.map((k) => [...at, k]) : [at];
    return keys
      .map((path) => {
        const key = path.join(".");
        // The argument this issue is about: the one whose key is, or lies under or over, the issue's path.
        const arg = setting.find((s) => { const k = s.path.join("."); return key === k || key.startsWith(`${k}.`) || k.startsWith(`${key}.`); })?.arg;
        const what = issue.code === "unrecognized_keys" ? `unknown key ${key} (not in ${file}'s schema)` : `${key}: ${issue.message}`;
        return arg ? `${arg}: ${what}` : `${file} with ${setting.map((s) => s.arg).join(", ")}: ${what}`;
      })
      .join("\n  ");
  });
  throw new UserError(`${messages.join("\n  ")}\nFix the value, or see \`pipeline.schema.json\` for the keys and their types.`, 2);
}

/** The settings the -S arguments give: one build, or a sweep's combinations. --save takes one combination only. */
export function settingsOf(args: readonly string[], save: boolean): Setting[] {
  const settings = grid(parseOverrides(args));
  if (save && settings.length > 1) {
    throw new UserError(`--save with a sweep of ${settings.length} combinations: run the sweep, then save the one you keep (\`runs show ID\` prints its -S arguments) with one value per key.`, 2);
  }
  return settings;
}
