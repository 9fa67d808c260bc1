/**
 * One token bucket per key (a credential): `burst` tokens at most, refilled at `perMinute` per minute; each
 * take() spends one.
 * Invariant: a key's stored tokens are in [0, burst] as of its `at`. A bucket refilled to full is the same as an
 * absent one, so full ones are dropped when a new key would pass maxKeys: the map holds at most maxKeys entries
 * plus the keys still refilling (credentials that spent tokens within the last burst/perMinute minutes).
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly perMs: number;

  constructor(
    private readonly burst: number,
    perMinute: number,
    private readonly now: () => number = Date.now,
    private readonly maxKeys = 4096,
  ) {
    this.perMs = perMinute / 60_000;
  }

  /** Spends one token of `key`: 0 if there was one, else the ms until there will be. */
  take(key: string): number {
    const now = this.now();
    const b = this.buckets.get(key);
    const tokens = b ? Math.min(this.burst, b.tokens + (now - b.at) * this.perMs) : this.burst;
    if (tokens < 1) {
      if (b) {
        b.tokens = tokens;
        b.at = now;
      }
      return Math.ceil((1 - tokens) / this.perMs);
    }
    if (!b && this.buckets.size >= this.maxKeys) this.prune(now);
    this.buckets.set(key, { tokens: tokens - 1, at: now });
    return 0;
  }

  private prune(now: number): void {
    for (const [key, b] of this.buckets) {
      if (b.tokens + (now - b.at) * this.perMs >= this.burst) this.buckets.delete(key);
    }
  }
}
