/**
 * Envoy's response flags as Istio users read them in access logs and in the `response_flags` metric label: short
 * upper-case codes, comma-joined in Envoy's fixed order, "-" when none.
 */

/** Envoy's short flags in the order Envoy prints them (StreamInfo ResponseFlagUtils::toShortString). */
export const ENVOY_RESPONSE_FLAGS = [
  'LH', 'UH', 'UT', 'LR', 'UR', 'UF', 'UC', 'UO', 'NR', 'DI', 'FI', 'RL', 'UAEX', 'RLSE', 'DC', 'URX', 'SI', 'IH',
  'DPE', 'UMSDR', 'RFCF', 'NFCF', 'DT', 'UPE', 'NC', 'OM', 'DF', 'DO', 'DR',
] as const;

const ORDER = new Map<string, number>(ENVOY_RESPONSE_FLAGS.map((f, i) => [f, i]));
/** A flag Envoy does not define must still look like one: 1..8 upper-case letters. */
const FLAG_SHAPE = /^[A-Z]{1,8}$/;
/** At most this many flags are reported for one request (Envoy sets two or three at most). */
export const MAX_RESPONSE_FLAGS = 8;

/**
 * The flags of one request as Envoy prints them: known flags in Envoy's order, then other well-formed ones in
 * alphabetical order, duplicates and malformed entries dropped, at most MAX_RESPONSE_FLAGS; "-" when none. The same
 * set always gives the same string, so one set of flags is one metric series whatever order the proxy added them in.
 */
export function formatResponseFlags(flags: readonly string[]): string {
  if (flags.length === 0) return '-';
  if (flags.length === 1) return FLAG_SHAPE.test(flags[0]!) ? flags[0]! : '-';
  const uniq = [...new Set(flags.filter((f) => FLAG_SHAPE.test(f)))];
  uniq.sort((a, b) => (ORDER.get(a) ?? 1000) - (ORDER.get(b) ?? 1000) || (a < b ? -1 : a > b ? 1 : 0));
  return uniq.length ? uniq.slice(0, MAX_RESPONSE_FLAGS).join(',') : '-';
}
