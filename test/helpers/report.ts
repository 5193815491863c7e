// The run report page as a test reads it: parsed with linkedom (its charts, their dots' titles, its links),
// and rendered in headless Chromium through the DevTools protocol (each chart's drawn marks, a screenshot).
import { spawn, spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { pathToFileURL } from "node:url";
import CDP from "chrome-remote-interface";
import { parseHTML } from "linkedom";
import { expect } from "vitest";
import { running } from "../../engine/durable.ts";

export interface ReportPage {
  readonly html: string;
  /** data-chart id → the number of <svg> elements in that chart's figure. */
  readonly svgsPerChart: Record<string, number>;
  /** data-chart id → the titles of its dots (one per metrics.jsonl report, "train · iteration 10 · loss 0.74"). */
  readonly dotTitles: Record<string, string[]>;
  /** Every URL-looking string in the page (href, src, url(), text). */
  readonly urls: string[];
  readonly scripts: number;
  readonly document: Document;
}

export function readReport(path: string): ReportPage {
  const html = readFileSync(path, "utf8");
  const { document } = parseHTML(html) as unknown as { document: Document };
  const svgsPerChart: Record<string, number> = {};
  const dotTitles: Record<string, string[]> = {};
  for (const fig of document.querySelectorAll("figure.chart")) {
    const id = fig.getAttribute("data-chart")!;
    svgsPerChart[id] = fig.querySelectorAll("svg").length;
    dotTitles[id] = [...fig.querySelectorAll('g[aria-label="dot"] circle title')].map((t) => t.textContent ?? "");
  }
  return {
    html,
    svgsPerChart,
    dotTitles,
    urls: html.match(/\b(?:https?|ftp|wss?):\/\/[^\s"'<>)]+|url\([^)]*\)|\/\/[a-z0-9.-]+\.[a-z]{2,}\//gi) ?? [],
    scripts: document.querySelectorAll("script, link, iframe, img[src], object, embed").length,
    document,
  };
}

interface MetricsLine {
  type: string;
  iteration: number;
  train_loss?: number;
  val_loss?: number;
  learning_rate?: number;
  tokens_per_second?: number;
  peak_memory?: number;
}

/**
 * The page shows this build: a chart per view with one <svg> each, a dot per metrics.jsonl report titled with
 * its exact numbers, a timeline bar per node of the last build; and it is self-contained (no URL, no script).
 */
export function expectReportMatchesBuild(page: ReportPage, metricsText: string, lastBuild: { nodes: readonly { id: string }[] }): void {
  expect(page.html.startsWith("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")).toBe(true);
  for (const tag of ["html", "head", "body", "head > title"]) expect(page.document.querySelectorAll(tag).length, tag).toBe(1);
  expect(page.svgsPerChart).toEqual({ loss: 1, "learning-rate": 1, throughput: 1, memory: 1, timeline: 1 });
  const lines = metricsText.split("\n").filter(Boolean).map((l) => JSON.parse(l) as MetricsLine);
  const train = lines.filter((m) => m.type === "train");
  const val = lines.filter((m) => m.type === "val");
  expect(train.length).toBeGreaterThan(1);
  expect(page.dotTitles.loss).toEqual([
    ...train.map((m) => `train · iteration ${m.iteration} · loss ${m.train_loss}`),
    ...val.map((m) => `validation · iteration ${m.iteration} · loss ${m.val_loss}`),
  ]);
  expect(page.dotTitles["learning-rate"]).toEqual(train.map((m) => `iteration ${m.iteration} · learning rate ${m.learning_rate}`));
  expect(page.dotTitles.throughput).toEqual(train.map((m) => `iteration ${m.iteration} · ${m.tokens_per_second} tokens/s`));
  expect(page.dotTitles.memory).toEqual(train.map((m) => `iteration ${m.iteration} · peak ${m.peak_memory} GB`));
  const bars = [...page.document.querySelectorAll('figure[data-chart="timeline"] g[aria-label="bar"] rect title')].map((t) => t.textContent?.split(":")[0]);
  expect(bars).toEqual(lastBuild.nodes.map((n) => n.id));
  expect(page.urls).toEqual([]);
  expect(page.scripts).toBe(0);
}

/** The W3C's Nu HTML Checker (vnu.jar from npm, run offline on Java) on the page: its errors, none when valid. */
export function htmlErrors(path: string): string[] {
  const jar = String(createRequire(import.meta.url)("vnu-jar"));
  const run = spawnSync("java", ["-jar", jar, "--errors-only", "--format", "json", path], { encoding: "utf8" });
  if (run.error) throw run.error;
  const { messages } = JSON.parse(run.stderr) as { messages: { type: string; message: string; lastLine?: number }[] };
  return messages.map((m) => `${m.type} line ${m.lastLine}: ${m.message}`);
}

/** Each chart as the browser drew it: the bounding box of its marks (lines, dots, bars; not the axes). */
export interface RenderedChart {
  readonly id: string;
  readonly width: number;
  readonly height: number;
  readonly marks: number;
}

/**
 * Opens the page (file://, no network) in headless Chromium and returns each chart's drawn marks and a PNG
 * screenshot of the whole page.
 */
export async function renderInChromium(path: string, width = 1100): Promise<{ charts: RenderedChart[]; png: Buffer }> {
  const profile = mkdtempSync(join(tmpdir(), "report-chromium-"));
  // Its own process group: the renderer, GPU, utility and crashpad processes it starts are ended with it.
  const child = spawn("chromium", ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--remote-debugging-port=0", `--user-data-dir=${profile}`, "about:blank"], {
    stdio: ["ignore", "ignore", "pipe"],
    detached: true,
  });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let err = "";
      child.stderr.on("data", (d: Buffer) => {
        err += d.toString();
        const m = /DevTools listening on ws:\/\/127\.0\.0\.1:(\d+)\//.exec(err);
        if (m) resolve(Number(m[1]));
      });
      child.on("exit", (code) => reject(new Error(`chromium exited (${code}) before listening:\n${err}`)));
      child.on("error", (e) => reject(new Error(`chromium could not be started (${e.message}); .ci/run installs Debian's chromium`)));
    });
    const client = await CDP({ host: "127.0.0.1", port });
    try {
      const { Page, Runtime, Emulation } = client;
      await Page.enable();
      await Emulation.setDeviceMetricsOverride({ width, height: 900, deviceScaleFactor: 1, mobile: false });
      const loaded = Page.loadEventFired();
      await Page.navigate({ url: pathToFileURL(path).href });
      await loaded;
      const { result } = await Runtime.evaluate({
        returnByValue: true,
        expression: `[...document.querySelectorAll("figure.chart")].map((fig) => {
          const marks = [...fig.querySelectorAll('svg g[aria-label="line"], svg g[aria-label="dot"], svg g[aria-label="bar"]')];
          const boxes = marks.map((g) => g.getBBox()).filter((b) => b.width > 0 || b.height > 0);
          const x0 = Math.min(...boxes.map((b) => b.x)), x1 = Math.max(...boxes.map((b) => b.x + b.width));
          const y0 = Math.min(...boxes.map((b) => b.y)), y1 = Math.max(...boxes.map((b) => b.y + b.height));
          return { id: fig.dataset.chart, marks: boxes.length, width: boxes.length ? x1 - x0 : 0, height: boxes.length ? y1 - y0 : 0 };
        })`,
      });
      const shot = await Page.captureScreenshot({ format: "png", captureBeyondViewport: true });
      return { charts: result.value as RenderedChart[], png: Buffer.from(shot.data, "base64") };
    } finally {
      await client.close();
    }
  } finally {
    // Every process of the group writes the profile until it is gone (the browser's exit alone left a child
    // writing into Default/ while the folder was removed: ENOTEMPTY), so the folder is removed after the last.
    const group = child.pid; // none when chromium could not be started
    if (group !== undefined) {
      const exited = child.exitCode !== null ? Promise.resolve() : new Promise((resolve) => child.once("exit", resolve));
      try {
        process.kill(-group, "SIGKILL");
      } catch {
        // Already gone.
      }
      await exited;
      for (const deadline = Date.now() + 10_000; running(-group) && Date.now() < deadline; ) await sleep(50);
    }
    rmSync(profile, { recursive: true, force: true, maxRetries: 10 });
  }
}
