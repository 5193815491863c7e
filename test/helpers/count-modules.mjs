// `node --import ./count-modules.mjs --import tsx …`: prints, at exit, how many modules were loaded, by package,
// and which of this repository's own files were loaded (relative paths): the ES modules that went through the
// loader (with tsx every one of them is a round trip to its hooks thread) and the CommonJS ones required
// (engine/packages.ts).
import { createRequire, register } from "node:module";
import { pathToFileURL } from "node:url";
import { MessageChannel } from "node:worker_threads";

const { port1, port2 } = new MessageChannel();
const urls = [];
port1.on("message", (url) => urls.push(url));
port1.unref();
const hooks = "let port; export function initialize(d) { port = d.port; } export async function load(url, context, next) { port.postMessage(url); return next(url, context); }";
register(`data:text/javascript,${encodeURIComponent(hooks)}`, { parentURL: import.meta.url, data: { port: port2 }, transferList: [port2] });
const repo = new URL("../../", import.meta.url).href;
const required = createRequire(import.meta.url).cache;
process.on("exit", () => {
  for (const path of Object.keys(required)) urls.push(pathToFileURL(path).href);
  const project = [...new Set(urls.filter((u) => u.startsWith(repo) && !u.includes("/node_modules/")).map((u) => u.slice(repo.length)))].sort();
  const byPackage = {};
  for (const url of urls) {
    const m = /node_modules\/((@[^/]+\/)?[^/]+)/.exec(url);
    const key = m ? m[1] : url.startsWith("node:") ? "node:*" : "project";
    byPackage[key] = (byPackage[key] ?? 0) + 1;
  }
  process.stderr.write(`@@modules ${JSON.stringify({ total: urls.length, byPackage, project })}\n`);
});
