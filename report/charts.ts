// The report's charts: Observable Plot rendered in Node on linkedom's DOM, each one inline <svg> (no
// script, no font, no URL). Loaded only by `report`: a build never imports this file.
import * as Plot from "@observablehq/plot";
import { parseHTML } from "linkedom";
import type { BuildRecord } from "../engine/build-record.ts";
import type { NodeStatus } from "../engine/engine.ts";
import type { MemoryFile, Metrics, TrainPoint } from "../stages/lib/data/training-metrics.ts";
import type { EarlierTraining } from "./data.ts";

const WIDTH = 760;

export const COLORS = {
  train: "#2563eb",
  val: "#ea580c",
  earlier: ["#7c3aed", "#059669", "#db2777", "#0891b2", "#a16207", "#6b7280"],
  estimate: "#ea580c",
  usable: "#dc2626",
} as const;

export const STATUS_COLORS: Readonly<Record<NodeStatus, string>> = {
  ran: "#2563eb",
  restored: "#059669",
  cutoff: "#a855f7",
  fresh: "#cbd5e1",
  failed: "#dc2626",
  skipped: "#94a3b8",
  cancelled: "#f59e0b",
};

/** One legend entry: what the page prints beside a chart (Plot's own legends would add SVGs). */
export interface LegendItem {
  readonly label: string;
  readonly color: string;
  readonly dashed?: boolean;
}

export interface Chart {
  readonly id: string;
  readonly title: string;
  readonly svg: string;
  readonly legend: readonly LegendItem[];
}

const { document } = parseHTML("<!doctype html><html><body></body></html>");

function render(options: Plot.PlotOptions): string {
  const el = Plot.plot({ width: WIDTH, height: 260, style: { fontSize: "11px", background: "transparent" }, ...options, document: document as unknown as Document });
  // SVG's font-variant attribute takes no "tabular-nums" (the W3C checker rejects Plot's): the page's CSS sets it.
  for (const g of el.querySelectorAll("[font-variant]")) g.removeAttribute("font-variant");
  return el.outerHTML;
}

/** Tokens seen by an iteration, interpolated between the reports (mlx-lm reports every few steps). */
function tokensAt(train: readonly TrainPoint[], iteration: number): number {
  let prev = { iteration: 0, trainedTokens: 0 };
  for (const p of train) {
    if (p.iteration >= iteration) {
      const span = p.iteration - prev.iteration;
      return span > 0 ? prev.trainedTokens + ((iteration - prev.iteration) / span) * (p.trainedTokens - prev.trainedTokens) : p.trainedTokens;
    }
    prev = p;
  }
  const last = train.at(-1);
  return last && last.iteration > 0 ? (last.trainedTokens / last.iteration) * iteration : 0;
}

const compact = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : `${Math.round(n)}`);

/** The x axis of the training charts: iteration, and below it the tokens seen by then. */
function iterationAxis(train: readonly TrainPoint[]): Plot.ScaleOptions {
  return { label: "iteration (tokens seen) →", labelAnchor: "right", ticks: 6, tickFormat: (i: number) => `${i}\n${compact(tokensAt(train, i))} tok` };
}

export function lossChart(metrics: Metrics, earlier: readonly EarlierTraining[]): Chart {
  const train = metrics.train.map((p) => ({ ...p, series: "train" }));
  const val = metrics.val.map((p) => ({ ...p, series: "validation" }));
  const old = earlier.flatMap((e, i) => e.metrics.train.map((p) => ({ iteration: p.iteration, loss: p.loss, series: `earlier ${i + 1}`, label: `earlier ${i + 1}: ${e.label}` })));
  const legend: LegendItem[] = [
    { label: "train loss", color: COLORS.train },
    { label: "validation loss", color: COLORS.val },
    ...earlier.map((e, i) => ({ label: `earlier ${i + 1}: ${e.label}`, color: COLORS.earlier[i % COLORS.earlier.length]!, dashed: true })),
  ];
  const svg = render({
    height: 300,
    marginBottom: 40,
    x: iterationAxis(metrics.train),
    y: { label: "↑ loss", grid: true, zero: true },
    color: { domain: ["train", "validation", ...earlier.map((_, i) => `earlier ${i + 1}`)], range: [COLORS.train, COLORS.val, ...earlier.map((_, i) => COLORS.earlier[i % COLORS.earlier.length]!)] },
    marks: [
      Plot.lineY(old, { x: "iteration", y: "loss", z: "series", stroke: "series", strokeDasharray: "5,3", strokeOpacity: 0.8, title: "label" }),
      Plot.lineY(train, { x: "iteration", y: "loss", stroke: "series", strokeWidth: 2 }),
      Plot.lineY(val, { x: "iteration", y: "loss", stroke: "series", strokeWidth: 2 }),
      // One dot per metrics.jsonl report, titled with its exact numbers.
      Plot.dot([...train, ...val], {
        x: "iteration",
        y: "loss",
        fill: "series",
        r: 3,
        title: (d: { series: string; iteration: number; loss: number }) => `${d.series} · iteration ${d.iteration} · loss ${d.loss}`,
      }),
    ],
  });
  return { id: "loss", title: "Training and validation loss", svg, legend };
}

export function learningRateChart(metrics: Metrics): Chart {
  const svg = render({
    height: 160,
    marginBottom: 40,
    x: iterationAxis(metrics.train),
    y: { label: "↑ learning rate", grid: true, zero: true, tickFormat: "~e" },
    marks: [
      Plot.lineY(metrics.train, { x: "iteration", y: "learningRate", curve: "step-before", stroke: COLORS.train }),
      Plot.dot(metrics.train, { x: "iteration", y: "learningRate", fill: COLORS.train, r: 2.5, title: (d: TrainPoint) => `iteration ${d.iteration} · learning rate ${d.learningRate}` }),
    ],
  });
  return { id: "learning-rate", title: "Learning rate", svg, legend: [{ label: "learning rate", color: COLORS.train }] };
}

export function throughputChart(metrics: Metrics): Chart {
  const svg = render({
    height: 200,
    marginBottom: 40,
    x: iterationAxis(metrics.train),
    y: { label: "↑ tokens/s", grid: true, zero: true },
    marks: [
      Plot.lineY(metrics.train, { x: "iteration", y: "tokensPerSecond", stroke: COLORS.train }),
      Plot.dot(metrics.train, { x: "iteration", y: "tokensPerSecond", fill: COLORS.train, r: 3, title: (d: TrainPoint) => `iteration ${d.iteration} · ${d.tokensPerSecond} tokens/s` }),
    ],
  });
  return { id: "throughput", title: "Throughput per report", svg, legend: [{ label: "tokens/s", color: COLORS.train }] };
}

export function memoryChart(metrics: Metrics, memory: MemoryFile | undefined, usableGB: number | undefined): Chart {
  const estimate = memory?.estimatedPeakGB ?? undefined;
  const rules = [
    ...(estimate != null ? [{ gb: estimate, label: `guard's estimate ${estimate.toFixed(2)} GB`, color: COLORS.estimate }] : []),
    ...(usableGB !== undefined ? [{ gb: usableGB, label: `usable ${usableGB.toFixed(2)} GB`, color: COLORS.usable }] : []),
  ];
  // A log scale: a 0.9 GB peak beside a 1.3 GB estimate stays legible under a 24 GB limit.
  const values = [...metrics.train.map((p) => p.peakMemoryGB), ...rules.map((r) => r.gb)].filter((v) => Number.isFinite(v) && v > 0);
  const domain = values.length > 0 ? [Math.min(...values) / 1.5, Math.max(...values) * 1.5] : [0.1, 1];
  const svg = render({
    height: 220,
    marginBottom: 40,
    x: iterationAxis(metrics.train),
    y: { label: "↑ peak memory (GB, log scale)", type: "log", grid: true, domain },
    marks: [
      Plot.ruleY(rules, { y: "gb", stroke: "color", strokeDasharray: "6,3", strokeWidth: 1.5 }),
      Plot.text(rules, { y: "gb", text: "label", frameAnchor: "right", textAnchor: "end", dy: -6, fill: "color" }),
      Plot.lineY(metrics.train, { x: "iteration", y: "peakMemoryGB", stroke: COLORS.train }),
      Plot.dot(metrics.train, { x: "iteration", y: "peakMemoryGB", fill: COLORS.train, r: 3, title: (d: TrainPoint) => `iteration ${d.iteration} · peak ${d.peakMemoryGB} GB` }),
    ],
  });
  return {
    id: "memory",
    title: "Peak memory per report",
    svg,
    legend: [{ label: "measured peak (mlx)", color: COLORS.train }, ...rules.map((r) => ({ label: r.label, color: r.color, dashed: true }))],
  };
}

export function timelineChart(record: BuildRecord): Chart {
  const end = Math.max(...record.nodes.map((n) => n.startedMs + n.ms), 1);
  // A fresh node takes a millisecond: drawn a sliver wide so every node shows.
  const rows = record.nodes.map((n) => ({ ...n, s0: n.startedMs / 1000, s1: Math.max(n.startedMs + n.ms, n.startedMs + end / 300) / 1000 }));
  const statuses = Object.keys(STATUS_COLORS) as NodeStatus[];
  const svg = render({
    height: 40 + rows.length * 26,
    marginLeft: 80,
    marginRight: 110, // room for the last bar's label
    x: { label: "seconds since the build started →", grid: true, domain: [0, end / 1000] },
    y: { domain: rows.map((r) => r.id), label: null },
    color: { domain: statuses, range: statuses.map((s) => STATUS_COLORS[s]) },
    marks: [
      Plot.barX(rows, { x1: "s0", x2: "s1", y: "id", fill: "status", title: (d: (typeof rows)[number]) => `${d.id}: ${d.status} in ${(d.ms / 1000).toFixed(1)} s — ${d.reason}` }),
      Plot.text(rows, { x: "s1", y: "id", text: (d: (typeof rows)[number]) => `${d.status} ${(d.ms / 1000).toFixed(1)} s`, textAnchor: "start", dx: 4 }),
    ],
  });
  const seen = new Set(record.nodes.map((n) => n.status));
  return { id: "timeline", title: `The last build (${record.target}, ${record.started})`, svg, legend: statuses.filter((s) => seen.has(s)).map((s) => ({ label: s, color: STATUS_COLORS[s] })) };
}
