/**
 * Whether to retry an attempt, and how long to wait first: Envoy's `retry_on` semantics (router filter
 * x-envoy-retry-on / x-envoy-retry-grpc-on, retry_state_impl.cc), which Istio's `retries.retryOn` and Gateway API's
 * HTTPRoute `retry` compile to.
 *
 * An attempt's outcome is retriable when a condition of the policy covers it:
 *  - 5xx: any 5xx response, or no response at all: connect failure, reset, refused stream, per-try timeout;
 *  - gateway-error: 502, 503, 504, or no response at all (Envoy counts every upstream reset as a gateway error too);
 *  - reset: no response at all (disconnect, reset, connect failure, refused stream, per-try timeout);
 *  - connect-failure: the connection to the endpoint could not be made (connect timeout included);
 *  - refused-stream: the upstream reset the stream with REFUSED_STREAM;
 *  - retriable-4xx: 409;
 *  - retriable-status-codes: the policy's `retriableStatusCodes` (also active whenever the list is non-empty, and for
 *    bare status codes written in `retryOn`, as Istio's "503" is);
 *  - gRPC: cancelled (1), deadline-exceeded (4), resource-exhausted (8), internal (13), unavailable (14) from
 *    grpc-status in the response HEADERS: Envoy only retries on a trailers-only response, never on trailers after a
 *    body has started (the caller passes `grpcStatus` only in the first case).
 * Conditions Strait does not implement (envoy-ratelimited, retriable-headers, reset-before-request,
 * http3-post-connect-failure) are ignored. The route's overall timeout is never retried (the caller stops).
 */
import type { RetryPolicy } from '../common/xds/waypoint-resources.js';

export interface AttemptOutcome {
  /** Response status, when a response came. */
  status?: number;
  /** grpc-status of a trailers-only response. */
  grpcStatus?: number;
  /** No response: why. `timeout` is the per-try timeout. */
  error?: 'connect-failure' | 'reset' | 'refused-stream' | 'timeout';
}

/** Envoy's default retry back-off base interval. */
export const DEFAULT_BACKOFF_BASE_MS = 25;

const GRPC_CONDITIONS: Record<string, number> = { cancelled: 1, 'deadline-exceeded': 4, 'resource-exhausted': 8, internal: 13, unavailable: 14 };

interface ParsedPolicy { on: Set<string>; codes: Set<number>; grpc: Set<number> }

const parsed = new WeakMap<RetryPolicy, ParsedPolicy>();

function parse(policy: RetryPolicy): ParsedPolicy {
  let p = parsed.get(policy);
  if (p) return p;
  const on = new Set<string>();
  const codes = new Set<number>(policy.retriableStatusCodes ?? []);
  const grpc = new Set<number>();
  for (const raw of policy.retryOn) {
    const c = raw.trim().toLowerCase();
    if (/^\d{3}$/.test(c)) codes.add(Number(c));
    else if (GRPC_CONDITIONS[c] !== undefined) grpc.add(GRPC_CONDITIONS[c]);
    else on.add(c);
  }
  p = { on, codes, grpc };
  parsed.set(policy, p);
  return p;
}

/** Whether some condition of `policy` covers `outcome` (retries left or not: a false here is not URX). */
export function retriableOutcome(policy: RetryPolicy | undefined, outcome: AttemptOutcome): boolean {
  if (!policy) return false;
  const { on, codes, grpc } = parse(policy);
  if (outcome.error !== undefined) {
    if (on.has('5xx') || on.has('gateway-error') || on.has('reset')) return true;
    if (outcome.error === 'connect-failure') return on.has('connect-failure');
    if (outcome.error === 'refused-stream') return on.has('refused-stream');
    return false;
  }
  const s = outcome.status;
  if (s !== undefined) {
    if (on.has('5xx') && s >= 500 && s <= 599) return true;
    if (on.has('gateway-error') && (s === 502 || s === 503 || s === 504)) return true;
    if (on.has('retriable-4xx') && s === 409) return true;
    if (codes.has(s)) return true;
  }
  return outcome.grpcStatus !== undefined && grpc.has(outcome.grpcStatus);
}

/**
 * Whether to retry after an attempt with `outcome`, `retriesDone` retries having been made already (0 after the
 * first try): the outcome is retriable and fewer than `policy.retries` retries were made.
 */
export function retryDecision(policy: RetryPolicy | undefined, retriesDone: number, outcome: AttemptOutcome): boolean {
  return policy !== undefined && retriesDone < policy.retries && retriableOutcome(policy, outcome);
}

/**
 * The wait before the next retry, Envoy's fully jittered exponential back-off (backoff_strategy.cc): uniform in
 * [0, interval) where the interval is the base (25 ms by default) for the first retry and doubles for each one after,
 * capped at 10 × base. (Envoy's documentation says [0, (2^N − 1)·base); its code, followed here, uses 2^(N−1)·base.)
 */
export function retryBackoffMs(policy: RetryPolicy | undefined, retriesDone: number, random: () => number): number {
  const base = policy?.backoffBaseMs !== undefined && policy.backoffBaseMs > 0 ? policy.backoffBaseMs : DEFAULT_BACKOFF_BASE_MS;
  const max = 10 * base;
  const interval = Math.min(max, base * 2 ** Math.min(Math.max(0, retriesDone), 30));
  return Math.min(interval - 1, Math.floor(random() * interval));
}
