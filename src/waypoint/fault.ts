/**
 * Fault injection (VirtualService `fault`): whether this request is delayed and whether it is aborted. The two are
 * independent draws, delay first, each against its own percentage (0..100, fractions allowed: 0.1 is one request in a
 * thousand); as in Envoy's fault filter a request may be both delayed and then aborted. One random() call per
 * configured fault, so tests can script the draws.
 * An abort carries an HTTP status or a gRPC status (answered as HTTP 200 with grpc-status); one with neither is not
 * injected. The caller flags a delay DI and an abort FI.
 */
import type { FaultPolicy } from '../common/xds/waypoint-resources.js';

export interface FaultDecision {
  delayMs?: number;
  abort?: { status?: number; grpcStatus?: number };
}

function hit(percentage: number, random: () => number): boolean {
  const p = Math.min(100, Math.max(0, percentage));
  return random() * 100 < p;
}

export function decideFault(policy: FaultPolicy | undefined, random: () => number): FaultDecision {
  const out: FaultDecision = {};
  if (!policy) return out;
  if (policy.delay && hit(policy.delay.percentage, random) && policy.delay.delayMs > 0) out.delayMs = policy.delay.delayMs;
  const a = policy.abort;
  if (a && (a.httpStatus !== undefined || a.grpcStatus !== undefined) && hit(a.percentage, random)) {
    out.abort = {
      ...(a.httpStatus !== undefined ? { status: a.httpStatus } : {}),
      ...(a.grpcStatus !== undefined ? { grpcStatus: a.grpcStatus } : {}),
    };
  }
  return out;
}
