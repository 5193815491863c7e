// The `cache:` key of a pipeline config, defined once: any app's zod schema embeds it, and settings.ts infers
// its types from it (zod is loaded only when a config is parsed).
import { zod } from "../packages.ts";
import { BACKENDS, backendOf, REMOTE_FORMS, schemeOf } from "./backends.ts";
import { parseSize } from "./settings.ts";

const { z } = zod();

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
      .superRefine((url, ctx) => {
        const scheme = schemeOf(url);
        const backend = backendOf(url);
        if (!backend) ctx.addIssue({ code: "custom", message: `must be ${REMOTE_FORMS}${scheme ? ` (no remote backend for ${scheme}//)` : ""}` });
        else if (!backend.pattern.test(url)) ctx.addIssue({ code: "custom", message: `must be ${backend.form}` });
      })
      // For editors reading pipeline.schema.json: any backend's form (the messages above say which one was meant).
      .meta({ pattern: Object.values(BACKENDS).map((b) => `(?:${b.pattern.source})`).join("|") })
      .optional()
      .describe(
        `A shared remote cache: ${REMOTE_FORMS} (a shared folder or NFS mount). S3 credentials come from the AWS chain (environment, ~/.aws), never from here.`,
      ),
    // z.url() alone takes "localhost:9000" for a URL of scheme "localhost:", which the SDK fails on later.
    endpoint: z
      .url({ protocol: /^https?$/, message: "must be an http:// or https:// URL, e.g. http://localhost:9000" })
      .optional()
      .describe("For S3-compatible stores (MinIO, Cloudflare R2, ...): their endpoint URL, http:// or https://."),
    region: z.string().min(1).optional().describe("The bucket's region (default: AWS_REGION, then us-east-1)."),
    push: z.boolean().default(true).describe("false: this clone reads the remote but never writes it (let only trusted CI push)."),
  })
  .strict()
  .superRefine((cache, ctx) => {
    const backend = cache.remote === undefined ? undefined : backendOf(cache.remote);
    if (!backend) return;
    const takers = (key: string) => Object.entries(BACKENDS).flatMap(([scheme, b]) => ((b.keys as readonly string[]).includes(key) ? [`${scheme}//`] : []));
    for (const key of ["endpoint", "region"] as const) {
      if (cache[key] === undefined || backend.keys.includes(key)) continue;
      ctx.addIssue({ code: "custom", path: [key], message: `only ${takers(key).join(", ")} remotes take it, and cache.remote is ${cache.remote}: remove it` });
    }
  });
