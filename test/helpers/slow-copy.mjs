// `node --import ./slow-copy.mjs …`: every copyFile (the build cache's restore) first writes SLOW_COPY_MARK and
// sleeps 30 s, so a test can kill -9 a restore half way through.
import fs from "node:fs";
import { writeFileSync } from "node:fs";
import { syncBuiltinESMExports } from "node:module";

const real = fs.promises.copyFile;
fs.promises.copyFile = async (...args) => {
  const result = await real(...args);
  writeFileSync(process.env.SLOW_COPY_MARK, "copying");
  await new Promise((r) => setTimeout(r, 30_000));
  return result;
};
syncBuiltinESMExports();
