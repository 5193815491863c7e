// `pipeline.ts report`: one self-contained HTML page (inline SVG and CSS, no script, no URL) at
// models/report/index.html, so it opens offline and in a CI artifact viewer.
//
// A command, not a graph node: what it shows (the last build's timings, the build cache's earlier
// trainings) is no build input, so a node's fingerprint could not say when it is stale. It is cheap to
// rewrite instead (well under a second).
import { mkdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Json } from "../engine/types.ts";
import type { LockEntry } from "../engine/lockfile.ts";
import type { Chart, LegendItem } from "./charts.ts";
import type { ReportData } from "./data.ts";

export const REPORT_DIR = join("models", "report");
export const REPORT_FILE = "index.html";

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const fmt = (n: number | null | undefined, digits = 3) => (n == null || !Number.isFinite(n) ? "–" : Number(n.toFixed(digits)).toString());
const gb = (bytes: number) => `${(bytes / 1e9).toFixed(2)} GB`;

function legendHtml(items: readonly LegendItem[]): string {
  return `<ul class="legend">${items
    .map((i) => `<li><span class="swatch${i.dashed ? " dashed" : ""}" style="--c:${i.color}"></span>${esc(i.label)}</li>`)
    .join("")}</ul>`;
}

function chartHtml(chart: Chart): string {
  return `<figure class="chart" id="chart-${chart.id}" data-chart="${chart.id}"><figcaption>${esc(chart.title)}</figcaption>${legendHtml(chart.legend)}${chart.svg}</figure>`;
}

function table(head: readonly string[], rows: readonly (readonly string[])[], cls = ""): string {
  return `<table${cls ? ` class="${cls}"` : ""}><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join("")}</tr>`)
    .join("")}</tbody></table>`;
}

const value = (v: Json | undefined) => esc(v === undefined ? "" : typeof v === "string" ? v : JSON.stringify(v));

/** A node's params from the lock as key/value rows (nested objects one level down as "a.b"). */
function paramsTable(entry: LockEntry | undefined): string {
  const params = entry?.params;
  if (!params || typeof params !== "object" || Array.isArray(params)) return "<p class=\"muted\">not built</p>";
  const rows: string[][] = [];
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && typeof v === "object" && !Array.isArray(v)) for (const [k2, v2] of Object.entries(v)) rows.push([esc(`${k}.${k2}`), value(v2 as Json)]);
    else rows.push([esc(k), value(v as Json)]);
  }
  return table(["setting", "value"], rows, "kv");
}

function toolsTable(data: ReportData): string {
  const byTool = new Map<string, Map<string, string[]>>();
  for (const [node, entry] of Object.entries(data.lock)) {
    for (const [tool, version] of Object.entries(entry.tools)) {
      const versions = byTool.get(tool) ?? new Map<string, string[]>();
      versions.set(version, [...(versions.get(version) ?? []), node]);
      byTool.set(tool, versions);
    }
  }
  const rows = [...byTool.keys()].sort().map((tool) => [esc(tool), [...byTool.get(tool)!].map(([v, nodes]) => `${esc(v)} <span class="muted">(${esc(nodes.sort().join(", "))})</span>`).join("<br>")]);
  return table(["tool", "version (nodes)"], rows, "kv");
}

function ggufSection(data: ReportData, ggufBytes: number | undefined): string {
  const g = data.gguf;
  if (!g) return "<p class=\"muted\">No GGUF built yet.</p>";
  const rows: string[][] = [
    ["file", esc(`models/gguf/${g.file}`)],
    ["size", `${gb(ggufBytes ?? g.bytes)} (${(ggufBytes ?? g.bytes).toLocaleString("en")} bytes)`],
    ["type", esc(g.type)],
    ...Object.entries(g.header).map(([k, v]) => [esc(k), value(v)]),
    ...Object.entries(g.special ?? {}).map(([k, v]) => [esc(`special.${k}`), value(v)]),
    ...(g.agreeOnFirst !== undefined ? [["llama.cpp = mlx on the first tokens", String(g.agreeOnFirst)]] : []),
  ];
  return table(["fact", "value"], rows, "kv");
}

function evalSection(data: ReportData): string {
  const e = data.eval;
  if (!e) return "";
  const n = e.examples;
  const scores = table(
    ["", "exact", "normalized", "test loss", "perplexity"],
    [
      ["base model", `${e.base.exact}/${n}`, `${e.base.normalized}/${n}`, fmt(e.base.loss), fmt(e.base.ppl)],
      ["fine-tuned", `${e.fineTuned.exact}/${n}`, `${e.fineTuned.normalized}/${n}`, fmt(e.fineTuned.loss), fmt(e.fineTuned.ppl)],
      [`GGUF (${esc(e.gguf.type)})`, `${e.gguf.exact}/${n}`, "", "", ""],
    ],
  );
  const agree = `<p>The GGUF's answers agree with the fine-tuned model's on ${e.gguf.agreesWithFused}/${n}${
    e.gguf.agreesWithF16 !== undefined ? `, with the f16 conversion's on ${e.gguf.agreesWithF16}/${n}` : ""
  }${
    e.deploy ? `; base GGUF + LoRA GGUF agree with the GGUF on ${e.deploy.loraAgreesWithGguf}/${n}, llama-server (its --jinja template, /v1/chat/completions) on ${e.deploy.serverAgreesWithGguf}/${n}` : ""
  }.</p>`;
  const deployed = e.deploy !== undefined;
  const answers = table(
    ["question", "reference", "before (base)", "after (fine-tuned)", "GGUF", ...(deployed ? ["base + LoRA GGUF", "llama-server"] : [])],
    e.answers.map((a) => {
      const mark = (s: string) => `<span class="${s.trim() === a.reference.trim() ? "hit" : "miss"}">${esc(s)}</span>`;
      const versus = (s: string, other: string) => `${mark(s)}${s.trim() === other.trim() ? "" : ' <span class="muted">(differs)</span>'}`;
      const deployCells = deployed ? [versus(a.lora ?? "", a.gguf), versus(a.server ?? "", a.gguf)] : [];
      return [esc(a.question), esc(a.reference), mark(a.base), mark(a.fineTuned), versus(a.gguf, a.fineTuned), ...deployCells];
    }),
    "answers",
  );
  return `<section id="eval"><h2>Evaluation on the test split</h2>${scores}${agree}${answers}</section>`;
}

function earlierSection(data: ReportData): string {
  if (data.earlier.length === 0) return "";
  const scored = data.earlier.some((e) => e.score !== undefined);
  const rows = data.earlier.map((e, i) => [
    `earlier ${i + 1}`,
    esc(e.label),
    fmt(e.metrics.train.at(-1)?.loss),
    fmt(e.metrics.val.at(-1)?.loss),
    ...(scored ? [esc(e.score ?? "–")] : []),
    `<code>${e.fingerprint.slice(0, 12)}</code>`,
  ]);
  const header = ["", "what differed", "final train loss", "final validation loss", ...(scored ? ["eval exact"] : []), "fingerprint"];
  return `<section id="earlier"><h2>Earlier trainings in the build cache</h2><p class="muted">Params as they were (this build's in the settings below); overlaid dashed on the loss chart.</p>${table(header, rows)}</section>`;
}

function summary(data: ReportData, ggufBytes: number | undefined): string {
  const facts = data.lock.adapters?.facts ?? {};
  const items: [string, string][] = [
    ["final train loss", fmt(facts.final_train_loss as number | undefined, 4)],
    ["final validation loss", fmt(facts.final_val_loss as number | undefined, 4)],
    ["peak memory", data.memory?.measuredPeakGB != null ? `${fmt(data.memory.measuredPeakGB)} GB` : "–"],
    ["guard's estimate", data.memory?.estimatedPeakGB != null ? `${fmt(data.memory.estimatedPeakGB)} GB` : "–"],
    ["GGUF", data.gguf ? `${gb(ggufBytes ?? data.gguf.bytes)} ${esc(data.gguf.type)}` : "–"],
  ];
  return `<dl class="summary">${items.map(([k, v]) => `<div><dt>${esc(k)}</dt><dd>${v}</dd></div>`).join("")}</dl>`;
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#111827;background:#fff;margin:0 auto;max-width:1100px;padding:16px 24px}
h1{font-size:22px;margin:8px 0 2px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}
.muted{color:#6b7280}code{font-size:12px}
.summary{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}.summary div{border:1px solid #e5e7eb;border-radius:6px;padding:6px 12px}
.summary dt{font-size:12px;color:#6b7280}.summary dd{margin:0;font-size:18px;font-weight:600}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:12px}
figure.chart{margin:0;border:1px solid #e5e7eb;border-radius:6px;padding:8px 10px}
figcaption{font-weight:600}figure.chart svg{max-width:100%;height:auto;font-variant-numeric:tabular-nums}
.legend{list-style:none;padding:0;margin:4px 0;display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px}
.swatch{display:inline-block;width:18px;height:0;border-top:3px solid var(--c);vertical-align:middle;margin-right:5px}.swatch.dashed{border-top-style:dashed}
table{border-collapse:collapse;font-size:13px;margin:6px 0}th,td{border:1px solid #e5e7eb;padding:3px 8px;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f9fafb}.kv td:first-child{font-family:ui-monospace,monospace;font-size:12px}
.settings{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:12px}
.hit{color:#047857}.miss{color:#b91c1c}
`;

/** The page's HTML from the collected data and the rendered charts. */
export function pageHtml(data: ReportData, charts: readonly Chart[], ggufBytes: number | undefined, generated: Date): string {
  const byId = new Map(charts.map((c) => [c.id, c]));
  const chart = (id: string) => (byId.has(id) ? chartHtml(byId.get(id)!) : "");
  const training = data.metrics
    ? `<section id="training"><h2>Training</h2><div class="grid">${chart("loss")}${chart("learning-rate")}${chart("throughput")}${chart("memory")}</div></section>`
    : `<section id="training"><h2>Training</h2><p class="muted">No training metrics yet: build adapters first.</p></section>`;
  const timeline = data.lastBuild
    ? `<section id="build"><h2>Where the time went</h2>${chart("timeline")}</section>`
    : `<section id="build"><h2>Where the time went</h2><p class="muted">No build recorded yet (cache/last-build.json is written by the next build that runs or restores a node).</p></section>`;
  const settings = `<section id="settings"><h2>Settings and tools</h2><div class="settings">
<div><h3>Model</h3>${paramsTable(data.lock.model)}</div>
<div><h3>Data</h3>${paramsTable(data.lock.data)}${data.lock.formatted ? paramsTable(data.lock.formatted) : ""}</div>
<div><h3>LoRA</h3>${paramsTable(data.lock.adapters)}</div>
<div><h3>GGUF</h3>${ggufSection(data, ggufBytes)}</div>
<div><h3>Tool versions</h3>${toolsTable(data)}</div>
</div></section>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Run report: ${esc(data.root)}</title><style>${CSS}</style></head>
<body><header><h1>Run report</h1><p class="muted">${esc(data.root)} · generated ${esc(generated.toISOString())}</p></header>
${summary(data, ggufBytes)}
${training}
${earlierSection(data)}
${evalSection(data)}
${timeline}
${settings}
</body></html>
`;
}

/** Writes the page atomically (a reader or an artifact upload sees the old page or the new one). */
export async function writePage(root: string, html: string): Promise<string> {
  const dir = join(root, REPORT_DIR);
  await mkdir(dir, { recursive: true });
  const path = join(dir, REPORT_FILE);
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, html);
  await rename(tmp, path);
  return path;
}
