// Writes data/conversions.jsonl: a synthetic unit-conversion chat task that a tiny model learns in a
// few hundred iterations (the answer's shape is fixed, so the loss falls fast and visibly).
// Run: npx tsx data/generate.ts
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { uniformInt } from "pure-rand/distribution/uniformInt";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";

const CONVERSIONS = [
  { from: "km", to: "m", factor: 1000 },
  { from: "m", to: "cm", factor: 100 },
  { from: "kg", to: "g", factor: 1000 },
  { from: "hours", to: "minutes", factor: 60 },
  { from: "minutes", to: "seconds", factor: 60 },
  { from: "L", to: "mL", factor: 1000 },
] as const;

const ASKS = ["Convert {n} {from} to {to}.", "How many {to} are in {n} {from}?", "{n} {from} in {to}?"];
const SYSTEM = "You are a precise unit converter. Answer in one line.";

const rng = xoroshiro128plus(42);
const pick = <T>(items: readonly T[]): T => items[uniformInt(rng, 0, items.length - 1)]!;

const lines: string[] = [];
for (let i = 0; i < 400; i++) {
  const c = pick(CONVERSIONS);
  const n = uniformInt(rng, 1, 99);
  const ask = pick(ASKS).replace("{n}", String(n)).replace("{from}", c.from).replace("{to}", c.to);
  const messages = [
    ...(i % 3 === 0 ? [{ role: "system", content: SYSTEM }] : []),
    { role: "user", content: ask },
    { role: "assistant", content: `${n} ${c.from} = ${n * c.factor} ${c.to}.` },
  ];
  lines.push(JSON.stringify({ messages }));
}
writeFileSync(join(import.meta.dirname, "conversions.jsonl"), lines.join("\n") + "\n");
console.log(`wrote ${lines.length} examples to data/conversions.jsonl`);
