import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_WORKERS, MAX_WORKERS, parseWorkers } from '../../src/dataplane/workers/workers-flag.js';
import { isStraitError } from '../../src/common/errors.js';

describe('--workers', () => {
  it('defaults to 2, as Istio\'s ztunnel runs 2 worker threads', () => {
    assert.equal(DEFAULT_WORKERS, 2);
    assert.equal(parseWorkers(undefined), 2);
  });
  it('takes a whole number from 1 to the maximum', () => {
    assert.equal(parseWorkers('1'), 1);
    assert.equal(parseWorkers('7'), 7);
    assert.equal(parseWorkers(String(MAX_WORKERS)), MAX_WORKERS);
  });
  it('auto is the cores this process may use, within 1..maximum', () => {
    assert.equal(parseWorkers('auto', () => 6), 6);
    assert.equal(parseWorkers('auto', () => 0), 1);
    assert.equal(parseWorkers('auto', () => 500), MAX_WORKERS);
  });
  for (const bad of ['0', '-1', '1.5', 'two', '', ' 2', String(MAX_WORKERS + 1)]) {
    it(`refuses "${bad}" with a config error naming the flag`, () => {
      assert.throws(() => parseWorkers(bad), (err: unknown) => isStraitError(err, 'STRAIT_ERR_CONFIG') && /--workers/.test((err as Error).message));
    });
  }
});
