// `pipeline.ts report` on the shared tiny model built through eval (the answers table, a GGUF, the last build's
// timeline): the page is self-contained, its dots are metrics.jsonl's reports, Chromium draws every chart,
// and a second training overlays the first from the build cache, labelled with the params that differed.
// The demo's own report is checked in smollm.test.ts, on the demo that test builds.
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import type { Project, RunResult } from "../helpers/project.ts";
import { expectReportMatchesBuild, htmlErrors, readReport, renderInChromium } from "../helpers/report.ts";
import { sharedConfig, sharedProject } from "../helpers/shared-project.ts";

interface EvalFile {
  answers: { question: string; reference: string; base: string; fineTuned: string; gguf: string }[];
}

describe("the run report", () => {
  let p: Project;
  const page = () => readReport(p.path("models/report/index.html"));
  let build: RunResult;

  beforeAll(async () => {
    ({ project: p, first: build } = await sharedProject());
  }, 1_800_000);

  it("the end of training prints the loss as a sparkline beside the final numbers", () => {
    expect(build.stderr).toMatch(/\[adapters\] train loss [▁▂▃▄▅▆▇█]{2} final \d+\.\d+, validation loss \d/);
  });

  it("is one self-contained page: one SVG per chart, dots equal to metrics.jsonl, the eval table, no URL or script", async () => {
    const run = await p.run(["report"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr.trim()).toBe(p.path("models/report/index.html"));
    expect(htmlErrors(p.path("models/report/index.html"))).toEqual([]);
    const report = page();
    expectReportMatchesBuild(report, p.read("models/adapters/metrics.jsonl"), JSON.parse(p.read("cache/last-build.json")) as { nodes: { id: string }[] });
    // The answers before and after, and the GGUF's, one row per test example.
    const evalFile = JSON.parse(p.read("models/eval/eval.json")) as EvalFile;
    const rows = [...report.document.querySelectorAll("#eval table.answers tbody tr")].map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent));
    expect(rows.map((r) => r.slice(0, 4))).toEqual(evalFile.answers.map((a) => [a.question, a.reference, a.base, a.fineTuned]));
    expect(report.document.querySelector("#eval")?.textContent).toMatch(/The GGUF's answers agree with the fine-tuned model's on \d\/4/);
    // The GGUF's facts from gguf.json, its size from the file.
    const settings = report.document.querySelector("#settings")?.textContent ?? "";
    expect(settings).toContain(`${readFileSync(p.path("models/gguf/model.gguf")).length.toLocaleString("en")} bytes`);
    expect(settings).toContain("tensorCount");
    expect(settings).toContain("mlx_lm");
  });

  it("renders in headless Chromium with every chart's marks drawn", async () => {
    const { charts, png } = await renderInChromium(p.path("models/report/index.html"));
    expect(charts.map((c) => c.id)).toEqual(["loss", "learning-rate", "throughput", "memory", "timeline"]);
    for (const c of charts) {
      expect(c.marks, c.id).toBeGreaterThan(0);
      expect(c.width, c.id).toBeGreaterThan(100); // the marks span the plot, not a corner of it
      expect(c.height, c.id).toBeGreaterThan(0);
    }
    expect(png.subarray(1, 4).toString()).toBe("PNG");
  });

  it("overlays the earlier training kept in the build cache, labelled with what differed", async () => {
    // Trained here at rank 8, then back to rank 4, which comes restored: the build cache keeps the rank-8 training
    // as this project's (the rank-4 entry came with the copy and is another project's, the one that built it).
    p.write("pipeline.yaml", sharedConfig({ lora: { rank: 8 } }));
    await p.mustBuild("adapters");
    const before = p.read("models/adapters/metrics.jsonl");
    p.write("pipeline.yaml", sharedConfig());
    expect((await p.mustBuild("adapters")).statuses.adapters).toBe("restored");
    const run = await p.run(["report"]);
    expect(run.code, run.stderr).toBe(0);
    const report = page();
    // This build's curve, from its own metrics.jsonl ...
    expectReportMatchesBuild(report, p.read("models/adapters/metrics.jsonl"), JSON.parse(p.read("cache/last-build.json")) as { nodes: { id: string }[] });
    // ... and the rank-8 training's, dashed, one point per report of its metrics.jsonl.
    const dashed = [...report.document.querySelectorAll('figure[data-chart="loss"] g[aria-label="line"][stroke-dasharray] path')];
    expect(dashed.map((path) => path.querySelector("title")?.textContent)).toEqual(["earlier 1: rank 8 (now 4)"]);
    const earlierTrain = before.split("\n").filter((l) => l.includes('"type": "train"') || l.includes('"type":"train"'));
    expect(dashed[0]!.getAttribute("d")!.split(/[ML]/).filter(Boolean)).toHaveLength(earlierTrain.length);
    expect(report.document.querySelector('figure[data-chart="loss"] .legend')?.textContent).toContain("earlier 1: rank 8 (now 4)");
    expect(report.document.querySelector("#earlier")?.textContent).toContain("rank 8 (now 4)");
  });
});
