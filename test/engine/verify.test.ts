// `verify` re-hashes every output, bypassing the stat cache: it exists for what a stat cannot see. A tamper that
// keeps the size and puts the mtime back still changes the ctime, which the cache key holds, so status sees it
// too; bit rot or a restored backup can keep every stat field, and only the re-hash catches those.
import { execFileSync } from "node:child_process";
import { readFileSync, statSync, writeFileSync, type BigIntStats } from "node:fs";
import { describe, expect, it } from "vitest";
import { FakeProject } from "../helpers/fake-project.ts";

const REPORT = "models/report/report.txt";

async function built(): Promise<FakeProject> {
  const p = new FakeProject();
  expect((await p.build())._result.code).toBe(0);
  expect(p.read(REPORT)).toBe("# Weekly\nhello world\n");
  return p;
}

/** Rewrites the report with other bytes of the same length and puts its mtime back (to the nanosecond). */
function tamperKeepingSizeAndMtime(p: FakeProject): { before: BigIntStats; after: BigIntStats } {
  const path = p.path(REPORT);
  const before = statSync(path, { bigint: true });
  execFileSync("cp", ["-p", path, p.path("mtime-ref")]); // -p keeps the timestamps with full precision
  writeFileSync(path, "# Weekly\nHELLO world\n");
  execFileSync("touch", ["-m", "-r", p.path("mtime-ref"), path]);
  const after = statSync(path, { bigint: true });
  expect(after.size).toBe(before.size);
  expect(after.mtimeNs).toBe(before.mtimeNs);
  expect(after.ino).toBe(before.ino);
  return { before, after };
}

function reportReasons(result: Awaited<ReturnType<FakeProject["run"]>>): string[] | undefined {
  return result.json.nodes.find((n) => n.id === "report")?.reasons;
}

describe.concurrent("verify", () => {
  it("a same-size tamper with its mtime restored: verify names the file, and status does too (the ctime moved)", async () => {
    const p = await built();
    const { before, after } = tamperKeepingSizeAndMtime(p);
    expect(after.ctimeNs).not.toBe(before.ctimeNs);
    const verify = await p.run(["verify", "--json"]);
    expect(verify.code).toBe(1);
    expect(reportReasons(verify)).toEqual(["output file report.txt was modified"]);
    const status = await p.run(["status", "--json"]);
    expect(reportReasons(status)).toEqual(["output file report.txt was modified"]);
  });

  it("bit rot that keeps every stat field: status trusts the cache (the documented trade-off), verify's re-hash catches it", async () => {
    const p = await built();
    const { before, after } = tamperKeepingSizeAndMtime(p);
    // No tool can put a ctime back, so the stat cache is told the new ctime instead: to every later stat the
    // file now looks exactly as it did when it was hashed, as a file whose bytes rotted on disk does.
    const cachePath = p.path("cache/stat-cache.json");
    const key = (st: BigIntStats) => `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
    const cache = readFileSync(cachePath, "utf8");
    expect(cache.split(`"${key(before)}"`)).toHaveLength(2); // the report's entry, keyed as the engine keys it
    writeFileSync(cachePath, cache.replace(`"${key(before)}"`, `"${key(after)}"`));

    const status = await p.run(["status", "--json"]);
    expect(status.json.nodes.every((n) => n.stale === false)).toBe(true);
    expect(await p.build()).toMatchObject({ source: "fresh", lower: "fresh", report: "fresh" });

    const verify = await p.run(["verify", "--json"]);
    expect(verify.code).toBe(1);
    expect(reportReasons(verify)).toEqual(["output file report.txt was modified"]);
    expect(verify.json.nodes.filter((n) => n.changed).map((n) => n.id)).toEqual(["report"]);
    // verify also put the true digest in the cache: from now on a build sees the change and repairs it
    // (from the build cache, which holds the output as it was built).
    expect(await p.build()).toMatchObject({ source: "fresh", lower: "fresh", report: "restored" });
    expect(p.read(REPORT)).toBe("# Weekly\nhello world\n");
    expect((await p.run(["verify"])).code).toBe(0);
  });
});
