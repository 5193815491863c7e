// `node --import ./pause-at.mjs?fn=rm&path=/manifests/&mark=M&go=G …`: at the first call of fs/promises' `fn` whose
// first or second argument is a path containing `path`, the process writes the file M and waits (its event loop
// running) until the file G exists, then makes the call. It lets a test hold the engine between two steps (gc
// between its scan and its first delete, a restore in the middle of its copy) while another process runs, with
// no hook in the engine itself. The sibling of kill-at.mjs.
import { existsSync, writeFileSync } from "node:fs";
import { createRequire, syncBuiltinESMExports } from "node:module";
import { setTimeout as sleep } from "node:timers/promises";

const params = new URL(import.meta.url).searchParams;
const [fn, needle, mark, go] = ["fn", "path", "mark", "go"].map((k) => params.get(k));
if (!fn || !needle || !mark || !go) throw new Error(`pause-at.mjs: bad query ${import.meta.url}`);

const fsp = createRequire(import.meta.url)("node:fs/promises");
const original = fsp[fn];
if (typeof original !== "function") throw new Error(`pause-at.mjs: fs/promises has no function ${fn}`);
let paused = false;
fsp[fn] = async function (...args) {
  if (!paused && args.slice(0, 2).some((a) => typeof a === "string" && a.includes(needle))) {
    paused = true;
    writeFileSync(mark, String(process.pid));
    while (!existsSync(go)) await sleep(50);
  }
  return original.apply(this, args);
};
// `import { rm } from "node:fs/promises"` is a live binding: this makes it the wrapper above.
syncBuiltinESMExports();
