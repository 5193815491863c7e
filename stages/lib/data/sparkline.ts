// A one-line chart of a series in block characters (▁▂▃▄▅▆▇█), for the end-of-training note.
const BLOCKS = "▁▂▃▄▅▆▇█";

/** Each value as a block scaled between the series' min and max (a flat series is a flat line). */
export function sparkline(values: readonly number[]): string {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return "";
  const min = Math.min(...finite);
  const span = Math.max(...finite) - min;
  return values
    .map((v) => (Number.isFinite(v) ? BLOCKS[span > 0 ? Math.round(((v - min) / span) * (BLOCKS.length - 1)) : 0] : " "))
    .join("");
}
