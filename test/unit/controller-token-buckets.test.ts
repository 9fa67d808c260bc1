import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TokenBuckets } from '../../src/controller/token-buckets.js';

describe('TokenBuckets (certificates per credential)', () => {
  it('gives each key its burst at once, then refills at the rate per minute, and says how long to wait', () => {
    let now = 1_000_000;
    const b = new TokenBuckets(3, 60, () => now); // 1 per second
    assert.deepEqual([b.take('a'), b.take('a'), b.take('a')], [0, 0, 0]);
    assert.equal(b.take('a'), 1000, 'empty: the next token is 1 s away');
    assert.equal(b.take('b'), 0, 'another key has its own bucket');
    now += 400;
    assert.equal(b.take('a'), 600);
    now += 600;
    assert.equal(b.take('a'), 0);
    assert.equal(b.take('a'), 1000);
    now += 60_000;
    assert.deepEqual([b.take('a'), b.take('a'), b.take('a'), b.take('a')].map((x) => x > 0), [false, false, false, true], 'refills up to the burst, no further');
  });

  it('drops full buckets when it holds too many keys (an absent key is a full bucket)', () => {
    let now = 0;
    const b = new TokenBuckets(2, 60, () => now, 2);
    b.take('a');
    b.take('b');
    now += 10_000; // both full again
    assert.equal(b.take('c'), 0);
    assert.equal(b.take('c'), 0);
    assert.ok(b.take('c') > 0, 'c spent its burst');
    assert.equal(b.take('a'), 0, 'a starts from a full bucket');
  });
});
