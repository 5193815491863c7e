// Reading jsonl training data (stages/lib/dataset.ts): the three forms mlx-lm reads, every bad line reported
// with its file and line and what was wrong, one form across all files, and the lines written back for mlx-lm.
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { DataErrors, exampleParser, readExamples, toJsonl, type Example } from "../../stages/lib/data/dataset.ts";

/** A project folder with these data files (relative path → lines, each a value to stringify or a raw string). */
function project(files: Record<string, (string | object)[]>): { root: string; paths: string[] } {
  const root = mkdtempSync(join(tmpdir(), "dataset-"));
  const paths = Object.entries(files).map(([name, lines]) => {
    const path = join(root, name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l))).join("\n") + "\n");
    return path;
  });
  return { root, paths };
}

/** The problems readExamples reports for these files (fails when it reports none). */
async function problems(files: Record<string, (string | object)[]>): Promise<readonly string[]> {
  const { root, paths } = project(files);
  const error = await readExamples(paths, root).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DataErrors);
  return (error as DataErrors).problems;
}

const chat = (q: string, a: string) => ({ messages: [{ role: "user", content: q }, { role: "assistant", content: a }] });

describe("exampleParser", () => {
  it("reads each of the three forms", async () => {
    const parse = await exampleParser();
    expect(parse(chat("q", "a"))).toEqual({ format: "messages", messages: chat("q", "a").messages });
    expect(parse({ prompt: "p", completion: "c" })).toEqual({ format: "completions", prompt: "p", completion: "c" });
    expect(parse({ text: "t" })).toEqual({ format: "text", text: "t" });
  });

  it("keeps tools, tool calls and unknown message keys; drops tools that are not a list", async () => {
    const parse = await exampleParser();
    const messages = [
      { role: "user", content: "weather?" },
      { role: "assistant", content: "", tool_calls: [{ id: "1" }], name: "bot" },
      { role: "tool", content: "sunny" },
      { role: "assistant", content: "Sunny." },
    ];
    expect(parse({ messages, tools: [{ type: "function" }] })).toEqual({ format: "messages", messages, tools: [{ type: "function" }] });
    expect(parse({ messages, tools: "none" })).toEqual({ format: "messages", messages });
  });

  it("says what is wrong with a line, naming the key", async () => {
    const parse = await exampleParser();
    const cases: [unknown, string][] = [
      [[1, 2], "expected a JSON object, got [1,2]"],
      [null, "expected a JSON object, got null"],
      [{ messages: [] }, `"messages" must be a non-empty list, got []`],
      [{ messages: "hi" }, `"messages" must be a non-empty list, got "hi"`],
      [{ messages: [{ role: "user", content: 3 }] }, "messages[0].content must be a string, got 3"],
      [{ messages: [{ role: "user", content: "q" }, { content: "a" }] }, "messages[1].role must be a string, got nothing"],
      [{ messages: ["hi"] }, `messages[0] must be a string object with role and content, got "hi"`],
      [{ messages: [{ role: "bot", content: "a" }] }, `role "bot" is not one of system, user, assistant, tool (messages[0])`],
      [{ messages: [{ role: "user", content: "q" }, { role: "assistant", content: "  " }] }, "messages[1] (assistant) has empty content"],
      [{ messages: [{ role: "system", content: "s" }, { role: "user", content: "q" }] }, "no assistant message: there is nothing to learn from this example"],
      [{ prompt: "p" }, `"completion" must be a non-empty string, got nothing`],
      [{ prompt: " ", completion: "c" }, `"prompt" must be a non-empty string, got " "`],
      [{ text: 5 }, `"text" must be a non-empty string, got 5`],
      [{ input: "x", output: "y" }, `a line needs "messages", "prompt" and "completion", or "text"; this one has "input", "output"`],
      [{}, `a line needs "messages", "prompt" and "completion", or "text"; this one has no keys`],
      [{ text: "x".repeat(100) }, "ok"],
      [{ messages: "y".repeat(100) }, `"messages" must be a non-empty list, got "${"y".repeat(36)}...`],
    ];
    for (const [raw, said] of cases) {
      const parsed = parse(raw);
      expect(typeof parsed === "string" ? parsed : "ok", JSON.stringify(raw)).toBe(said);
    }
  });
});

describe("readExamples", () => {
  it("reads every file in order, skips blank lines and says where each example is from", async () => {
    const { root, paths } = project({ "a.jsonl": [chat("1", "a"), "", "   ", chat("2", "b")], "b.jsonl": [chat("3", "c")] });
    const examples = await readExamples(paths, root);
    expect(examples.map((e) => e.origin)).toEqual(["a.jsonl:1", "a.jsonl:4", "b.jsonl:1"]);
    expect(examples[2]!.value).toEqual({ format: "messages", messages: chat("3", "c").messages });
  });

  it("a file outside the project is named by its path from the project", async () => {
    const { paths } = project({ "a.jsonl": ["{"] });
    const outside = mkdtempSync(join(tmpdir(), "elsewhere-"));
    const error = await readExamples(paths, outside).catch((e: DataErrors) => e);
    expect((error as DataErrors).problems[0]).toMatch(new RegExp(`^\\.\\./dataset-\\w+/a\\.jsonl:1: not valid JSON`));
  });

  it("lists every bad line of every file, with file, line and what was wrong", async () => {
    const said = await problems({
      "data/a.jsonl": [chat("q", "a"), "{not json", { messages: [{ role: "user", content: "q" }] }],
      "data/b.jsonl": [{ prompt: "p", completion: "c" }, { text: "" }],
    });
    expect(said).toEqual([
      expect.stringMatching(/^data\/a\.jsonl:2: not valid JSON \(.+\)$/),
      "data/a.jsonl:3: no assistant message: there is nothing to learn from this example",
      "data/b.jsonl:1: this line is in completions form but data/a.jsonl:1 is in messages form; mlx-lm reads one form per dataset",
      `data/b.jsonl:2: "text" must be a non-empty string, got ""`,
    ]);
  });

  it("a file with no example is a problem of its own; one whose lines are all bad is reported by its lines", async () => {
    expect(await problems({ "a.jsonl": [chat("q", "a")], "empty.jsonl": ["", "  "] })).toEqual(["empty.jsonl: the file holds no examples"]);
    expect(await problems({ "a.jsonl": [chat("q", "a")], "bad.jsonl": ["[]"] })).toEqual(["bad.jsonl:1: expected a JSON object, got []"]);
  });

  it("the error lists the first 20 problems and counts the rest", async () => {
    const { root, paths } = project({ "a.jsonl": Array.from({ length: 25 }, () => "nope") });
    const error = (await readExamples(paths, root).catch((e: unknown) => e)) as DataErrors;
    expect(error.problems).toHaveLength(25);
    const lines = error.message.split("\n");
    expect(lines[0]).toBe("25 problems in the training data:");
    expect(lines).toHaveLength(1 + 20 + 1);
    expect(lines[20]).toMatch(/^ {2}a\.jsonl:20: not valid JSON/);
    expect(lines.at(-1)).toBe("  ... and 5 more");
    expect(new DataErrors(["x.jsonl:1: bad"]).message).toBe("1 problem in the training data:\n  x.jsonl:1: bad");
  });

  it("a missing file is an error naming it", async () => {
    const root = mkdtempSync(join(tmpdir(), "dataset-"));
    await expect(readExamples([join(root, "gone.jsonl")], root)).rejects.toThrow(/gone\.jsonl/);
  });
});

describe("toJsonl", () => {
  it("writes only the keys mlx-lm reads, and reads back as the same example", async () => {
    const parse = await exampleParser();
    const examples: Example[] = [
      { format: "messages", messages: chat("q", "a").messages },
      { format: "messages", messages: chat("q", "a").messages, tools: [{ type: "function" }] },
      { format: "completions", prompt: "p", completion: "c" },
      { format: "text", text: "t" },
    ];
    expect(examples.map(toJsonl)).toEqual([
      JSON.stringify(chat("q", "a")),
      JSON.stringify({ ...chat("q", "a"), tools: [{ type: "function" }] }),
      '{"prompt":"p","completion":"c"}',
      '{"text":"t"}',
    ]);
    for (const e of examples) expect(parse(JSON.parse(toJsonl(e)))).toEqual(e);
  });
});
