import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isGatewayDuration, parseDurationMs } from '../../src/common/model/index.js';

test('parseDurationMs reads the units Istio users write', () => {
  assert.equal(parseDurationMs('1s'), 1000);
  assert.equal(parseDurationMs('100ms'), 100);
  assert.equal(parseDurationMs('1m'), 60_000);
  assert.equal(parseDurationMs('1h'), 3_600_000);
  assert.equal(parseDurationMs('0'), 0);
  assert.equal(parseDurationMs('0s'), 0);
});

test('parseDurationMs reads fractions and compound durations like Go', () => {
  assert.equal(parseDurationMs('1.5s'), 1500);
  assert.equal(parseDurationMs('1.1s'), 1100);
  assert.equal(parseDurationMs('.5s'), 500);
  assert.equal(parseDurationMs('1h30m'), 5_400_000);
  assert.equal(parseDurationMs('2m3s4ms'), 123_004);
  assert.equal(parseDurationMs('500us'), 0.5);
  assert.equal(parseDurationMs('250000ns'), 0.25);
});

test('parseDurationMs rejects what is not a duration', () => {
  for (const s of ['', '1', '10', 's', '1 s', '1sec', '-1s', '+1s', '1.s.', '1d', '1s ', 'abc', '1e3s']) {
    assert.equal(parseDurationMs(s), undefined, s);
  }
});

test('isGatewayDuration follows GEP-2257: no fractions, at most 4 parts of 5 digits', () => {
  assert.ok(isGatewayDuration('10s'));
  assert.ok(isGatewayDuration('1h30m'));
  assert.ok(isGatewayDuration('500ms'));
  assert.ok(isGatewayDuration('0s'));
  assert.ok(!isGatewayDuration('1.5s'));
  assert.ok(!isGatewayDuration('123456s'));
  assert.ok(!isGatewayDuration('1h1m1s1ms1s'));
  assert.ok(!isGatewayDuration('10us'));
});
