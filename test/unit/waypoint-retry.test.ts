import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_BACKOFF_BASE_MS, retriableOutcome, retryBackoffMs, retryDecision, type AttemptOutcome } from '../../src/waypoint/retry.js';
import type { RetryPolicy } from '../../src/common/xds/waypoint-resources.js';

const policy = (retryOn: string[], extra: Partial<RetryPolicy> = {}): RetryPolicy => ({ retries: 3, retryOn, ...extra });

/** Which of `outcomes` (by label) the condition list retries. */
function retried(retryOn: string[], extra: Partial<RetryPolicy> = {}): string[] {
  const p = policy(retryOn, extra);
  return Object.entries(OUTCOMES).filter(([, o]) => retriableOutcome(p, o)).map(([label]) => label);
}

const OUTCOMES: Record<string, AttemptOutcome> = {
  '200': { status: 200 },
  '404': { status: 404 },
  '409': { status: 409 },
  '429': { status: 429 },
  '500': { status: 500 },
  '501': { status: 501 },
  '502': { status: 502 },
  '503': { status: 503 },
  '504': { status: 504 },
  'connect-failure': { error: 'connect-failure' },
  reset: { error: 'reset' },
  'refused-stream': { error: 'refused-stream' },
  timeout: { error: 'timeout' },
  'grpc-cancelled': { status: 200, grpcStatus: 1 },
  'grpc-deadline': { status: 200, grpcStatus: 4 },
  'grpc-exhausted': { status: 200, grpcStatus: 8 },
  'grpc-internal': { status: 200, grpcStatus: 13 },
  'grpc-unavailable': { status: 200, grpcStatus: 14 },
  'grpc-not-found': { status: 200, grpcStatus: 5 },
};

const NO_RESPONSE = ['connect-failure', 'reset', 'refused-stream', 'timeout'];

describe('retriableOutcome: Envoy retry_on conditions', () => {
  it('5xx: every 5xx and every attempt without a response (per-try timeout included)', () => {
    assert.deepEqual(retried(['5xx']), ['500', '501', '502', '503', '504', ...NO_RESPONSE]);
  });

  it('gateway-error: 502, 503, 504 and every attempt without a response', () => {
    assert.deepEqual(retried(['gateway-error']), ['502', '503', '504', ...NO_RESPONSE]);
  });

  it('reset: every attempt without a response, no status', () => {
    assert.deepEqual(retried(['reset']), NO_RESPONSE);
  });

  it('connect-failure and refused-stream: only their own failure', () => {
    assert.deepEqual(retried(['connect-failure']), ['connect-failure']);
    assert.deepEqual(retried(['refused-stream']), ['refused-stream']);
  });

  it('retriable-4xx: 409 only', () => {
    assert.deepEqual(retried(['retriable-4xx']), ['409']);
  });

  it('retriable-status-codes: the listed codes, also from bare codes in retryOn (Istio "503") and whenever a list is given', () => {
    assert.deepEqual(retried(['retriable-status-codes'], { retriableStatusCodes: [429, 503] }), ['429', '503']);
    assert.deepEqual(retried(['connect-failure', '503']), ['503', 'connect-failure']);
    assert.deepEqual(retried([], { retriableStatusCodes: [500] }), ['500']);
  });

  it('gRPC conditions read grpc-status of a trailers-only response', () => {
    assert.deepEqual(retried(['cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable']),
      ['grpc-cancelled', 'grpc-deadline', 'grpc-exhausted', 'grpc-internal', 'grpc-unavailable']);
    assert.deepEqual(retried(['unavailable']), ['grpc-unavailable']);
  });

  it('the product example payment-service retries gateway-error, connect-failure, retriable-4xx', () => {
    assert.deepEqual(retried(['gateway-error', 'connect-failure', 'retriable-4xx']), ['409', '502', '503', '504', ...NO_RESPONSE]);
  });

  it('ignores unknown or unsupported conditions, case and spaces', () => {
    assert.deepEqual(retried(['envoy-ratelimited', 'retriable-headers', 'bogus']), []);
    assert.deepEqual(retried([' Gateway-Error ']), ['502', '503', '504', ...NO_RESPONSE]);
  });

  it('no policy retries nothing', () => {
    assert.equal(retriableOutcome(undefined, { status: 503 }), false);
  });
});

describe('retryDecision', () => {
  it('retries while fewer than `retries` retries were made (Istio attempts = retries after the first try)', () => {
    const p = policy(['5xx'], { retries: 2 });
    assert.equal(retryDecision(p, 0, { status: 503 }), true);
    assert.equal(retryDecision(p, 1, { status: 503 }), true);
    assert.equal(retryDecision(p, 2, { status: 503 }), false, 'three tries in all');
    assert.equal(retryDecision(p, 0, { status: 200 }), false);
    assert.equal(retryDecision(policy(['5xx'], { retries: 0 }), 0, { status: 503 }), false);
    assert.equal(retryDecision(undefined, 0, { error: 'reset' }), false);
  });
});

describe('retryBackoffMs', () => {
  it('is uniform in [0, base·2^n) for the n-th retry after the first, capped at 10 × base (25 ms default)', () => {
    const top = (n: number, p?: RetryPolicy) => retryBackoffMs(p, n, () => 0.999999);
    assert.deepEqual([0, 1, 2, 3, 4, 5, 10, 1000].map((n) => top(n)), [24, 49, 99, 199, 249, 249, 249, 249]);
    assert.equal(retryBackoffMs(undefined, 0, () => 0), 0);
    assert.equal(retryBackoffMs(undefined, 2, () => 0.5), 50);
    assert.equal(DEFAULT_BACKOFF_BASE_MS, 25);
  });

  it('uses the policy\'s base interval', () => {
    const p = policy(['5xx'], { backoffBaseMs: 100 });
    assert.deepEqual([0, 1, 2, 3, 4].map((n) => retryBackoffMs(p, n, () => 0.999999)), [99, 199, 399, 799, 999]);
    assert.equal(retryBackoffMs(policy(['5xx'], { backoffBaseMs: 0 }), 0, () => 0.999999), 24, 'a base of 0 falls back to the default');
  });

  it('stays below the interval even for random() = 1', () => {
    assert.equal(retryBackoffMs(undefined, 0, () => 1), 24);
  });
});
