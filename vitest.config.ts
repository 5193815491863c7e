import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    // Engine tests drive the CLI as a subprocess; end-to-end tests train real models on the CPU.
    testTimeout: 600_000,
    hookTimeout: 600_000,
    // Two cores: run test files one or two at a time so the real-tool tests are not starved.
    maxWorkers: 2,
    // A worker runs file after file in one process: each file in a fresh one cost ~180 core-seconds of the suite's
    // ~1840 (vitest, the helpers and the modules they import, loaded 64 times over). So a test file restores what it
    // changes (process.env, PATH) and keeps no state at module level that another file could see.
    isolate: false,
  },
});
