/**
 * Pieces the HTTPRoute and VirtualService compilers share: Istio's default retry policy, retryOn parsing, duration
 * conversion and the answers for backends that cannot be used. Pure.
 */
import { parseDurationMs } from '../../common/model/duration.js';
import type { BackendRef, RetryPolicy } from '../../common/xds/waypoint-resources.js';

/**
 * Istio's retry policy for a route that says nothing about retries (pilot/pkg/networking/core/route/retry:
 * DefaultPolicy): 2 retries on connection failures, refused streams and the gRPC statuses unavailable and cancelled.
 * `retriable-status-codes` is listed with no codes, as Istio does, so no HTTP status is retried.
 */
export function istioDefaultRetry(): RetryPolicy {
  return { retries: 2, retryOn: ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes'] };
}

/** The conditions Istio retries on when a retry stanza names none (Gateway API retry, and VirtualService retries without retryOn). */
export const ISTIO_DEFAULT_RETRY_ON = istioDefaultRetry().retryOn;

/**
 * Istio's parseRetryOn: comma-separated conditions; numbers are status codes, and "retriable-status-codes" is
 * added when codes are given without it.
 */
export function parseRetryOn(retryOn: string): { retryOn: string[]; codes: number[] } {
  const conditions: string[] = [];
  const codes: number[] = [];
  for (const part of retryOn.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    if (/^\d{3}$/.test(part)) codes.push(Number(part));
    else conditions.push(part);
  }
  if (codes.length > 0 && !conditions.includes('retriable-status-codes')) conditions.push('retriable-status-codes');
  return { retryOn: conditions, codes };
}

/** Milliseconds of a validated duration; undefined for "0s" (Istio and Gateway API: zero disables the timeout). */
export function timeoutMs(d: string | undefined): number | undefined {
  if (d === undefined) return undefined;
  const v = parseDurationMs(d);
  return v === undefined || v === 0 ? undefined : Math.round(v);
}

/** Envoy's response flag for "the upstream cluster does not exist" (a backend that cannot be used). */
export const FLAG_NO_CLUSTER = 'NC';

export function failedBackend(service: string, status: number, reason: string, weight: number, port?: number): BackendRef {
  return { service, ...(port !== undefined ? { port } : {}), weight, fail: { status, flag: FLAG_NO_CLUSTER, reason } };
}
