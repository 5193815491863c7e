// The bench graph's config: its own module, so a warm run loads zod only when pipeline.yaml changed.
import { z } from "zod";

export const bigSchema = z
  .object({
    inputs: z.string().default("input/*.bin"),
    parts: z.number().int().min(1).default(4),
    report: z.object({ title: z.string().min(1) }).strict(),
    tools: z.object({ fake: z.string() }).strict(),
  })
  .strict();
export type BigConfig = z.output<typeof bigSchema>;
