import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decideLease, leaseRecordKey, microTime, releasedSpec, type LeaseSpec } from '../../src/controller/kube/lease-decision.js';

const T0 = Date.parse('2025-01-01T00:00:00Z');
const LEASE_MS = 15_000;
const held = (holder: string, over: Partial<LeaseSpec> = {}): LeaseSpec => ({
  holderIdentity: holder, leaseDurationSeconds: 15, acquireTime: microTime(T0 - 60_000), renewTime: microTime(T0 - 1000), leaseTransitions: 3, ...over,
});

describe('leader election decisions (Lease as read, when first seen, now, who we are)', () => {
  it('creates the Lease naming us when there is none, with no transitions yet', () => {
    const d = decideLease({ current: undefined, observedAtMs: 0, nowMs: T0, identity: 'ctl-a', leaseDurationMs: LEASE_MS });
    assert.deepEqual(d, {
      action: 'create',
      spec: { holderIdentity: 'ctl-a', leaseDurationSeconds: 15, acquireTime: '2025-01-01T00:00:00.000000Z', renewTime: '2025-01-01T00:00:00.000000Z', leaseTransitions: 0 },
    });
  });

  it('waits while another replica\'s Lease is live on our clock, saying for how long', () => {
    const d = decideLease({ current: held('ctl-b'), observedAtMs: T0 - 5000, nowMs: T0, identity: 'ctl-a', leaseDurationMs: LEASE_MS });
    assert.deepEqual(d, { action: 'wait', holder: 'ctl-b', expiresInMs: 10_000 });
  });

  it('judges expiry from when the record was first seen, not from the holder\'s renewTime (clocks differ)', () => {
    // The holder's clock is an hour behind: its renewTime looks ancient, but we saw this record change 2 s ago.
    const skewed = held('ctl-b', { renewTime: microTime(T0 - 3_600_000) });
    const d = decideLease({ current: skewed, observedAtMs: T0 - 2000, nowMs: T0, identity: 'ctl-a', leaseDurationMs: LEASE_MS });
    assert.equal(d.action, 'wait');
  });

  it('takes over an expired Lease, counting one more transition and a new acquireTime', () => {
    const d = decideLease({ current: held('ctl-b'), observedAtMs: T0 - 15_000, nowMs: T0, identity: 'ctl-a', leaseDurationMs: LEASE_MS });
    assert.equal(d.action, 'update');
    assert.ok(d.action === 'update' && !d.renew);
    assert.deepEqual(d.action === 'update' && d.spec, {
      holderIdentity: 'ctl-a', leaseDurationSeconds: 15, acquireTime: microTime(T0), renewTime: microTime(T0), leaseTransitions: 4,
    });
  });

  it('uses the duration the holder wrote into the Lease, not ours', () => {
    const long = held('ctl-b', { leaseDurationSeconds: 60 });
    const d = decideLease({ current: long, observedAtMs: T0 - 30_000, nowMs: T0, identity: 'ctl-a', leaseDurationMs: LEASE_MS });
    assert.deepEqual(d, { action: 'wait', holder: 'ctl-b', expiresInMs: 30_000 });
  });

  it('takes a released Lease (no holder) at once', () => {
    const released = releasedSpec(held('ctl-b'), T0 - 100);
    const d = decideLease({ current: released, observedAtMs: T0 - 100, nowMs: T0, identity: 'ctl-a', leaseDurationMs: LEASE_MS });
    assert.ok(d.action === 'update' && !d.renew);
    assert.equal(d.action === 'update' && d.spec.leaseTransitions, 4);
  });

  it('renews its own Lease keeping acquireTime and the transition count, even when expired on our clock', () => {
    const mine = held('ctl-a');
    const d = decideLease({ current: mine, observedAtMs: T0 - 60_000, nowMs: T0, identity: 'ctl-a', leaseDurationMs: LEASE_MS });
    assert.ok(d.action === 'update' && d.renew);
    assert.deepEqual(d.action === 'update' && d.spec, { ...mine, renewTime: microTime(T0) });
  });

  it('releasing empties the holder and keeps the transition count', () => {
    assert.deepEqual(releasedSpec(held('ctl-a'), T0), { holderIdentity: '', leaseDurationSeconds: 1, acquireTime: microTime(T0), renewTime: microTime(T0), leaseTransitions: 3 });
  });

  it('tells a changed record from an unchanged one (a renewal changes renewTime)', () => {
    assert.equal(leaseRecordKey(held('x')), leaseRecordKey(held('x')));
    assert.notEqual(leaseRecordKey(held('x')), leaseRecordKey(held('x', { renewTime: microTime(T0) })));
    assert.equal(leaseRecordKey(undefined), '');
  });

  it('writes MicroTime with six fractional digits, as the API server stores it', () => {
    assert.equal(microTime(Date.parse('2025-02-03T04:05:06.789Z')), '2025-02-03T04:05:06.789000Z');
  });
});
