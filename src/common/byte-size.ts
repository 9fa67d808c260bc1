/** "4MiB", "512KiB", "1024" → bytes; undefined if malformed. */
export function parseByteSize(raw: string): number | undefined {
  const m = /^(\d+)\s*(B|KiB|MiB|GiB)?$/.exec(raw.trim());
  if (!m) return undefined;
  const mult = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 }[m[2] ?? 'B']!;
  return Number(m[1]) * mult;
}
