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
  },
});
