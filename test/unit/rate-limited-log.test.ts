import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { RateLimitedLog } from '../../src/common/rate-limited-log.js';

function capture(): { lines: Record<string, any>[]; logger: pino.Logger } {
  const lines: Record<string, any>[] = [];
  const sink = new Writable({ write(chunk, _enc, cb) { for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l)); cb(); } });
  return { lines, logger: pino({ level: 'info' }, sink) };
}

test('logs the first events of an interval one by one and the rest as one summary line by reason', async () => {
  const { lines, logger } = capture();
  const log = new RateLimitedLog({ logger, level: 'warn', msg: 'request refused', what: 'refused requests', burst: 2, intervalMs: 100 });
  for (let i = 0; i < 30; i++) log.record('wrong_token', { peer: `p${i}` });
  for (let i = 0; i < 20; i++) log.record('no_token', { peer: `q${i}` });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(lines.map((l) => [l.msg, l.reason, l.peer]), [['request refused', 'wrong_token', 'p0'], ['request refused', 'wrong_token', 'p1']]);
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(lines.length, 3);
  assert.equal(lines[2]!.msg, '48 more refused requests in the last 0.1 s (not logged one by one): wrong_token 28, no_token 20');
  assert.deepEqual(lines[2]!.reasons, { wrong_token: 28, no_token: 20 });
  assert.equal(lines[2]!.level, 40);
  // A new interval logs again at once.
  log.record('wrong_token', { peer: 'later' });
  assert.equal(lines.length, 4);
  assert.equal(lines[3]!.peer, 'later');
  log.close();
});

test('10,000 events in one interval make at most burst + 1 lines', async () => {
  const { lines, logger } = capture();
  const log = new RateLimitedLog({ logger, level: 'info', msg: 'proxy connected', what: 'connections', burst: 20, intervalMs: 50 });
  for (let i = 0; i < 10_000; i++) log.record('connected', { i });
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(lines.length, 21);
  assert.equal(lines[20]!.suppressed, 9_980);
  log.close();
});
