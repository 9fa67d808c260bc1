/**
 * Leader election over a coordination.k8s.io/v1 Lease, the decision half: given the Lease as last read, when this
 * replica first saw that version of it, the time and who we are, what to write (if anything). Pure; the
 * LeaderElector does the I/O.
 *
 * Expiry is judged by this replica's own clock from when it first observed the current record (as client-go does),
 * never from the holder's renewTime: replicas' clocks may disagree, durations measured on one clock do not.
 */

/** The fields of a Lease's spec that leader election reads and writes. */
export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  /** RFC 3339 with microseconds (a MicroTime), as the API server stores them. */
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

export interface LeaseDecisionInput {
  /** The Lease's spec as last read; undefined when the Lease does not exist. */
  current: LeaseSpec | undefined;
  /** When (this replica's clock, ms) the current record was first seen unchanged; ignored when `current` is undefined. */
  observedAtMs: number;
  nowMs: number;
  identity: string;
  leaseDurationMs: number;
}

export type LeaseDecision =
  /** No Lease yet: create it naming us. */
  | { action: 'create'; spec: LeaseSpec }
  /** Write this spec (with the read resourceVersion): a renewal when `renew`, else a takeover of a free or expired Lease. */
  | { action: 'update'; spec: LeaseSpec; renew: boolean }
  /** Someone else holds a live Lease: try again later. */
  | { action: 'wait'; holder: string; expiresInMs: number };

/** A Kubernetes MicroTime: "2024-05-01T10:00:00.123000Z". */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** The Lease's own duration (what its holder promised), else ours. */
function durationOf(spec: LeaseSpec, fallbackMs: number): number {
  const s = spec.leaseDurationSeconds;
  return typeof s === 'number' && Number.isFinite(s) && s > 0 ? s * 1000 : fallbackMs;
}

export function decideLease(input: LeaseDecisionInput): LeaseDecision {
  const { current, nowMs, identity } = input;
  const durationSeconds = Math.max(1, Math.ceil(input.leaseDurationMs / 1000));
  const now = microTime(nowMs);
  if (current === undefined) {
    return { action: 'create', spec: { holderIdentity: identity, leaseDurationSeconds: durationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 } };
  }
  const holder = current.holderIdentity ?? '';
  const transitions = current.leaseTransitions ?? 0;
  if (holder === identity) {
    return {
      action: 'update', renew: true,
      spec: { holderIdentity: identity, leaseDurationSeconds: durationSeconds, acquireTime: current.acquireTime ?? now, renewTime: now, leaseTransitions: transitions },
    };
  }
  if (holder !== '') {
    const expiresAt = input.observedAtMs + durationOf(current, input.leaseDurationMs);
    if (nowMs < expiresAt) return { action: 'wait', holder, expiresInMs: expiresAt - nowMs };
  }
  return {
    action: 'update', renew: false,
    spec: { holderIdentity: identity, leaseDurationSeconds: durationSeconds, acquireTime: now, renewTime: now, leaseTransitions: transitions + 1 },
  };
}

/**
 * What a leader writes when it steps down cleanly: nobody holds the Lease (the others take it at their next try,
 * without waiting for it to expire); the count of transitions is kept.
 */
export function releasedSpec(current: LeaseSpec, nowMs: number): LeaseSpec {
  const now = microTime(nowMs);
  return { holderIdentity: '', leaseDurationSeconds: 1, acquireTime: now, renewTime: now, leaseTransitions: current.leaseTransitions ?? 0 };
}

/** A stable text of the election fields, to tell whether the record changed between two reads. */
export function leaseRecordKey(spec: LeaseSpec | undefined): string {
  if (!spec) return '';
  return JSON.stringify([spec.holderIdentity ?? '', spec.leaseDurationSeconds ?? 0, spec.acquireTime ?? '', spec.renewTime ?? '', spec.leaseTransitions ?? 0]);
}
