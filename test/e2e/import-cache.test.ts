// transformers' import structure kept in the per-user cache (stages/py/site/sitecustomize.py): the structure read
// back is the one transformers computes, a warm process does not scan, and a damaged file is scanned again and
// replaced. In both environments the pipeline runs transformers in (mlx-lm's, the converter's).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PY_ENV } from "../../stages/lib/toolchain/tools.ts";
import { pipelineYaml, Project } from "../helpers/project.ts";

/** The models' import structure, canonical, and how many folders this process scanned to get it. */
const PROBE = `
import json, os
import transformers.utils.import_utils as iu
from transformers import AutoTokenizer  # the lazy models module, as mlx-lm and the converter reach it
models = os.path.join(os.path.dirname(os.path.dirname(iu.__file__)), "models")
s = iu.define_import_structure(models, "models")
print(json.dumps({"structure": sorted([sorted(k), sorted([m, sorted(v)] for m, v in d.items())] for k, d in s.items()), "scanned": iu.create_import_structure_from_path.cache_info().misses}))
`;

interface Probe {
  structure: unknown;
  scanned: number;
}

describe.each(["mlx-env", "llama-cpp"] as const)("transformers' import structure, cached (%s)", (toolchain) => {
  it("is what transformers computes, read back without scanning, and a damaged file is scanned again and replaced", async () => {
    const p = new Project(pipelineYaml());
    await p.mustBuild(toolchain);
    const tc = p.toolchain(toolchain);
    const cache = mkdtempSync(join(tmpdir(), "import-cache-"));
    const probe = (cached: boolean): Probe => {
      const env = { ...process.env, ...tc.env, ...PY_ENV, USE_TORCH: "0", MLX_PIPELINE_IMPORT_CACHE: cached ? cache : undefined };
      const defined = Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
      const out = execFileSync(tc.python, ["-c", PROBE], { env: defined, encoding: "utf8" });
      return JSON.parse(out.trim().split("\n").at(-1)!) as Probe;
    };
    const scanned = probe(false);
    expect(scanned.scanned).toBeGreaterThan(0);
    const cold = probe(true);
    expect(cold.structure).toEqual(scanned.structure);
    expect(cold.scanned).toBeGreaterThan(0);
    const [file] = readdirSync(cache);
    expect(file).toMatch(/^transformers-[0-9a-f]{16}\.json$/);
    const warm = probe(true);
    expect(warm).toEqual({ structure: scanned.structure, scanned: 0 });
    writeFileSync(join(cache, file!), '{"torn');
    const damaged = probe(true);
    expect(damaged.structure).toEqual(scanned.structure);
    expect(damaged.scanned).toBeGreaterThan(0);
    expect(() => JSON.parse(readFileSync(join(cache, file!), "utf8")) as unknown).not.toThrow();
    expect(probe(true)).toEqual({ structure: scanned.structure, scanned: 0 });
  }, 1_800_000);
});
