import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decideFault } from '../../src/waypoint/fault.js';

function sequence(...values: number[]): () => number {
  let i = 0;
  return () => {
    assert.ok(i < values.length, 'random() called more often than expected');
    return values[i++]!;
  };
}

describe('decideFault', () => {
  it('no policy, no fault, no draw', () => {
    assert.deepEqual(decideFault(undefined, sequence()), {});
  });

  it('delay and abort are independent draws, delay first, each against its own percentage', () => {
    const policy = { delay: { percentage: 50, delayMs: 2_000 }, abort: { percentage: 10, httpStatus: 503 } };
    assert.deepEqual(decideFault(policy, sequence(0.49, 0.09)), { delayMs: 2_000, abort: { status: 503 } });
    assert.deepEqual(decideFault(policy, sequence(0.5, 0.09)), { abort: { status: 503 } });
    assert.deepEqual(decideFault(policy, sequence(0.1, 0.1)), { delayMs: 2_000 });
    assert.deepEqual(decideFault(policy, sequence(0.9, 0.9)), {});
  });

  it('percentages may be fractions: 0.1 % is one request in a thousand', () => {
    const policy = { abort: { percentage: 0.1, httpStatus: 500 } };
    assert.deepEqual(decideFault(policy, () => 0.00099), { abort: { status: 500 } });
    assert.deepEqual(decideFault(policy, () => 0.001), {});
  });

  it('100 % always, 0 % never, out-of-range percentages clamped', () => {
    assert.deepEqual(decideFault({ delay: { percentage: 100, delayMs: 5 } }, () => 0.999999), { delayMs: 5 });
    assert.deepEqual(decideFault({ delay: { percentage: 0, delayMs: 5 } }, () => 0), {});
    assert.deepEqual(decideFault({ delay: { percentage: 250, delayMs: 5 } }, () => 0.999999), { delayMs: 5 });
    assert.deepEqual(decideFault({ delay: { percentage: -3, delayMs: 5 } }, () => 0), {});
  });

  it('a gRPC abort carries grpc-status; an abort with neither status is not injected', () => {
    assert.deepEqual(decideFault({ abort: { percentage: 100, grpcStatus: 14 } }, () => 0), { abort: { grpcStatus: 14 } });
    assert.deepEqual(decideFault({ abort: { percentage: 100 } }, sequence()), {});
  });

  it('injects roughly the configured share over many requests', () => {
    let a = 12345;
    const random = () => { a = (a * 1103515245 + 12345) % 2 ** 31; return a / 2 ** 31; };
    let delayed = 0;
    for (let i = 0; i < 20_000; i++) if (decideFault({ delay: { percentage: 30, delayMs: 1 } }, random).delayMs) delayed++;
    assert.ok(Math.abs(delayed / 20_000 - 0.3) < 0.02, `${delayed}`);
  });
});
