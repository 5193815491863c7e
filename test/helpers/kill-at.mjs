// `node --import ./kill-at.mjs?fn=rename&when=after&path=.link- …`: the process SIGKILLs itself just before or
// just after the first call of fs/promises' `fn` whose first or second argument is a path containing `path`.
// It lets a test stop the engine at each step of a publish or a lock write, with no hook in the engine itself.
import { createRequire, syncBuiltinESMExports } from "node:module";

const params = new URL(import.meta.url).searchParams;
const fn = params.get("fn");
const when = params.get("when");
const needle = params.get("path");
if (!fn || !needle || (when !== "before" && when !== "after")) throw new Error(`kill-at.mjs: bad query ${import.meta.url}`);

const fsp = createRequire(import.meta.url)("node:fs/promises");
const original = fsp[fn];
if (typeof original !== "function") throw new Error(`kill-at.mjs: fs/promises has no function ${fn}`);
fsp[fn] = async function (...args) {
  const hit = args.slice(0, 2).some((a) => typeof a === "string" && a.includes(needle));
  if (hit && when === "before") process.kill(process.pid, "SIGKILL");
  const result = await original.apply(this, args);
  if (hit && when === "after") process.kill(process.pid, "SIGKILL");
  return result;
};
// `import { rename } from "node:fs/promises"` is a live binding: this makes it the wrapper above.
syncBuiltinESMExports();
