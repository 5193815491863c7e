// Builds the run report page: collects, charts, writes. pipeline.ts imports this file only for `report`,
// so no build ever loads the chart library.
import { stat } from "node:fs/promises";
import { join } from "node:path";
import type { OperatingSystem } from "../guard/memory.ts";
import { plannedMachine } from "../guard/machine.ts";
import * as charts from "./charts.ts";
import { collectReport, type EarlierTraining } from "./data.ts";
import { pageHtml, writePage } from "./page.ts";

export interface ReportProject {
  readonly root: string;
  /** The build cache's local store, where earlier trainings are looked up; none configured: no overlay. */
  readonly storeDir?: string;
  /** The machine the memory guard planned for (config `memory:`). */
  readonly memory: { readonly os?: OperatingSystem; readonly total?: string };
  /** `report --runs A,B`: the runs to overlay and list instead of the earlier trainings of this folder. */
  readonly runs?: readonly EarlierTraining[];
}

/** Writes models/report/index.html and returns its path. */
export async function writeReport(project: ReportProject): Promise<string> {
  const data = await collectReport(project.root, project.storeDir, project.runs);
  const list = [];
  if (data.metrics && data.metrics.train.length + data.metrics.val.length > 0) {
    // Outputs trained before memory.json recorded the usable memory: the planned machine's, now.
    const usableGB = data.memory?.usableGB ?? plannedMachine(project.memory).usableBytes / 1e9;
    list.push(
      charts.lossChart(data.metrics, data.earlier),
      charts.learningRateChart(data.metrics),
      charts.throughputChart(data.metrics),
      charts.memoryChart(data.metrics, data.memory, usableGB),
    );
  }
  if (data.lastBuild) list.push(charts.timelineChart(data.lastBuild));
  const ggufBytes = data.gguf ? await stat(join(project.root, "models", "gguf", data.gguf.file)).then((s) => s.size, () => undefined) : undefined;
  return writePage(project.root, pageHtml(data, list, ggufBytes, new Date()));
}
