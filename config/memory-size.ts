// `memory.total` and `--memory`: a size the user writes, read the way RAM is sold.
import { UserError } from "../engine/types.ts";

const UNITS: Readonly<Record<string, number>> = { "": 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/**
 * "16GB" → 16 GiB. Units are binary whether or not they say "i": RAM is sold in binary units,
 * so a "16 GB" Mac has 16 GiB, and that is what a user typing --memory 16GB means.
 */
export function parseMemorySize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(text);
  const unit = UNITS[match?.[2]?.toUpperCase() ?? ""];
  if (!match || unit === undefined) {
    throw new UserError(`"${text}" is not a memory size: write it like 16GB, 24 GiB or 512MB.`, 2);
  }
  return Number(match[1]) * unit;
}
