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
    const first = await (await freshModule()).parseCached(join(dir, "cache"), parser(), "hello");
    const second = await (await freshModule()).parseCached(join(dir, "cache"), parser(), "hello");
    expect(calls).toEqual(["hello"]);
    expect(first).toEqual({ upper: "HELLO" });
    expect(second).toEqual(first);
  });

  it("parses again when the text changes", async () => {
    const { parseCached } = await freshModule();
    await parseCached(join(dir, "cache"), parser(), "hello");
    expect(await parseCached(join(dir, "cache"), parser(), "world")).toEqual({ upper: "WORLD" });
    expect(calls).toEqual(["hello", "world"]);
  });

  it("parses again when the code that parses changes", async () => {
    await (await freshModule()).parseCached(join(dir, "cache"), parser(), "hello");
    writeFileSync(join(dir, "code.js"), "v2");
    await (await freshModule()).parseCached(join(dir, "cache"), parser(), "hello");
    expect(calls).toEqual(["hello", "hello"]);
  });

  it("keeps the last 8 parses: files read in turn do not evict each other, older ones go", async () => {
    const { parseCached } = await freshModule();
    for (const text of ["a", "b", "a", "b"]) await parseCached(join(dir, "cache"), parser(), text);
    expect(calls).toEqual(["a", "b"]);
    for (const text of ["c", "d", "e", "f", "g", "h", "i"]) await parseCached(join(dir, "cache"), parser(), text);
    const fresh = await freshModule(); // reads what was written, as the next run would
    await fresh.parseCached(join(dir, "cache"), parser(), "b");
    await fresh.parseCached(join(dir, "cache"), parser(), "a");
    expect(calls.slice(9)).toEqual(["a"]);
  });

  it("keeps parses finished together in one run", async () => {
    const { parseCached } = await freshModule();
    await Promise.all(["a", "b", "c"].map((t) => parseCached(join(dir, "cache"), parser(), t)));
    const fresh = await freshModule();
    await Promise.all(["a", "b", "c"].map((t) => fresh.parseCached(join(dir, "cache"), parser(), t)));
    expect(calls.sort()).toEqual(["a", "b", "c"]);
  });

  it("does not store a failed parse", async () => {
    const { parseCached } = await freshModule();
    await expect(parseCached(join(dir, "cache"), parser(), "bad")).rejects.toThrow("bad input");
    await expect(parseCached(join(dir, "cache"), parser(), "bad")).rejects.toThrow("bad input");
    expect(calls).toEqual(["bad", "bad"]);
  });

  it("still parses, in every run, when the cache folder cannot be made", async () => {
    writeFileSync(join(dir, "a-file"), "");
    const unusable = join(dir, "a-file", "cache"); // below a file: no user, root included, can make it
    expect(await (await freshModule()).parseCached(unusable, parser(), "hello")).toEqual({ upper: "HELLO" });
    expect(await (await freshModule()).parseCached(unusable, parser(), "hello")).toEqual({ upper: "HELLO" });
    expect(calls).toEqual(["hello", "hello"]);
  });
});
