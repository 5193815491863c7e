// The parse memo: a stored parse is reused only for the same text, parsed by the same code.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeEach, describe, expect, it, vi } from "vitest";
import type { CachedParser } from "../../engine/parse-cache.ts";
import type { Json } from "../../engine/types.ts";

let dir: string;
let calls: string[];

/** A parser that counts its calls; its code is `code.js` in the test's folder. */
function parser(id = "counted"): CachedParser<Json> {
  return {
    id,
    code: [join(dir, "code.js")],
    packages: ["zod"],
    parse: async (text) => {
      calls.push(text);
      if (text === "bad") throw new Error("bad input");
      return { upper: text.toUpperCase(), dropped: undefined } as unknown as Json;
    },
  };
}

/** A fresh copy of the module: its in-process memo of code keys starts empty, as in a new run. */
async function freshModule() {
  vi.resetModules();
  return import("../../engine/parse-cache.ts");
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "parse-cache-"));
  writeFileSync(join(dir, "code.js"), "v1");
  calls = [];
});

describe("parseCached", () => {
  it("parses a text once, across runs, and returns what a fresh parse returns", async () => {
    const first = await (await freshModule()).parseCached(join(dir, "cache"), parser(), "/p/a.yaml", "hello");
    const second = await (await freshModule()).parseCached(join(dir, "cache"), parser(), "/p/a.yaml", "hello");
    expect(calls).toEqual(["hello"]);
    expect(first).toEqual({ upper: "HELLO" });
    expect(second).toEqual(first);
  });

  it("parses again when the text changes", async () => {
    const { parseCached } = await freshModule();
    await parseCached(join(dir, "cache"), parser(), "/p/a.yaml", "hello");
    expect(await parseCached(join(dir, "cache"), parser(), "/p/a.yaml", "world")).toEqual({ upper: "WORLD" });
    expect(calls).toEqual(["hello", "world"]);
  });

  it("parses again when the code that parses changes", async () => {
    await (await freshModule()).parseCached(join(dir, "cache"), parser(), "/p/a.yaml", "hello");
    writeFileSync(join(dir, "code.js"), "v2");
    await (await freshModule()).parseCached(join(dir, "cache"), parser(), "/p/a.yaml", "hello");
    expect(calls).toEqual(["hello", "hello"]);
  });

  it("keeps one slot per file: two files parsed in turn do not evict each other", async () => {
    const { parseCached } = await freshModule();
    for (const [file, text] of [["/p/a.yaml", "a"], ["/p/b.yaml", "b"], ["/p/a.yaml", "a"], ["/p/b.yaml", "b"]] as const) {
      await parseCached(join(dir, "cache"), parser(), file, text);
    }
    expect(calls).toEqual(["a", "b"]);
  });

  it("does not store a failed parse", async () => {
    const { parseCached } = await freshModule();
    await expect(parseCached(join(dir, "cache"), parser(), "/p/a.yaml", "bad")).rejects.toThrow("bad input");
    await expect(parseCached(join(dir, "cache"), parser(), "/p/a.yaml", "bad")).rejects.toThrow("bad input");
    expect(calls).toEqual(["bad", "bad"]);
  });

  it("still parses, every time, when the cache folder cannot be made", async () => {
    writeFileSync(join(dir, "a-file"), "");
    const unusable = join(dir, "a-file", "cache"); // below a file: no user, root included, can make it
    const { parseCached } = await freshModule();
    expect(await parseCached(unusable, parser(), "/p/a.yaml", "hello")).toEqual({ upper: "HELLO" });
    expect(await parseCached(unusable, parser(), "/p/a.yaml", "hello")).toEqual({ upper: "HELLO" });
    expect(calls).toEqual(["hello", "hello"]);
  });
});
