/**
 * Passive ejection of service endpoints that fail to connect (decide, DESIGN §6): which endpoints the outbound
 * pick should avoid, and for how long. No sockets, no timers, no logging: the caller passes the clock and turns
 * the returned events into log lines and metrics (outbound.ts, app.ts).
 *
 * An endpoint that fails is ejected for `baseMs`; each further ejection without a success in between doubles
 * that, up to `maxMs`. When the time is up it is readmitted (back in the pick); one success forgets its history.
 */
import { outcome, outcomeOfConnectError, type OutcomeBlame } from '../../dataplane/outcomes.js';

export interface EjectionPolicy {
  /** First ejection period. */
  baseMs: number;
  /** Longest ejection period (the doubling stops there). */
  maxMs: number;
  /** Most endpoints remembered at once; the oldest entries that are not ejected now are dropped first. */
  maxEntries: number;
}

/**
 * Whose fault is a failed connect? `endpoint`: the endpoint (or its node's ztunnel) is not there or cannot reach
 * its application — try another, eject this one. `local`: this process is out of file descriptors — no other
 * endpoint would do better. `other`: policy, identity or configuration — retrying elsewhere would hide it.
 * Read from the one table of connection outcomes (dataplane/outcomes.ts).
 */
export function failureBlame(err: unknown): OutcomeBlame {
  return outcome(outcomeOfConnectError(err)).blame;
}

export const DEFAULT_EJECTION_BASE_MS = 5_000;
export const DEFAULT_EJECTION_MAX_MS = 120_000;
export const DEFAULT_EJECTION_MAX_ENTRIES = 10_000;

export interface Ejected {
  kind: 'ejected';
  endpoint: string;
  /** How long it stays out of the pick. */
  durationMs: number;
  /** Consecutive ejections, this one included (1 for the first). */
  ejections: number;
  reason: string;
}

export interface Readmitted {
  kind: 'readmitted';
  endpoint: string;
  /** How long it was out. */
  ejectedForMs: number;
  ejections: number;
}

interface Entry {
  /** Consecutive ejections since the last success. */
  ejections: number;
  /** While ejected: when it comes back; undefined once readmitted. */
  until?: number;
  ejectedAt: number;
  /** When the entry last changed (for forgetting stale ones). */
  touched: number;
}

/**
 * Invariants: an endpoint is in `entries` only while it is ejected or has been ejected since its last success;
 * `ejectedNow` equals the number of entries with `until` set; the map never holds more than `maxEntries`.
 */
export class EndpointHealth {
  private readonly entries = new Map<string, Entry>();
  private ejectedNow = 0;

  constructor(private readonly policy: EjectionPolicy) {
    if (!(policy.baseMs > 0) || !(policy.maxMs >= policy.baseMs) || !(policy.maxEntries > 0)) {
      throw new RangeError(`ejection policy needs 0 < baseMs <= maxMs and maxEntries > 0, got ${JSON.stringify(policy)}`);
    }
  }

  /** True while `endpoint` is out of the pick (its ejection has not yet run out at `now`). */
  isEjected(endpoint: string, now: number): boolean {
    const e = this.entries.get(endpoint);
    return e?.until !== undefined && e.until > now;
  }

  /**
   * A connection to `endpoint` failed. Returns the ejection it causes, or undefined when it is already ejected
   * (connections that picked it before it was ejected fail too: that is the same failure, not a new one).
   */
  failed(endpoint: string, now: number, reason: string): Ejected | undefined {
    const e = this.entries.get(endpoint);
    if (e?.until !== undefined) {
      if (e.until > now) return undefined;
      this.ejectedNow--; // ran out but not yet expired(): out again, one step longer
    }
    const ejections = (e?.ejections ?? 0) + 1;
    const durationMs = Math.min(this.policy.maxMs, this.policy.baseMs * 2 ** Math.min(ejections - 1, 30));
    if (e) this.entries.delete(endpoint); // re-insert: the map's order is the order of last change
    this.entries.set(endpoint, { ejections, until: now + durationMs, ejectedAt: now, touched: now });
    this.ejectedNow++;
    this.trim();
    return { kind: 'ejected', endpoint, durationMs, ejections, reason };
  }

  /** A connection to `endpoint` succeeded: it is healthy, its history is forgotten. */
  succeeded(endpoint: string, now: number): Readmitted | undefined {
    const e = this.entries.get(endpoint);
    if (!e) return undefined;
    this.entries.delete(endpoint);
    if (e.until === undefined) return undefined;
    // Picked while ejected (every candidate was ejected, so the pick fell back to all), or just ran out: it is back.
    this.ejectedNow--;
    return { kind: 'readmitted', endpoint, ejectedForMs: Math.min(now, e.until) - e.ejectedAt, ejections: e.ejections };
  }

  /**
   * Readmits every endpoint whose ejection has run out at `now`, and forgets readmitted endpoints that have
   * gone `maxMs` without failing again. Call when `nextDeadline()` has passed.
   */
  expire(now: number): Readmitted[] {
    const out: Readmitted[] = [];
    for (const [endpoint, e] of this.entries) {
      if (e.until !== undefined && e.until <= now) {
        out.push({ kind: 'readmitted', endpoint, ejectedForMs: e.until - e.ejectedAt, ejections: e.ejections });
        e.until = undefined;
        e.touched = now;
        this.ejectedNow--;
      } else if (e.until === undefined && now - e.touched >= this.policy.maxMs) {
        this.entries.delete(endpoint);
      }
    }
    return out;
  }

  /** When `expire` next has something to do (a readmission or an entry to forget), or undefined. */
  nextDeadline(): number | undefined {
    let next: number | undefined;
    for (const e of this.entries.values()) {
      const t = e.until ?? e.touched + this.policy.maxMs;
      if (next === undefined || t < next) next = t;
    }
    return next;
  }

  /** Endpoints out of the pick now. */
  ejectedCount(): number {
    return this.ejectedNow;
  }

  /** For /config_dump: the endpoints out of the pick and until when. */
  snapshot(): { endpoint: string; until: number; ejections: number }[] {
    return [...this.entries].flatMap(([endpoint, e]) => (e.until !== undefined ? [{ endpoint, until: e.until, ejections: e.ejections }] : []));
  }

  /** Keeps the map bounded: drops the oldest readmitted entries first, then (only if all are ejected) the oldest. */
  private trim(): void {
    if (this.entries.size <= this.policy.maxEntries) return;
    for (const [endpoint, e] of this.entries) {
      if (this.entries.size <= this.policy.maxEntries) return;
      if (e.until === undefined) this.entries.delete(endpoint);
    }
    for (const [endpoint, e] of this.entries) {
      if (this.entries.size <= this.policy.maxEntries) return;
      this.entries.delete(endpoint);
      if (e.until !== undefined) this.ejectedNow--;
    }
  }
}
