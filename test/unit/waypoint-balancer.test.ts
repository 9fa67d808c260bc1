import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EndpointBalancer, pickWeighted } from '../../src/waypoint/upstream/balancer.js';

/** A seeded PRNG (mulberry32) so distributions are reproducible. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random() that returns the given values in turn. */
function sequence(...values: number[]): () => number {
  let i = 0;
  return () => {
    assert.ok(i < values.length, 'random() called more often than the test expected');
    return values[i++]!;
  };
}

interface Ep { key: string }
const eps = (...keys: string[]): Ep[] => keys.map((key) => ({ key }));
const none = () => 0;

function count<T>(items: T[], key: (t: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const i of items) out[key(i)] = (out[key(i)] ?? 0) + 1;
  return out;
}

describe('pickWeighted', () => {
  it('splits by weight: 90/10 over 100,000 picks within 1 %', () => {
    const random = seeded(1);
    const backends = [{ subset: 'v1', weight: 90 }, { subset: 'v2', weight: 10 }];
    const picks = Array.from({ length: 100_000 }, () => pickWeighted(backends, random)!.subset);
    const c = count(picks, (s) => s);
    assert.ok(Math.abs(c.v1! / 100_000 - 0.9) < 0.01, JSON.stringify(c));
  });

  it('maps random() onto cumulative weights: the boundary goes to the next backend', () => {
    const backends = [{ n: 'a', weight: 1 }, { n: 'b', weight: 3 }];
    assert.equal(pickWeighted(backends, () => 0)!.n, 'a');
    assert.equal(pickWeighted(backends, () => 0.2499)!.n, 'a');
    assert.equal(pickWeighted(backends, () => 0.25)!.n, 'b');
    assert.equal(pickWeighted(backends, () => 0.999999)!.n, 'b');
    assert.equal(pickWeighted(backends, () => 1)!.n, 'b', 'even an out-of-contract 1.0 picks a backend');
  });

  it('never picks a backend of weight 0 (or negative, or NaN); all zero → undefined', () => {
    const backends = [{ n: 'zero', weight: 0 }, { n: 'neg', weight: -5 }, { n: 'nan', weight: Number.NaN }, { n: 'one', weight: 1 }, { n: 'zero2', weight: 0 }];
    for (const r of [0, 0.3, 0.7, 0.9999]) assert.equal(pickWeighted(backends, () => r)!.n, 'one');
    assert.equal(pickWeighted([{ weight: 0 }, { weight: 0 }], () => 0.5), undefined);
    assert.equal(pickWeighted([], () => 0.5), undefined);
  });
});

describe('EndpointBalancer: ROUND_ROBIN', () => {
  it('starts at a random endpoint, then takes each in turn', () => {
    const b = new EndpointBalancer<Ep>('ROUND_ROBIN', sequence(0.5));
    const list = eps('a', 'b', 'c', 'd');
    assert.deepEqual(Array.from({ length: 6 }, () => b.pick(list, none)!.key), ['c', 'd', 'a', 'b', 'c', 'd']);
  });

  it('is the default kind', () => {
    assert.equal(new EndpointBalancer<Ep>().kind, 'ROUND_ROBIN');
  });

  it('a fresh array with the same endpoints every call does not restart the turn', () => {
    const b = new EndpointBalancer<Ep>('ROUND_ROBIN', sequence(0));
    const picks = Array.from({ length: 300 }, () => b.pick(eps('a', 'b', 'c'), none)!.key);
    assert.deepEqual(count(picks, (k) => k), { a: 100, b: 100, c: 100 });
  });

  it('goes on after the last endpoint when others join or leave', () => {
    const b = new EndpointBalancer<Ep>('ROUND_ROBIN', sequence(0));
    assert.equal(b.pick(eps('a', 'b', 'c'), none)!.key, 'a');
    assert.equal(b.pick(eps('a', 'b', 'c'), none)!.key, 'b');
    assert.equal(b.pick(eps('x', 'a', 'b', 'c'), none)!.key, 'c', 'an endpoint joined before b: still the one after b');
    assert.equal(b.pick(eps('x', 'a', 'b', 'c'), none)!.key, 'x');
    assert.equal(b.pick(eps('a', 'b', 'c'), none)!.key, 'a', 'x (picked last) left: the one that took its place');
    assert.equal(b.pick(eps('c'), none)!.key, 'c');
    assert.equal(b.pick(eps('a', 'b', 'c'), none)!.key, 'a', 'wraps after c');
  });

  it('when the endpoint picked last leaves, goes on with the one after it, not from the start', () => {
    const b = new EndpointBalancer<Ep>('ROUND_ROBIN', sequence(0));
    assert.equal(b.pick(eps('a', 'b', 'c', 'd'), none)!.key, 'a');
    assert.equal(b.pick(eps('a', 'b', 'c', 'd'), none)!.key, 'b');
    assert.equal(b.pick(eps('a', 'c', 'd'), none)!.key, 'c', 'b left: c took its place');
    assert.equal(b.pick(eps('a', 'c', 'd'), none)!.key, 'd');
    assert.equal(b.pick(eps('a', 'c'), none)!.key, 'a', 'd left from the end: wrap to the start');
  });

  it('stays even while an endpoint is ejected and readmitted every few picks (no bias to the first)', () => {
    const b = new EndpointBalancer<Ep>('ROUND_ROBIN', sequence(0));
    const all = eps('a', 'b', 'c', 'd');
    const picks: string[] = [];
    for (let i = 0; i < 4000; i++) {
      const list = Math.floor(i / 7) % 2 === 0 ? all : all.filter((e) => e.key !== 'c');
      picks.push(b.pick(list, none)!.key);
    }
    const c = count(picks, (k) => k);
    for (const k of ['a', 'b', 'd']) assert.ok(Math.abs(c[k]! - c.a!) <= 40, JSON.stringify(c));
    assert.ok(c.c! > 0);
  });

  it('no endpoints → undefined; one → that one', () => {
    const b = new EndpointBalancer<Ep>('ROUND_ROBIN', sequence());
    assert.equal(b.pick([], none), undefined);
    assert.equal(b.pick(eps('only'), none)!.key, 'only');
  });
});

describe('EndpointBalancer: LEAST_REQUEST', () => {
  it('draws two and keeps the one with fewer active requests, the first on a tie', () => {
    const list = eps('a', 'b', 'c');
    const active = (e: Ep) => ({ a: 5, b: 1, c: 1 })[e.key as 'a' | 'b' | 'c'];
    assert.equal(new EndpointBalancer<Ep>('LEAST_REQUEST', sequence(0, 0.4)).pick(list, active)!.key, 'b');
    assert.equal(new EndpointBalancer<Ep>('LEAST_REQUEST', sequence(0.4, 0)).pick(list, active)!.key, 'b');
    assert.equal(new EndpointBalancer<Ep>('LEAST_REQUEST', sequence(0.4, 0.9)).pick(list, active)!.key, 'b', 'tie: the first drawn');
    assert.equal(new EndpointBalancer<Ep>('LEAST_REQUEST', sequence(0, 0)).pick(list, active)!.key, 'a', 'both draws on the busy one');
  });

  it('sends a busy endpoint only the share two draws both land on it (1/4 of two endpoints)', () => {
    const b = new EndpointBalancer<Ep>('LEAST_REQUEST', seeded(7));
    const list = eps('busy', 'idle');
    const picks = Array.from({ length: 40_000 }, () => b.pick(list, (e) => (e.key === 'busy' ? 10 : 0))!.key);
    const share = count(picks, (k) => k).busy! / 40_000;
    assert.ok(Math.abs(share - 0.25) < 0.01, `busy share ${share}`);
  });
});

describe('EndpointBalancer: RANDOM', () => {
  it('spreads evenly', () => {
    const b = new EndpointBalancer<Ep>('RANDOM', seeded(3));
    const list = eps('a', 'b', 'c', 'd');
    const c = count(Array.from({ length: 40_000 }, () => b.pick(list, none)!.key), (k) => k);
    for (const k of ['a', 'b', 'c', 'd']) assert.ok(Math.abs(c[k]! / 40_000 - 0.25) < 0.01, JSON.stringify(c));
  });
});
