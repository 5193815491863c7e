// The bench graph's config: its own module, so a warm run loads zod only when pipeline.yaml changed.
import type { output } from "zod";
import { zod } from "../engine/packages.ts";
import { cacheSchema } from "../engine/caching/schema.ts";

const { z } = zod();

export const bigSchema = z
  .object({
    inputs: z.string().default("input/*.bin"),
    parts: z.number().int().min(1).default(4),
    report: z.object({ title: z.string().min(1) }).strict(),
    tools: z.object({ fake: z.string() }).strict(),
    /** Only the cache benchmark sets it: the others measure the engine without a build cache. */
    cache: cacheSchema.optional(),
  })
  .strict();
export type BigConfig = output<typeof bigSchema>;
