/**
 * Connection-pool limits of one backend cluster (service + subset), DestinationRule `connectionPool` as Envoy's
 * circuit breakers apply them. The caller turns an overflow into 503 with response flag UO.
 *
 *  - requests (http.http2MaxRequests / maxRequests): requests in flight to the backend at once → `tryStartRequest`;
 *  - connections (tcp.maxConnections): upstream connections open at once → `tryOpenConnection`;
 *  - pending (http.http1MaxPendingRequests): requests waiting for a connection while `maxConnections` are open and
 *    none is idle → `waitForConnection`, a FIFO queue bounded in length (maxPendingRequests) and in time (the pending
 *    timeout; the caller's AbortSignal ends a wait earlier, e.g. when the route timeout fires or the client leaves);
 *  - retries (http.maxRetries): retries in flight at once across the backend → `tryStartRetry`; an overflow means "do
 *    not retry": the caller returns the response it has, with flag UO (Envoy's upstream_rq_retry_overflow);
 *  - maxRequestsPerConnection (0 = unlimited; 1 turns keep-alive off) is for the connection pool to honour.
 * Unset limits are 2^32 − 1, Istio's defaults (Envoy's own would be 1024 connections / pending / requests and 3
 * retries, but Istio always sets them). A limit of 0 admits nothing.
 *
 * Invariants: each counter equals the number of leases of its kind not yet released (release is idempotent); the
 * pending queue never holds more than maxPendingRequests waiters and each waiter is settled exactly once (a slot, an
 * idle connection, a timeout or an abort), its timer cancelled when settled otherwise.
 */
import type { ConnectionPoolPolicy } from '../../common/xds/waypoint-resources.js';

/** Istio's default for every unset connection-pool limit. */
export const UNLIMITED = 2 ** 32 - 1;
/** How long a request may wait for a connection when the policy sets no connect timeout (Istio's default 10 s). */
export const DEFAULT_PENDING_TIMEOUT_MS = 10_000;

export type OverflowKind = 'requests' | 'pending' | 'retries';
export interface Overflow { overflow: OverflowKind }

export interface Lease {
  /** Gives the slot back; later calls do nothing. */
  release(): void;
}

/** How a wait for a connection ended. */
export type ConnectionGrant =
  /** A connection slot: open a new connection, release the lease when it closes. */
  | { lease: Lease }
  /** The pool announced an idle connection: take it (if another request took it first, wait again). */
  | { idle: true }
  /** Waited longer than the pending timeout: answer 503 UO ("upstream_rq_pending_overflow" in Envoy terms: no connection in time). */
  | { timeout: true }
  /** The caller's signal aborted the wait. */
  | { aborted: true };

export interface CircuitBreakerOptions {
  /** Longest wait in the pending queue (default: the policy's connectTimeoutMs, else 10 s). */
  pendingTimeoutMs?: number;
  /** Timer source (tests inject one); returns a cancel function. */
  setTimer?: (fn: () => void, ms: number) => () => void;
}

export interface CircuitBreakerSnapshot {
  limits: { connections: number; pending: number; requests: number; retries: number; requestsPerConnection: number };
  active: { connections: number; pending: number; requests: number; retries: number };
  overflows: { requests: number; pending: number; retries: number };
  pendingTimeouts: number;
}

interface Waiter {
  settle: (g: ConnectionGrant) => void;
  cancelTimer: () => void;
  removeAbort: () => void;
}

function limit(v: number | undefined): number {
  return v === undefined || !Number.isFinite(v) || v < 0 ? UNLIMITED : Math.floor(v);
}

function defaultTimer(fn: () => void, ms: number): () => void {
  const t = setTimeout(fn, ms);
  t.unref();
  return () => clearTimeout(t);
}

export class CircuitBreaker {
  readonly maxRequestsPerConnection: number;
  private readonly maxConnections: number;
  private readonly maxPending: number;
  private readonly maxRequests: number;
  private readonly maxRetries: number;
  private readonly pendingTimeoutMs: number;
  private readonly setTimer: (fn: () => void, ms: number) => () => void;
  private connections = 0;
  private requests = 0;
  private retries = 0;
  private readonly waiters: Waiter[] = [];
  private readonly overflows = { requests: 0, pending: 0, retries: 0 };
  private pendingTimeouts = 0;

  constructor(policy: ConnectionPoolPolicy | undefined, opts: CircuitBreakerOptions = {}) {
    this.maxConnections = limit(policy?.maxConnections);
    this.maxPending = limit(policy?.maxPendingRequests);
    this.maxRequests = limit(policy?.maxRequests);
    this.maxRetries = limit(policy?.maxRetries);
    this.maxRequestsPerConnection = Math.max(0, Math.floor(policy?.maxRequestsPerConnection ?? 0));
    this.pendingTimeoutMs = opts.pendingTimeoutMs ?? policy?.connectTimeoutMs ?? DEFAULT_PENDING_TIMEOUT_MS;
    this.setTimer = opts.setTimer ?? defaultTimer;
  }

  /** A request slot, or { overflow: 'requests' } when maxRequests are in flight. */
  tryStartRequest(): Lease | Overflow {
    if (this.requests >= this.maxRequests) {
      this.overflows.requests++;
      return { overflow: 'requests' };
    }
    this.requests++;
    return this.lease(() => { this.requests--; });
  }

  /** A retry slot, or { overflow: 'retries' } when maxRetries retries are in flight (do not retry). */
  tryStartRetry(): Lease | Overflow {
    if (this.retries >= this.maxRetries) {
      this.overflows.retries++;
      return { overflow: 'retries' };
    }
    this.retries++;
    return this.lease(() => { this.retries--; });
  }

  /** A connection slot for a new connection, or undefined when maxConnections are open (then wait). */
  tryOpenConnection(): Lease | undefined {
    if (this.connections >= this.maxConnections) return undefined;
    return this.connectionLease();
  }

  /**
   * Waits for a connection: resolves with a connection slot when one closes, with { idle } when the pool announces
   * an idle connection, or with { timeout } / { aborted }. Returns { overflow: 'pending' } at once when
   * maxPendingRequests requests already wait.
   */
  waitForConnection(signal?: AbortSignal): Promise<ConnectionGrant> | Overflow {
    if (this.waiters.length >= this.maxPending) {
      this.overflows.pending++;
      return { overflow: 'pending' };
    }
    if (signal?.aborted) return Promise.resolve({ aborted: true });
    return new Promise<ConnectionGrant>((resolve) => {
      const waiter: Waiter = {
        settle: (g) => {
          const i = this.waiters.indexOf(waiter);
          if (i < 0) return;
          this.waiters.splice(i, 1);
          waiter.cancelTimer();
          waiter.removeAbort();
          resolve(g);
        },
        cancelTimer: () => {},
        removeAbort: () => {},
      };
      this.waiters.push(waiter);
      waiter.cancelTimer = this.setTimer(() => {
        if (this.waiters.includes(waiter)) this.pendingTimeouts++;
        waiter.settle({ timeout: true });
      }, this.pendingTimeoutMs);
      if (signal) {
        const onAbort = () => waiter.settle({ aborted: true });
        signal.addEventListener('abort', onAbort, { once: true });
        waiter.removeAbort = () => signal.removeEventListener('abort', onAbort);
      }
    });
  }

  /** The pool has an idle connection: the oldest waiter is told to take it. False when nobody waits. */
  announceIdleConnection(): boolean {
    const w = this.waiters[0];
    if (!w) return false;
    w.settle({ idle: true });
    return true;
  }

  snapshot(): CircuitBreakerSnapshot {
    return {
      limits: { connections: this.maxConnections, pending: this.maxPending, requests: this.maxRequests, retries: this.maxRetries, requestsPerConnection: this.maxRequestsPerConnection },
      active: { connections: this.connections, pending: this.waiters.length, requests: this.requests, retries: this.retries },
      overflows: { ...this.overflows },
      pendingTimeouts: this.pendingTimeouts,
    };
  }

  private connectionLease(): Lease {
    this.connections++;
    return this.lease(() => {
      this.connections--;
      // A connection closed: its slot goes to the oldest waiter, if any.
      const w = this.waiters[0];
      if (w && this.connections < this.maxConnections) w.settle({ lease: this.connectionLease() });
    });
  }

  private lease(onRelease: () => void): Lease {
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        onRelease();
      },
    };
  }
}
