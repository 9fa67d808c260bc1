/**
 * Backend and endpoint choice (DESIGN §6 "backend choice"): which weighted backend of a route, then which endpoint of
 * that backend's (service, subset). Randomness is injected so tests are deterministic.
 *
 * Load-balancing kinds (DestinationRule `loadBalancer.simple`, as Envoy implements them for equal weights):
 *  - ROUND_ROBIN (default): each endpoint in turn. The starting point is random (Envoy seeds it so that many proxies
 *    do not all start on the first endpoint), and a change of the endpoint list does not restart it: the turn goes on
 *    after the endpoint picked last, or, if that one left, from the one that took its place.
 *  - LEAST_REQUEST: power of two choices: two endpoints drawn at random (with replacement), the one with fewer active
 *    requests wins, the first on a tie (Envoy's default choice_count 2).
 *  - RANDOM: uniform.
 * The caller passes the endpoints that may serve (ready, not ejected); none → undefined (the caller answers 503 UH).
 */
import type { LoadBalancerKind } from '../../common/xds/waypoint-resources.js';

export type Random = () => number;

/** An index in [0, n) from random() in [0, 1), clamped should random() ever return 1. */
function randomIndex(random: Random, n: number): number {
  return Math.min(n - 1, Math.floor(random() * n));
}

/**
 * One of `backends` with probability weight / total weight; a weight of 0 (or below, or not a number) is never
 * chosen; all 0 → undefined (the caller answers 500, as Gateway API says for a rule whose backends all weigh 0).
 */
export function pickWeighted<B extends { weight: number }>(backends: readonly B[], random: Random): B | undefined {
  let total = 0;
  for (const b of backends) if (b.weight > 0) total += b.weight;
  if (!(total > 0)) return undefined;
  const r = random() * total;
  let cumulative = 0;
  let last: B | undefined;
  for (const b of backends) {
    if (!(b.weight > 0)) continue;
    cumulative += b.weight;
    last = b;
    if (r < cumulative) return b;
  }
  return last;
}

/**
 * Picks endpoints of one (service, subset) with one load-balancing kind.
 * Invariants: `lastKey`/`lastIndex` name the endpoint round robin picked last and where it stood in the list it was
 * picked from; the balancer holds no endpoint objects, only that key, so it never keeps a departed endpoint alive.
 */
export class EndpointBalancer<T extends { key: string }> {
  private lastKey: string | undefined;
  private lastIndex = -1;

  constructor(readonly kind: LoadBalancerKind = 'ROUND_ROBIN', private readonly random: Random = Math.random) {}

  /** The endpoint for the next request; `active(e)` is e's number of requests in flight (LEAST_REQUEST). */
  pick(endpoints: readonly T[], active: (e: T) => number): T | undefined {
    const n = endpoints.length;
    if (n === 0) return undefined;
    if (n === 1) return this.remember(endpoints, 0);
    switch (this.kind) {
      case 'RANDOM':
        return endpoints[randomIndex(this.random, n)];
      case 'LEAST_REQUEST': {
        const a = endpoints[randomIndex(this.random, n)]!;
        const b = endpoints[randomIndex(this.random, n)]!;
        return active(b) < active(a) ? b : a;
      }
      default:
        return this.remember(endpoints, this.nextRoundRobin(endpoints));
    }
  }

  private nextRoundRobin(endpoints: readonly T[]): number {
    const n = endpoints.length;
    if (this.lastKey === undefined) return randomIndex(this.random, n);
    if (endpoints[this.lastIndex]?.key === this.lastKey) return (this.lastIndex + 1) % n;
    const moved = endpoints.findIndex((e) => e.key === this.lastKey);
    if (moved >= 0) return (moved + 1) % n;
    // The endpoint picked last left: the one now at its place is the one that followed it.
    return Math.max(0, this.lastIndex) % n;
  }

  private remember(endpoints: readonly T[], i: number): T {
    const e = endpoints[i]!;
    this.lastKey = e.key;
    this.lastIndex = i;
    return e;
  }
}
