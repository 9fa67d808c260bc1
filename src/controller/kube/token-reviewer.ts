/**
 * Kubernetes TokenReview (authentication.k8s.io/v1) of proxies' projected ServiceAccount tokens, with the audience
 * checked and the answers cached, so that a reconnect storm (every ztunnel after a controller restart, each opening
 * an xDS stream and CA calls) is one review per token rather than one per call.
 *
 * Invariants: the cache holds at most `maxEntries` answers, keyed by the token's SHA-256 (never the token); an
 * accepted token is cached for at most `cacheTtlMs` and never past the token's own expiry (its `exp` claim); a
 * refused one for `negativeTtlMs`; an API failure is not cached. At most `maxInFlight` distinct reviews run at once
 * (concurrent calls with the same token share one), and misses spend a token of a bucket of `reviewBurst` refilled at
 * `reviewsPerMinute`: past either, the call is refused with STRAIT_ERR_TOKEN_REVIEW (UNAVAILABLE; proxies retry).
 */
import { createHash } from 'node:crypto';
import { StraitError, errorMessage } from '../../common/errors.js';
import { CredentialError } from '../tokens.js';
import { TokenBuckets } from '../token-buckets.js';
import type { ReviewedUser } from './caller-authz.js';

export interface TokenReviewStatus {
  authenticated?: boolean;
  user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
  audiences?: string[];
  error?: string;
}

/** POSTs a TokenReview for `token` with `audiences` and returns its status. */
export type ReviewCall = (token: string, audiences: string[]) => Promise<TokenReviewStatus>;

export const DEFAULT_REVIEW_CACHE_TTL_MS = 60_000;
export const DEFAULT_REVIEW_NEGATIVE_TTL_MS = 5_000;
export const DEFAULT_REVIEW_CACHE_ENTRIES = 10_000;
export const DEFAULT_REVIEWS_IN_FLIGHT = 64;
export const DEFAULT_REVIEW_BURST = 500;
export const DEFAULT_REVIEWS_PER_MINUTE = 1200;
/** How long one TokenReview may take before the proxy is told to retry. */
export const DEFAULT_REVIEW_TIMEOUT_MS = 10_000;
/** A projected token is about 1 KiB; the authorization header is refused unread past this. */
export const MAX_KUBE_TOKEN_BYTES = 8192;

export interface TokenReviewerOptions {
  review: ReviewCall;
  audience: string;
  cacheTtlMs?: number;
  negativeTtlMs?: number;
  maxEntries?: number;
  maxInFlight?: number;
  reviewBurst?: number;
  reviewsPerMinute?: number;
  timeoutMs?: number;
  now?: () => number;
  /** Counts each review by result (accepted, refused, error, cached, busy) for strait_token_reviews_total. */
  onResult?: (result: 'accepted' | 'refused' | 'error' | 'cached' | 'busy') => void;
}

type Entry = { user: ReviewedUser; expiresAt: number } | { refused: CredentialError; expiresAt: number };

/** The `exp` claim (seconds) of a JWT, read without verifying it (the review verifies); undefined if absent. */
export function jwtExpiry(token: string): number | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof claims.exp === 'number' && Number.isFinite(claims.exp) ? claims.exp : undefined;
  } catch {
    return undefined;
  }
}

export class TokenReviewer {
  private readonly o: Required<Omit<TokenReviewerOptions, 'onResult'>> & Pick<TokenReviewerOptions, 'onResult'>;
  private readonly cache = new Map<string, Entry>();
  private readonly inFlight = new Map<string, Promise<ReviewedUser>>();
  private readonly bucket: TokenBuckets;

  constructor(o: TokenReviewerOptions) {
    this.o = {
      cacheTtlMs: DEFAULT_REVIEW_CACHE_TTL_MS, negativeTtlMs: DEFAULT_REVIEW_NEGATIVE_TTL_MS, maxEntries: DEFAULT_REVIEW_CACHE_ENTRIES,
      maxInFlight: DEFAULT_REVIEWS_IN_FLIGHT, reviewBurst: DEFAULT_REVIEW_BURST, reviewsPerMinute: DEFAULT_REVIEWS_PER_MINUTE,
      timeoutMs: DEFAULT_REVIEW_TIMEOUT_MS, now: Date.now, ...o,
    };
    this.bucket = new TokenBuckets(this.o.reviewBurst, this.o.reviewsPerMinute, this.o.now, 1);
  }

  get size(): number {
    return this.cache.size;
  }

  /** The token's user, from the cache or a TokenReview; throws CredentialError (refused) or STRAIT_ERR_TOKEN_REVIEW (retry). */
  async review(token: string): Promise<ReviewedUser> {
    const now = this.o.now();
    const key = createHash('sha256').update(token).digest('base64url');
    const hit = this.cache.get(key);
    if (hit && hit.expiresAt > now) {
      this.o.onResult?.('cached');
      if ('refused' in hit) throw hit.refused;
      return hit.user;
    }
    if (hit) this.cache.delete(key);
    const exp = jwtExpiry(token);
    if (exp !== undefined && exp * 1000 <= now) {
      this.o.onResult?.('refused');
      throw new CredentialError('expired_token', `the token expired at ${new Date(exp * 1000).toISOString()}: the proxy must re-read its projected token file (--token-file), which the kubelet rotates`);
    }
    const pending = this.inFlight.get(key);
    if (pending) return pending;
    if (this.inFlight.size >= this.o.maxInFlight || this.bucket.take('reviews') > 0) {
      this.o.onResult?.('busy');
      throw Object.assign(new StraitError('STRAIT_ERR_TOKEN_REVIEW', `the controller is reviewing too many tokens at once (${this.o.maxInFlight} at a time, ${this.o.reviewBurst} at once then ${this.o.reviewsPerMinute} per minute); retry shortly`), { reason: 'review_busy' });
    }
    const p = this.call(token).then(
      (user) => {
        this.remember(key, { user, expiresAt: Math.min(this.o.now() + this.o.cacheTtlMs, exp !== undefined ? exp * 1000 : Number.POSITIVE_INFINITY) });
        return user;
      },
      (err) => {
        if (err instanceof CredentialError) this.remember(key, { refused: err, expiresAt: this.o.now() + this.o.negativeTtlMs });
        throw err;
      },
    ).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, p);
    return p;
  }

  private remember(key: string, e: Entry): void {
    this.cache.delete(key);
    if (this.cache.size >= this.o.maxEntries) {
      const now = this.o.now();
      for (const [k, v] of this.cache) if (v.expiresAt <= now) this.cache.delete(k);
      // Still full: drop the oldest answers (Map order is insertion order).
      for (const k of this.cache.keys()) {
        if (this.cache.size < this.o.maxEntries) break;
        this.cache.delete(k);
      }
    }
    this.cache.set(key, e);
  }

  private async call(token: string): Promise<ReviewedUser> {
    let status: TokenReviewStatus;
    let timer: NodeJS.Timeout | undefined;
    try {
      status = await Promise.race([
        this.o.review(token, [this.o.audience]),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${this.o.timeoutMs} ms`)), this.o.timeoutMs);
          timer.unref();
        }),
      ]);
    } catch (err) {
      this.o.onResult?.('error');
      throw Object.assign(new StraitError('STRAIT_ERR_TOKEN_REVIEW', `cannot review the token with the Kubernetes API server: ${errorMessage(err)} (the controller needs "create" on tokenreviews.authentication.k8s.io)`, { cause: err }), { reason: 'review_error' });
    } finally {
      clearTimeout(timer);
    }
    if (!status.authenticated || !status.user?.username) {
      this.o.onResult?.('refused');
      throw new CredentialError('wrong_token', `the Kubernetes API server did not authenticate the token${status.error ? `: ${String(status.error).slice(0, 300)}` : ''}`);
    }
    // An audience-aware server answers with the audiences the token matched; none means "valid for the API server
    // itself", which is not us.
    if (!(status.audiences ?? []).includes(this.o.audience)) {
      this.o.onResult?.('refused');
      throw new CredentialError('wrong_audience', `the token is not for audience "${this.o.audience}" (it is for ${(status.audiences ?? []).length ? (status.audiences ?? []).join(', ') : 'the API server'}): project the ServiceAccount token with audience ${this.o.audience}`);
    }
    this.o.onResult?.('accepted');
    const u = status.user;
    return { username: u.username!, ...(u.uid ? { uid: u.uid } : {}), groups: u.groups ?? [], extra: u.extra ?? {} };
  }
}
