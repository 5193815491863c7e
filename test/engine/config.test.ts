// Bad config files give a message naming the file, line, key and value, and exit 2.
import { describe, expect, it } from "vitest";
import { BASE_CONFIG, FakeProject } from "../helpers/fake-project.ts";

const cases: [string, string, RegExp][] = [
  ["a wrong type", BASE_CONFIG.replace("title: Weekly", "title: 12"), /pipeline\.yaml:3: report\.title: .*expected string.* \(got 12\)/],
  ["a value outside an enum", `${BASE_CONFIG}lower:\n  mode: sideways\n`, /pipeline\.yaml:7: lower\.mode: .*"lower".*"upper".* \(got "sideways"\)/],
  ["an unknown key", `${BASE_CONFIG}lowr:\n  mode: upper\n`, /pipeline\.yaml:\d+: \(top level\): Unrecognized key.*"lowr"/],
  ["a missing key", `tools:\n  fake: "1"\n`, /pipeline\.yaml:1: report: .*expected object.* \(got nothing\)/],
  ["broken YAML", "report:\n  title: [unclosed\n", /pipeline\.yaml:\d+:\d+: .*/],
];

describe.concurrent("config errors", () => {
  for (const [what, text, message] of cases) {
    it(`${what} exits 2 with a clear message`, async () => {
      const p = new FakeProject(text);
      const result = await p.run(["report"]);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(message);
      expect(p.calls()).toEqual([]);
    });
  }

  it("a missing config file and an unknown node exit 2", async () => {
    const p = new FakeProject();
    expect((await p.run(["report", "--config", "nope.yaml"])).stderr).toMatch(/nope\.yaml not found/);
    const unknown = await p.run(["reprot"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/Unknown node "reprot". Nodes: source, lower, report/);
    expect((await p.run(["report", "--bogus"])).code).toBe(2);
  });

  it("graph prints Mermaid", async () => {
    const p = new FakeProject();
    const result = await p.run(["graph"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("flowchart LR");
    expect(result.stdout).toContain("source --> lower");
    expect(result.stdout).toContain("lower --> report");
  });
});
