/**
 * Exponential backoff with jitter, bounded: the n-th delay (from 0) is drawn from [base/2, base] where
 * base = min(maxMs, initialMs * 2^n). Many controllers retrying after one API server restart spread out instead
 * of arriving together, and no delay exceeds maxMs.
 */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** Uniform in [0, 1); Math.random by default (tests pass their own). */
  random?: () => number;
}

export const DEFAULT_KUBE_BACKOFF_INITIAL_MS = 500;
export const DEFAULT_KUBE_BACKOFF_MAX_MS = 30_000;

export class Backoff {
  #attempt = 0;
  readonly #opts: Required<BackoffOptions>;

  constructor(opts: BackoffOptions) {
    if (!(opts.initialMs > 0) || !(opts.maxMs >= opts.initialMs)) throw new RangeError(`BUG: backoff needs 0 < initialMs <= maxMs (got ${opts.initialMs}, ${opts.maxMs})`);
    this.#opts = { random: Math.random, ...opts };
  }

  /** Failures since the last reset(). */
  get attempts(): number {
    return this.#attempt;
  }

  next(): number {
    const base = Math.min(this.#opts.maxMs, this.#opts.initialMs * 2 ** Math.min(this.#attempt, 30));
    this.#attempt++;
    return Math.round(base / 2 + (base / 2) * this.#opts.random());
  }

  reset(): void {
    this.#attempt = 0;
  }
}

/** A delay of about `ms`, spread by ±10% so that periodic retries of many controllers do not line up. */
export function jittered(ms: number, random: () => number = Math.random): number {
  return Math.round(ms * (0.9 + 0.2 * random()));
}
