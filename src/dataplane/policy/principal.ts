/**
 * A peer's SPIFFE id as Istio's policies read it, for both the ztunnel's L4 engine and the waypoint's L7 one.
 * Invariant: the cache never holds more than PRINCIPAL_CACHE_MAX_ENTRIES ids (it is emptied when full).
 */

export interface ParsedPrincipal {
  /** The id without "spiffe://": "td/ns/x/sa/y". */
  principal: string;
  namespace?: string;
  /** "ns/sa" */
  serviceAccount?: string;
}

const cache = new Map<string, ParsedPrincipal>();
const PRINCIPAL_CACHE_MAX_ENTRIES = 10_000;

/**
 * "spiffe://td/ns/x/sa/y" (or without "spiffe://") → principal "td/ns/x/sa/y", namespace "x", service account
 * "x/y". An id that is not of that shape still has a principal but no namespace or service account.
 */
export function parsePrincipal(id: string): ParsedPrincipal {
  let parsed = cache.get(id);
  if (parsed) return parsed;
  const principal = id.startsWith('spiffe://') ? id.slice('spiffe://'.length) : id;
  parsed = { principal };
  const seg = principal.split('/');
  if (seg.length === 5 && seg[0] && seg[1] === 'ns' && seg[2] && seg[3] === 'sa' && seg[4]) {
    parsed.namespace = seg[2];
    parsed.serviceAccount = `${seg[2]}/${seg[4]}`;
  }
  if (cache.size >= PRINCIPAL_CACHE_MAX_ENTRIES) cache.clear();
  cache.set(id, parsed);
  return parsed;
}
