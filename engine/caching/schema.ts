// The `cache:` key of a pipeline config, for any app's zod schema (zod is loaded only when a config is parsed).
import { z } from "zod";
import { parseSize } from "./settings.ts";

export const cacheSchema = z
  .object({
    dir: z.string().min(1).optional().describe("The local build cache (default: per user, shared by every clone and project on the machine)."),
    max_size: z
      .string()
      .refine((s) => parseSize(s) !== undefined, { message: "not a size: write it like 50GB, 200 GiB or 512MB" })
      .optional()
      .describe("What `gc` keeps besides what pipeline.lock references, most recently used first (default: a tenth of the disk)."),
    remote: z
      .string()
      .regex(/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/, "must be s3://bucket/prefix")
      .optional()
      .describe("A shared remote cache, s3://bucket/prefix. Credentials come from the AWS chain (environment, ~/.aws), never from here."),
    // z.url() alone takes "localhost:9000" for a URL of scheme "localhost:", which the SDK fails on later.
    endpoint: z
      .url({ protocol: /^https?$/, message: "must be an http:// or https:// URL, e.g. http://localhost:9000" })
      .optional()
      .describe("For S3-compatible stores (MinIO, Cloudflare R2, ...): their endpoint URL, http:// or https://."),
    region: z.string().min(1).optional().describe("The bucket's region (default: AWS_REGION, then us-east-1)."),
    push: z.boolean().default(true).describe("false: this clone reads the remote but never writes it (let only trusted CI push)."),
  })
  .strict();
