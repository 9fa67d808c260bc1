import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_TRACKED_ENDPOINTS, OutlierDetector, type OutlierEvent } from '../../src/waypoint/upstream/outlier.js';
import type { OutlierPolicy } from '../../src/common/xds/waypoint-resources.js';

/** The product example DestinationRule orders-circuit-breaker. */
const ORDERS: OutlierPolicy = { consecutive5xxErrors: 5, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 50 };

function setup(policy: Partial<OutlierPolicy> = {}, endpoints: string[] = ['a', 'b']) {
  let t = 1_000;
  const ejects: OutlierEvent[] = [];
  const readmits: OutlierEvent[] = [];
  const d = new OutlierDetector({ ...ORDERS, ...policy }, { now: () => t, onEject: (e) => ejects.push(e), onReadmit: (e) => readmits.push(e) });
  d.retain(endpoints);
  return {
    d, ejects, readmits,
    advance: (ms: number) => { t += ms; },
    now: () => t,
    fail: (ep: string, n: number, status = 500) => { for (let i = 0; i < n; i++) d.recordResult(ep, { status }); },
  };
}

describe('OutlierDetector: consecutive errors', () => {
  it('ejects at once when the 5th consecutive 5xx arrives, not before', () => {
    const s = setup();
    s.fail('a', 4);
    assert.equal(s.d.isEjected('a'), false);
    s.fail('a', 1);
    assert.equal(s.d.isEjected('a'), true);
    assert.deepEqual(s.ejects, [{ endpoint: 'a', reason: 'consecutive_5xx', since: 1_000, until: 31_000, multiplier: 1, ejected: 1, endpoints: 2 }]);
  });

  it('a success in between starts the count again', () => {
    const s = setup();
    s.fail('a', 4);
    s.d.recordResult('a', { status: 200 });
    s.fail('a', 4);
    assert.equal(s.d.isEjected('a'), false);
    s.d.recordResult('a', { status: 404 });
    s.fail('a', 4);
    assert.equal(s.d.isEjected('a'), false, 'a 4xx is not an error');
  });

  it('connect failures, resets and timeouts (gateway errors) count as 5xx', () => {
    const s = setup();
    for (let i = 0; i < 5; i++) s.d.recordResult('a', { gatewayError: true });
    assert.equal(s.d.isEjected('a'), true);
    assert.equal(s.ejects[0]!.reason, 'consecutive_5xx');
  });

  it('consecutiveGatewayErrors counts 502/503/504 and gateway errors; another 5xx resets it but still counts as 5xx', () => {
    const s = setup({ consecutiveGatewayErrors: 3, consecutive5xxErrors: 10 });
    s.fail('a', 2, 503);
    s.fail('a', 1, 500);
    s.fail('a', 2, 504);
    assert.equal(s.d.isEjected('a'), false);
    s.d.recordResult('a', { gatewayError: true });
    assert.equal(s.d.isEjected('a'), true);
    assert.equal(s.ejects[0]!.reason, 'consecutive_gateway_failure');
    const t = setup({ consecutiveGatewayErrors: 100, consecutive5xxErrors: 4 });
    t.fail('a', 2, 502);
    t.fail('a', 2, 500);
    assert.equal(t.d.isEjected('a'), true, 'the 5xx count kept the 502s');
  });

  it('consecutive5xxErrors absent means 5 (Envoy default), 0 turns it off; the gateway detector is off unless set', () => {
    const dflt = setup({ consecutive5xxErrors: undefined });
    dflt.fail('a', 5);
    assert.equal(dflt.d.isEjected('a'), true);
    const off = setup({ consecutive5xxErrors: 0 });
    off.fail('a', 50, 503);
    assert.equal(off.d.isEjected('a'), false);
    const gwOff = setup({ consecutive5xxErrors: 0, consecutiveGatewayErrors: 0 });
    for (let i = 0; i < 50; i++) gwOff.d.recordResult('a', { gatewayError: true });
    assert.equal(gwOff.d.isEjected('a'), false);
  });

  it('ignores results of an ejected endpoint', () => {
    const s = setup({}, ['a', 'b', 'c', 'd']);
    s.fail('a', 5);
    s.fail('a', 20);
    assert.equal(s.ejects.length, 1);
    assert.deepEqual(s.d.snapshot().hosts.find((h) => h.endpoint === 'a'), { endpoint: 'a', consecutive5xx: 0, consecutiveGatewayErrors: 0, multiplier: 1, ejections: 1 });
  });
});

describe('OutlierDetector: maxEjectionPercent', () => {
  it('2 endpoints at 50 %: one may be ejected, the second is refused and its count starts again', () => {
    const s = setup();
    s.fail('a', 5);
    s.fail('b', 5);
    assert.deepEqual([s.d.isEjected('a'), s.d.isEjected('b')], [true, false]);
    assert.equal(s.d.snapshot().ejectionsOverflow, 1);
    assert.equal(s.d.snapshot().hosts.find((h) => h.endpoint === 'b')!.consecutive5xx, 0);
    s.advance(30_000);
    s.d.sweep();
    assert.equal(s.d.isEjected('a'), false);
    s.fail('b', 4);
    assert.equal(s.d.isEjected('b'), false, 'the refused attempt reset the count: 5 more are needed');
    s.fail('b', 1);
    assert.equal(s.d.isEjected('b'), true);
  });

  it('counts the candidate: 3 endpoints at 50 % → 1; 5 endpoints at Istio\'s default 10 % → none; 100 % → all', () => {
    const three = setup({}, ['a', 'b', 'c']);
    for (const e of ['a', 'b', 'c']) three.fail(e, 5);
    assert.equal(three.d.snapshot().ejected.length, 1);
    const five = setup({ maxEjectionPercent: 10 }, ['a', 'b', 'c', 'd', 'e']);
    five.fail('a', 5);
    assert.equal(five.d.snapshot().ejected.length, 0);
    const ten = setup({ maxEjectionPercent: 10 }, 'abcdefghij'.split(''));
    ten.fail('a', 5);
    ten.fail('b', 5);
    assert.equal(ten.d.snapshot().ejected.length, 1, '10 endpoints at 10 %: exactly one');
    const all = setup({ maxEjectionPercent: 100 }, ['a', 'b', 'c']);
    for (const e of ['a', 'b', 'c']) all.fail(e, 5);
    assert.equal(all.d.snapshot().ejected.length, 3);
  });

  it('an ejected endpoint that leaves frees its share', () => {
    const s = setup({}, ['a', 'b', 'c', 'd']);
    s.fail('a', 5);
    s.fail('b', 5);
    s.fail('c', 5);
    assert.equal(s.d.snapshot().ejected.length, 2);
    s.d.retain(['b', 'c', 'd']);
    assert.equal(s.d.snapshot().ejected.length, 1, 'a is gone');
    s.fail('c', 5);
    assert.equal(s.d.isEjected('c'), false, '2 of 3 would be 66 %');
    s.d.retain(['b', 'c', 'd', 'e']);
    s.fail('c', 5);
    assert.equal(s.d.isEjected('c'), true, '2 of 4 is 50 %');
  });
});

describe('OutlierDetector: ejection time', () => {
  it('readmits at the first sweep at or after baseEjectionTime, with onReadmit and counts reset', () => {
    const s = setup();
    s.fail('a', 5);
    s.advance(10_000); s.d.sweep();
    s.advance(10_000); s.d.sweep();
    s.advance(9_999); s.d.sweep();
    assert.equal(s.d.isEjected('a'), true);
    s.advance(1); s.d.sweep();
    assert.equal(s.d.isEjected('a'), false);
    assert.deepEqual(s.readmits, [{ endpoint: 'a', reason: 'consecutive_5xx', since: 1_000, until: 31_000, multiplier: 1, ejected: 0, endpoints: 2 }]);
    s.fail('a', 4);
    assert.equal(s.d.isEjected('a'), false);
  });

  it('grows with each ejection: base × multiplier, the multiplier rising by one per ejection', () => {
    const s = setup();
    const durations: number[] = [];
    for (let i = 0; i < 3; i++) {
      s.fail('a', 5);
      const e = s.ejects.at(-1)!;
      durations.push(e.until - e.since);
      s.advance(e.until - s.now());
      s.d.sweep();
      assert.equal(s.d.isEjected('a'), false);
    }
    assert.deepEqual(durations, [30_000, 60_000, 90_000]);
  });

  it('the multiplier falls by one at each sweep that finds the endpoint in service', () => {
    const s = setup();
    s.fail('a', 5); s.advance(30_000); s.d.sweep();
    s.fail('a', 5); s.advance(60_000); s.d.sweep();
    assert.equal(s.d.snapshot().hosts.find((h) => h.endpoint === 'a')!.multiplier, 2);
    s.advance(10_000); s.d.sweep();
    assert.equal(s.d.snapshot().hosts.find((h) => h.endpoint === 'a')!.multiplier, 1);
    s.fail('a', 5);
    assert.equal(s.ejects.at(-1)!.until - s.ejects.at(-1)!.since, 60_000, 'back to 2 × base after one quiet sweep');
    s.advance(60_000); s.d.sweep();
    for (let i = 0; i < 5; i++) { s.advance(10_000); s.d.sweep(); }
    assert.equal(s.d.snapshot().hosts.find((h) => h.endpoint === 'a')!.multiplier, 0, 'never below 0');
    s.fail('a', 5);
    assert.equal(s.ejects.at(-1)!.until - s.ejects.at(-1)!.since, 30_000);
  });

  it('is capped at 300 s (Envoy max_ejection_time), or at baseEjectionTime when that is longer', () => {
    const s = setup({ baseEjectionTimeMs: 100_000 });
    const durations: number[] = [];
    for (let i = 0; i < 5; i++) {
      s.fail('a', 5);
      const e = s.ejects.at(-1)!;
      durations.push(e.until - e.since);
      s.advance(e.until - s.now());
      s.d.sweep();
    }
    assert.deepEqual(durations, [100_000, 200_000, 300_000, 300_000, 300_000]);
    const long = setup({ baseEjectionTimeMs: 400_000 });
    long.fail('a', 5);
    long.advance(400_000); long.d.sweep();
    long.fail('a', 5);
    assert.equal(long.ejects.at(-1)!.until - long.ejects.at(-1)!.since, 400_000);
  });
});

describe('OutlierDetector: bookkeeping', () => {
  it('snapshot lists ejected endpoints with until, and per-endpoint counts', () => {
    const s = setup({}, ['a', 'b']);
    s.fail('a', 5);
    s.fail('b', 2, 503);
    const snap = s.d.snapshot();
    assert.equal(snap.endpoints, 2);
    assert.deepEqual(snap.ejected, [{ endpoint: 'a', reason: 'consecutive_5xx', since: 1_000, until: 31_000, multiplier: 1 }]);
    assert.deepEqual(snap.hosts.find((h) => h.endpoint === 'b'), { endpoint: 'b', consecutive5xx: 2, consecutiveGatewayErrors: 2, multiplier: 0, ejections: 0 });
    assert.equal(snap.ejectionsTotal, 1);
    assert.equal(s.d.intervalMs, 10_000);
  });

  it('retain forgets departed endpoints; results of unknown endpoints start tracking them, up to a bound', () => {
    const s = setup({}, ['a']);
    s.d.recordResult('new', { status: 500 });
    assert.equal(s.d.snapshot().endpoints, 2);
    s.d.retain(['a']);
    assert.deepEqual(s.d.snapshot().hosts.map((h) => h.endpoint), ['a']);
    const big = setup({ maxEjectionPercent: 100 }, []);
    big.d.retain(Array.from({ length: MAX_TRACKED_ENDPOINTS }, (_, i) => `e${i}`));
    big.fail('one-too-many', 5);
    const snap = big.d.snapshot();
    assert.equal(snap.endpoints, MAX_TRACKED_ENDPOINTS);
    assert.equal(snap.untrackedResults, 5);
    assert.equal(big.d.isEjected('one-too-many'), false);
  });
});
