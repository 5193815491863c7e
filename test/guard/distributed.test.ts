// The pure parts of distributed training: batch and memory verdicts, hosts and hostfiles as ranks, the
// answers of the host probe, mlx.launch's failure lines, and the rank launcher run by a real sh.
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { batchVerdicts, hostMemoryVerdict } from "../../guard/distributed.ts";
import { failedRanks, launchCommand, parseProbe, remoteHosts, resolveCluster, sshScript } from "../../stages/lib/distributed/cluster.ts";
import { UserError } from "../../engine/types.ts";

const GiB = 2 ** 30;
const base = { port: 32323, watchdog: 600 };

describe("distributed guards", () => {
  it("the global batch must divide by the world size, and the fix names the nearest that do", () => {
    expect(batchVerdicts(8, 2)[0]!.level).toBe("ok");
    const [bad] = batchVerdicts(4, 3);
    expect(bad).toMatchObject({ level: "error", code: "distributed.batch" });
    expect(bad!.fix).toMatch(/3 or 6/);
  });

  it("each host's memory is checked against one rank's estimate as that OS lets mlx use it", () => {
    // macOS lets mlx use about 2/3 of a 16 GB Mac.
    expect(hostMemoryVerdict("mini", "Darwin", 16 * GiB, undefined, 10 * GiB).level).toBe("ok");
    expect(hostMemoryVerdict("mini", "Darwin", 16 * GiB, undefined, 11 * GiB).level).toBe("error");
    // Linux: what is available, not the total.
    expect(hostMemoryVerdict("box", "Linux", 64 * GiB, 4 * GiB, 5 * GiB).level).toBe("error");
    expect(hostMemoryVerdict("odd", "Plan9", undefined, undefined, GiB).level).toBe("warn");
  });
});

describe("hosts", () => {
  it("rank 0 always runs here; IP hosts are their own ring address; 127.0.0.1 stays local", () => {
    const c = resolveCluster({ ...base, hosts: ["10.0.0.1", "127.0.0.1", { ssh: "mini", ip: "10.0.0.2" }, "mini.local"] }, "/p");
    expect(c.ranks.map((r) => [r.ssh, r.ips])).toEqual([
      ["127.0.0.1", ["10.0.0.1"]],
      ["127.0.0.1", ["127.0.0.1"]],
      ["mini", ["10.0.0.2"]],
      ["mini.local", []],
    ]);
    expect(c.backend).toBe("ring");
    expect([...remoteHosts(c).keys()]).toEqual(["mini", "mini.local"]);
  });

  it("reads mlx.launch hostfiles in both forms, and names the file when one is wrong", () => {
    const dir = mkdtempSync(join(tmpdir(), "hostfile-"));
    writeFileSync(join(dir, "list.json"), JSON.stringify([{ ssh: "a", ips: ["10.0.0.1"] }, { ssh: "b", ips: ["10.0.0.2"] }]));
    writeFileSync(join(dir, "full.json"), JSON.stringify({ backend: "jaccl", envs: ["X=1"], hosts: [{ ssh: "a", ips: ["10.0.0.1"], rdma: [null, "rdma_en3"] }, { ssh: "b", ips: [], rdma: ["rdma_en3", null] }] }));
    writeFileSync(join(dir, "bad.json"), JSON.stringify({ hosts: [{ name: "a" }] }));
    expect(resolveCluster({ ...base, hostfile: "list.json" }, dir).ranks.map((r) => r.ssh)).toEqual(["127.0.0.1", "b"]);
    const full = resolveCluster({ ...base, hostfile: "full.json" }, dir);
    expect(full).toMatchObject({ backend: "jaccl", envs: ["X=1"] });
    expect(full.ranks[1]!.rdma).toEqual(["rdma_en3", null]);
    expect(() => resolveCluster({ ...base, hostfile: "bad.json" }, dir)).toThrow(/bad\.json: "hosts" must be/);
    expect(() => resolveCluster({ ...base, hostfile: "none.json" }, dir)).toThrow(UserError);
  });
});

describe("talking to hosts", () => {
  it("reads a host's probe answers", () => {
    const facts = parseProbe("os=Darwin\ntotal=17179869184\nrsync=yes\nvenv=/Users/a/.cache/x\nversions=0.32.4 0.32.2\n");
    expect(facts).toEqual({ os: "Darwin", totalBytes: 16 * GiB, rsync: true, versions: { mlx: "0.32.4", mlx_lm: "0.32.2" }, venv: "/Users/a/.cache/x" });
    expect(parseProbe("os=Linux\ntotal=1024\navailable=512\nvenv=/x\n")).toMatchObject({ rsync: false, availableBytes: 512 });
    expect(parseProbe("os=Linux\n").versions).toBeUndefined();
  });

  it("an ssh that exits before reading its script is a failed answer, not a crash on the broken pipe", async () => {
    // Found by CI: ssh to an unreachable host exited first, and the unhandled EPIPE killed the build.
    const bin = mkdtempSync(join(tmpdir(), "ssh-"));
    writeFileSync(join(bin, "ssh"), "#!/bin/sh\necho 'ssh: connect to host nowhere port 22: No route to host' >&2\nexit 255\n");
    chmodSync(join(bin, "ssh"), 0o755);
    const path = process.env.PATH;
    process.env.PATH = bin;
    try {
      // More than a pipe's buffer, so the write cannot finish before ssh exits.
      const answer = await sshScript(resolveCluster({ ...base, hosts: ["127.0.0.1"] }, bin), "nowhere", "#".repeat(1 << 20));
      expect(answer).toMatchObject({ code: 255, stderr: expect.stringMatching(/No route to host/) });
    } finally {
      process.env.PATH = path;
    }
  });

  it("finds the ranks mlx.launch reports as failed (it exits 0 itself)", () => {
    expect(failedRanks(["[WARN] Node with rank 1 exited with code -9 ", "[WARN] Node with rank 0 was killed", "Node with rank 2 completed"])).toEqual(["rank 1 exited with code -9", "rank 0 was killed"]);
  });

  it("the rank launcher runs the environment's Python from each host's own cache, its variables pointed into it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "launcher-"));
    const venv = join("/home/here/.cache/mlx-lora-pipeline/venvs", "mlx-abc");
    const info = { venv, python: join(venv, "bin/python"), versions: {}, extra: {}, env: { LD_PRELOAD: `${venv}/shim/lib it's.so` } };
    const launch = await launchCommand(resolveCluster({ ...base, hosts: ["127.0.0.1", "127.0.0.1"] }, dir), info, dir, { A: "1" }, "/tool/stages/py/mlx_launch.py", ["script.py", "-c", "x y"]);
    const at = launch.args.indexOf("/bin/sh");
    expect(launch.command).toBe(info.python);
    expect(launch.args[0]).toBe("/tool/stages/py/mlx_launch.py");
    expect(launch.args.slice(1, at)).toEqual(["--hostfile", join(dir, "hosts.json"), "--backend", "ring", "--starting-port", "32323", "--env", "A=1", "--"]);
    // Run the launcher with `echo` standing in for exec'ing Python: what it would run, on a host whose cache is elsewhere.
    const script = launch.args[at + 2]!.replace('exec "$V/bin/python" "$@"', 'echo "$V/bin/python|$LD_PRELOAD|$*"');
    const out = execFileSync("/bin/sh", ["-c", script, "sh", ...launch.args.slice(at + 4)], { env: { PATH: process.env.PATH, MLX_PIPELINE_CACHE: "/elsewhere" }, encoding: "utf8" });
    expect(out.trim()).toBe("/elsewhere/venvs/mlx-abc/bin/python|/elsewhere/venvs/mlx-abc/shim/lib it's.so|script.py -c x y");
  });
});
