import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CircuitBreaker, DEFAULT_PENDING_TIMEOUT_MS, UNLIMITED, type ConnectionGrant, type Lease, type Overflow } from '../../src/waypoint/upstream/circuit-breaker.js';

/** A timer source driven by the test. */
function manualTimers() {
  let now = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  let next = 0;
  return {
    setTimer: (fn: () => void, ms: number) => {
      const id = next++;
      timers.set(id, { at: now + ms, fn });
      return () => { timers.delete(id); };
    },
    advance(ms: number) {
      now += ms;
      for (const [id, t] of [...timers].sort((a, b) => a[1].at - b[1].at)) {
        if (t.at <= now) { timers.delete(id); t.fn(); }
      }
    },
    get pending() { return timers.size; },
  };
}

function isLease(x: Lease | Overflow | undefined): x is Lease {
  return x !== undefined && 'release' in x;
}

/** Settles `p` or says it has not settled (after the microtask queue drains). */
async function state(p: Promise<ConnectionGrant>): Promise<ConnectionGrant | 'waiting'> {
  return Promise.race([p, new Promise<'waiting'>((r) => setImmediate(() => r('waiting')))]);
}

describe('CircuitBreaker: limits', () => {
  it('unset limits are Istio\'s 2^32 − 1; maxRequestsPerConnection 0 means unlimited', () => {
    const b = new CircuitBreaker(undefined);
    assert.deepEqual(b.snapshot().limits, { connections: UNLIMITED, pending: UNLIMITED, requests: UNLIMITED, retries: UNLIMITED, requestsPerConnection: 0 });
    assert.equal(UNLIMITED, 4294967295);
    assert.equal(new CircuitBreaker({ maxRequestsPerConnection: 1 }).maxRequestsPerConnection, 1);
  });

  it('requests: maxRequests in flight, the next overflows until one is released', () => {
    const b = new CircuitBreaker({ maxRequests: 2 });
    const a = b.tryStartRequest();
    const c = b.tryStartRequest();
    assert.ok(isLease(a) && isLease(c));
    assert.deepEqual(b.tryStartRequest(), { overflow: 'requests' });
    a.release();
    assert.ok(isLease(b.tryStartRequest()));
    assert.deepEqual(b.snapshot().active.requests, 2);
    assert.deepEqual(b.snapshot().overflows, { requests: 1, pending: 0, retries: 0 });
  });

  it('release is idempotent: a double release never frees a slot someone else holds', () => {
    const b = new CircuitBreaker({ maxRequests: 1 });
    const a = b.tryStartRequest() as Lease;
    a.release();
    a.release();
    assert.equal(b.snapshot().active.requests, 0);
    assert.ok(isLease(b.tryStartRequest()));
    assert.deepEqual(b.tryStartRequest(), { overflow: 'requests' });
  });

  it('retries: maxRetries in flight across the backend', () => {
    const b = new CircuitBreaker({ maxRetries: 1 });
    const r = b.tryStartRetry();
    assert.ok(isLease(r));
    assert.deepEqual(b.tryStartRetry(), { overflow: 'retries' });
    r.release();
    assert.ok(isLease(b.tryStartRetry()));
  });

  it('a limit of 0 admits nothing', () => {
    const b = new CircuitBreaker({ maxRequests: 0, maxRetries: 0, maxConnections: 0, maxPendingRequests: 0 });
    assert.deepEqual(b.tryStartRequest(), { overflow: 'requests' });
    assert.deepEqual(b.tryStartRetry(), { overflow: 'retries' });
    assert.equal(b.tryOpenConnection(), undefined);
    assert.deepEqual(b.waitForConnection(), { overflow: 'pending' });
  });

  it('the product example orders-circuit-breaker: 1,000 requests in flight, the 1,001st overflows', () => {
    const b = new CircuitBreaker({ maxPendingRequests: 100, maxRequests: 1000 });
    for (let i = 0; i < 1000; i++) assert.ok(isLease(b.tryStartRequest()));
    assert.deepEqual(b.tryStartRequest(), { overflow: 'requests' });
  });
});

describe('CircuitBreaker: connections and the pending queue', () => {
  it('Istio\'s circuit-breaking task: 1 connection, 1 pending; a third concurrent request overflows (503 UO)', async () => {
    const timers = manualTimers();
    const b = new CircuitBreaker({ maxConnections: 1, maxPendingRequests: 1 }, { setTimer: timers.setTimer });
    const conn = b.tryOpenConnection();
    assert.ok(isLease(conn));
    assert.equal(b.tryOpenConnection(), undefined);
    const second = b.waitForConnection();
    assert.ok(second instanceof Promise);
    assert.deepEqual(b.waitForConnection(), { overflow: 'pending' });
    assert.deepEqual(b.snapshot().active, { connections: 1, pending: 1, requests: 0, retries: 0 });
    assert.equal(await state(second), 'waiting');
    conn.release();
    const grant = await second;
    assert.ok('lease' in grant, 'the closed connection\'s slot goes to the waiter');
    assert.deepEqual(b.snapshot().active, { connections: 1, pending: 0, requests: 0, retries: 0 });
    assert.equal(b.snapshot().overflows.pending, 1);
    assert.equal(timers.pending, 0, 'the waiter\'s timer is cancelled');
  });

  it('an announced idle connection goes to the oldest waiter, in order', async () => {
    const b = new CircuitBreaker({ maxConnections: 1 }, { setTimer: manualTimers().setTimer });
    b.tryOpenConnection();
    const first = b.waitForConnection() as Promise<ConnectionGrant>;
    const second = b.waitForConnection() as Promise<ConnectionGrant>;
    assert.equal(b.announceIdleConnection(), true);
    assert.deepEqual(await first, { idle: true });
    assert.equal(await state(second), 'waiting');
    assert.equal(b.announceIdleConnection(), true);
    assert.deepEqual(await second, { idle: true });
    assert.equal(b.announceIdleConnection(), false, 'nobody waits');
  });

  it('a wait ends after the pending timeout (the policy\'s connect timeout, else 10 s), counted', async () => {
    const timers = manualTimers();
    const b = new CircuitBreaker({ maxConnections: 1, connectTimeoutMs: 2_000 }, { setTimer: timers.setTimer });
    b.tryOpenConnection();
    const w = b.waitForConnection() as Promise<ConnectionGrant>;
    timers.advance(1_999);
    assert.equal(await state(w), 'waiting');
    timers.advance(1);
    assert.deepEqual(await w, { timeout: true });
    assert.equal(b.snapshot().pendingTimeouts, 1);
    assert.equal(b.snapshot().active.pending, 0);

    const t2 = manualTimers();
    const d = new CircuitBreaker({ maxConnections: 1 }, { setTimer: t2.setTimer });
    d.tryOpenConnection();
    const w2 = d.waitForConnection() as Promise<ConnectionGrant>;
    t2.advance(DEFAULT_PENDING_TIMEOUT_MS - 1);
    assert.equal(await state(w2), 'waiting');
    t2.advance(1);
    assert.deepEqual(await w2, { timeout: true });
  });

  it('an abort ends a wait, frees its place in the queue and cancels its timer', async () => {
    const timers = manualTimers();
    const b = new CircuitBreaker({ maxConnections: 1, maxPendingRequests: 1 }, { setTimer: timers.setTimer });
    b.tryOpenConnection();
    const ac = new AbortController();
    const w = b.waitForConnection(ac.signal) as Promise<ConnectionGrant>;
    assert.deepEqual(b.waitForConnection(), { overflow: 'pending' });
    ac.abort();
    assert.deepEqual(await w, { aborted: true });
    assert.equal(timers.pending, 0);
    assert.ok(b.waitForConnection() instanceof Promise, 'the place is free again');
    const already = new AbortController();
    already.abort();
    assert.equal(b.snapshot().active.pending, 1);
    assert.deepEqual(await (new CircuitBreaker({ maxConnections: 0 }).waitForConnection(already.signal) as Promise<ConnectionGrant>), { aborted: true });
  });

  it('a connection closing with nobody waiting just frees its slot', () => {
    const b = new CircuitBreaker({ maxConnections: 2 });
    const a = b.tryOpenConnection()!;
    const c = b.tryOpenConnection()!;
    assert.equal(b.tryOpenConnection(), undefined);
    a.release();
    c.release();
    c.release();
    assert.equal(b.snapshot().active.connections, 0);
    assert.ok(b.tryOpenConnection());
  });

  it('uses real timers by default, without keeping the process alive', async () => {
    const b = new CircuitBreaker({ maxConnections: 0 }, { pendingTimeoutMs: 5 });
    const keepAlive = setTimeout(() => {}, 5_000); // the breaker's own timer is unref'd
    try {
      assert.deepEqual(await (b.waitForConnection() as Promise<ConnectionGrant>), { timeout: true });
    } finally {
      clearTimeout(keepAlive);
    }
  });
});
