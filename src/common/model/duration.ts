/**
 * Durations as Istio and Gateway API users write them: one or more decimal numbers, each with a unit
 * ("300ms", "1.5s", "1m", "1h30m"), as Go's time.ParseDuration reads them. "0" alone is zero.
 */

const UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  'µs': 1e-3, // U+00B5 micro sign
  'μs': 1e-3, // U+03BC Greek mu
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

const PART_RE = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;

/** Milliseconds in `s`, or undefined when `s` is not a duration. Negative durations are not accepted. */
export function parseDurationMs(s: string): number | undefined {
  if (s === '0') return 0;
  if (s === '') return undefined;
  let total = 0;
  PART_RE.lastIndex = 0;
  while (PART_RE.lastIndex < s.length) {
    const m = PART_RE.exec(s);
    if (!m) return undefined;
    total += Number(m[1]) * (UNIT_MS[m[2] ?? ''] ?? Number.NaN);
  }
  // Round away binary noise ("1.1s" is 1100 ms, not 1100.0000000000002); keeps nanosecond precision.
  return Number.isFinite(total) ? Math.round(total * 1e6) / 1e6 : undefined;
}

/**
 * Gateway API (GEP-2257) durations are stricter: one to four parts of one to five digits with
 * h, m, s or ms, no fractions ("1h30m", "500ms").
 */
export function isGatewayDuration(s: string): boolean {
  return /^([0-9]{1,5}(h|m|s|ms)){1,4}$/.test(s);
}
