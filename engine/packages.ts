// Packages a cold build loads on its way to running anything, and the S3 client a remote needs, required from
// their CommonJS builds. Under tsx (`npx tsx pipeline.ts`) every ES module is a round trip to tsx's loader
// thread, while CommonJS modules load in this thread. CPU per process, imported against required (median of 3,
// this 2-core machine): zod 150 ms against 70 (its ~95 modules), yaml 68 against 42, fast-glob 58 against 33,
// zx/core 36 against 19, the S3 client and its uploader 136 against 72.
//
// zod is only ever loaded here, so a process holds one zod. A stage that shapes its output with yaml or
// fast-glob imports it as usual: that import is how its code records the package's version (stages/index.ts).
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

export const zod = (): typeof import("zod") => require("zod") as typeof import("zod");
export const yaml = (): typeof import("yaml") => require("yaml") as typeof import("yaml");
export const fastGlob = (): typeof import("fast-glob") => require("fast-glob") as typeof import("fast-glob");
export const zxCore = (): typeof import("zx/core") => require("zx/core") as typeof import("zx/core");
export const awsS3 = (): typeof import("@aws-sdk/client-s3") => require("@aws-sdk/client-s3") as typeof import("@aws-sdk/client-s3");
export const awsUpload = (): typeof import("@aws-sdk/lib-storage") => require("@aws-sdk/lib-storage") as typeof import("@aws-sdk/lib-storage");
