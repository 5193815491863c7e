// A hung tool becomes a failure: execLogged kills its process group at the time limit and says so. A cancelled
// tool gets SIGTERM, and SIGKILL if it hangs in its handler.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { alive } from "../helpers/cli.ts";
import { assertSuccess } from "../../engine/types.ts";
import { execLogged } from "../../engine/exec.ts";

describe("exec time limit", () => {
  it("kills a command that runs past timeoutMs, with its children, and reports it as hung", async () => {
    const log = join(mkdtempSync(join(tmpdir(), "exec-timeout-")), "tool.log");
    const started = Date.now();
    // A child that ignores SIGTERM, under a shell: SIGKILL to the group ends both.
    const result = await execLogged("sh", ["-c", "trap '' TERM; echo started; sleep 30 & wait"], log, new AbortController().signal, { timeoutMs: 500 });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(result.timedOut).toBe(true);
    expect(result.exitCode).toBeNull();
    expect(result.tail).toContain("started");
    expect(() => assertSuccess(result, "the tool")).toThrow(/the tool hung and was killed at its time limit/);
    expect(readFileSync(log, "utf8")).toMatch(/timed out after 500 ms/);
  });

  it("leaves a command that finishes in time alone", async () => {
    const log = join(mkdtempSync(join(tmpdir(), "exec-timeout-")), "tool.log");
    const result = await execLogged("sh", ["-c", "echo done"], log, new AbortController().signal, { timeoutMs: 10_000 });
    expect(result.exitCode).toBe(0);
    expect(result.timedOut).toBeUndefined();
  });
});

describe("exec cancel", () => {
  it("a tool that hangs in its SIGTERM handler (as llama-server's shutdown can) is killed, and the cancel returns", async () => {
    const log = join(mkdtempSync(join(tmpdir(), "exec-cancel-")), "tool.log");
    const cancel = new AbortController();
    let pid = 0;
    const started = Date.now();
    // The handler's sleep starts after the group's SIGTERM, so only a SIGKILL ends it.
    const script = "trap 'echo terminating; sleep 60' TERM; echo $$; sleep 60 & wait; sleep 60";
    const result = await execLogged("sh", ["-c", script], log, new AbortController().signal, {
      signal: cancel.signal,
      onLine: (line) => {
        if (/^\d+$/.test(line)) ((pid = Number(line)), cancel.abort());
      },
    });
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(result.tail).toContain("terminating");
    expect(result.signal ?? result.exitCode).not.toBe(0);
    expect(pid).toBeGreaterThan(0);
    expect(alive(pid)).toBe(false);
  });
});
