/**
 * The ztunnel near its file-descriptor limit: the limits it reports, when it sheds, how losses are counted and
 * summarised (issue 13). The end-to-end case runs a real ztunnel under prlimit (test/integration/ztunnel-fds.test.ts).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { FdGuard, fdLossOf, fdReserve, parseProcLimits, resolveFdLimits, shouldShed, countOpenFds } from '../../src/ztunnel/fd-guard.js';
import { raiseNofileLimit } from '../../src/ztunnel/capture/original-dst.js';
import { ZtunnelMetrics } from '../../src/ztunnel/metrics.js';

const PROC_LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 4096                 files
Max locked memory         8388608              8388608              bytes
`;

function capture() {
  const lines: Record<string, any>[] = [];
  const stream = new Writable({ write(chunk, _enc, cb) { lines.push(JSON.parse(String(chunk))); cb(); } });
  return { log: pino({ level: 'info' }, stream), lines };
}

describe('file descriptor limits', () => {
  it('reads both limits from /proc/<pid>/limits, "unlimited" as -1', () => {
    assert.deepEqual(parseProcLimits(PROC_LIMITS), { soft: 1024, hard: 4096 });
    assert.deepEqual(parseProcLimits(PROC_LIMITS.replace('4096 ', 'unlimited ')), { soft: 1024, hard: -1 });
    assert.equal(parseProcLimits('nothing here'), undefined);
  });

  it('reports what the addon raised; without it, what /proc says (warning when soft < hard); else unknown with a warning', () => {
    assert.deepEqual(resolveFdLimits({ before: 200, soft: 4096, hard: 4096 }, PROC_LIMITS), { soft: 4096, hard: 4096, softBefore: 200, source: 'setrlimit' });
    const proc = resolveFdLimits({ error: 'the capture addon is not built' }, PROC_LIMITS);
    assert.equal(proc.source, '/proc/self/limits');
    assert.equal(proc.soft, 1024);
    assert.match(proc.warning ?? '', /soft file descriptor limit \(1024\) is below the hard limit \(4096\) and cannot be raised: the capture addon is not built/);
    assert.equal(resolveFdLimits({ error: 'x' }, PROC_LIMITS.replace('1024 ', '4096 ')).warning, undefined, 'nothing to say when soft = hard');
    const unknown = resolveFdLimits({ error: 'the capture addon is not built' }, undefined);
    assert.equal(unknown.source, 'unknown');
    assert.equal(unknown.soft, undefined);
    assert.match(unknown.warning ?? '', /limits are unknown/);
  });

  it('raises the soft limit of this very process to its hard limit through the native addon', (t) => {
    const r = raiseNofileLimit();
    if ('error' in r) {
      if (process.env.CI === 'true') assert.fail(`the native addon must be built in CI: ${r.error}`);
      t.skip(r.error);
      return;
    }
    assert.equal(r.soft, r.hard);
    assert.deepEqual(parseProcLimits(`Max open files ${r.soft < 0 ? 'unlimited' : r.soft} ${r.hard < 0 ? 'unlimited' : r.hard}`), { soft: r.soft, hard: r.hard });
    const now = countOpenFds();
    assert.ok(now === undefined || now > 0);
  });

  it('keeps 5% of the limit in reserve, between 32 and 256 descriptors', () => {
    assert.equal(fdReserve(200), 32);
    assert.equal(fdReserve(1_500), 75);
    assert.equal(fdReserve(1_048_576), 256);
  });

  it('sheds only past the limit minus the reserve, and never when the limit is unknown or unlimited', () => {
    assert.equal(shouldShed(284, 300, 16), false);
    assert.equal(shouldShed(285, 300, 16), true);
    assert.equal(shouldShed(1e6, undefined, 16), false);
    assert.equal(shouldShed(1e6, -1, 16), false);
  });

  it('recognises EMFILE and ENFILE anywhere in an error\'s cause chain', () => {
    const errno = (code: string) => Object.assign(new Error(code), { code });
    assert.equal(fdLossOf(errno('EMFILE')), 'emfile');
    assert.equal(fdLossOf(new Error('outer', { cause: errno('ENFILE') })), 'enfile');
    assert.equal(fdLossOf(errno('ECONNREFUSED')), undefined);
  });
});

describe('the fd guard', () => {
  it('admits until the estimate reaches the reserve, then sheds, counting every shed connection', async () => {
    const metrics = new ZtunnelMetrics();
    const { log, lines } = capture();
    let counted = 0;
    const guard = new FdGuard({ limits: { soft: 300, hard: 300, source: 'setrlimit' }, metrics, log, counted: () => counted, countOpen: () => counted + 40, summaryIntervalMs: 60_000 });
    try {
      assert.equal(guard.reserve, 32);
      counted = 228; // 40 uncounted + 228 = 268 = 300 - 32
      assert.equal(guard.admit(), true);
      counted = 229;
      assert.equal(guard.admit(), false);
      assert.equal(guard.admit(), false);
      const text = await metrics.registry.metrics();
      assert.match(text, /strait_ztunnel_fd_exhausted_total\{op="accept",reason="reserve"\} 2/);
      assert.equal(lines.length, 1, 'one line at the first loss; the second waits for the summary');
      assert.equal(lines[0]!.accept_dropped, 1);
      assert.equal(lines[0]!.soft_limit, 300);
      assert.match(lines[0]!.msg, /out of file descriptors: connections are being dropped; raise the ztunnel's open-files limit/);
    } finally {
      guard.close();
    }
  });

  it('summarises losses in at most one line per interval, then goes quiet', async (t) => {
    // The guard's own interval timer, driven by the test: "then quiet" is checked over 2.5 intervals without a sleep.
    t.mock.timers.enable({ apis: ['setInterval'] });
    const metrics = new ZtunnelMetrics();
    const { log, lines } = capture();
    const guard = new FdGuard({ limits: { soft: 1000, hard: 1000, source: 'setrlimit' }, metrics, log, counted: () => 0, countOpen: () => 10, summaryIntervalMs: 100 });
    try {
      const emfile = Object.assign(new Error('accept EMFILE'), { code: 'EMFILE' });
      assert.equal(guard.observe('accept', emfile), true);
      for (let i = 0; i < 50; i++) guard.observe('connect', emfile);
      assert.equal(guard.observe('connect', new Error('other')), false);
      assert.equal(lines.length, 1);
      t.mock.timers.tick(150);
      assert.equal(lines.length, 2, 'one summary line for the 50 that followed');
      assert.equal(lines[1]!.connect_failed, 50);
      assert.deepEqual(lines[1]!.by_reason, { 'connect/emfile': 50 });
      t.mock.timers.tick(250);
      assert.equal(lines.length, 2, 'nothing more while nothing is lost');
      assert.match(await metrics.registry.metrics(), /strait_ztunnel_fd_exhausted_total\{op="connect",reason="emfile"\} 50/);
    } finally {
      guard.close();
    }
  });
});
