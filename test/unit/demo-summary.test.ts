// The demo's summary from fixed counts: one aligned line per route, marks that say whether the mesh did
// what the policies say, and the reasons behind errors and refusals. Also the HTTP response parser.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { formatComponents, formatElapsed, formatSummary, routeMark, SummaryView, type ComponentLine } from '../../src/demo/summary.js';
import { emptyStats, type RouteStats } from '../../src/demo/traffic.js';
import { parseResponse } from '../../src/demo/http-get.js';

const CLIENT = 'spiffe://cluster.local/ns/shop/sa/client';
const WEB = 'spiffe://cluster.local/ns/shop/sa/web';
const DENIED = 'refused by policy (SOCKS5 0x02 connection not allowed by ruleset)';

function stats(route: string, expect: 'ok' | 'denied', s: Partial<RouteStats>): RouteStats {
  return { ...emptyStats(route, expect), ...s };
}

const ROUTES: RouteStats[] = [
  stats('client → web.shop', 'ok', { ok: 52, ratePerSec: 5, apps: { web: 52 }, versions: { v1: 52 }, pods: { 'web-1': 52 }, callerIdentities: { [CLIENT]: 52 } }),
  stats('client → catalog.backend', 'ok', { ok: 52, ratePerSec: 5, apps: { catalog: 52 }, versions: { v2: 26, v1: 26 }, pods: { 'catalog-v1': 26, 'catalog-v2': 26 }, callerIdentities: { [CLIENT]: 52 } }),
  stats('client → orders.backend', 'denied', { denied: 52, ratePerSec: 5, deniedReasons: { [DENIED]: 52 } }),
  stats('web → orders.backend', 'ok', { ok: 50, errors: 2, ratePerSec: 4.8, apps: { orders: 50 }, versions: { v1: 50 }, pods: { 'orders-1': 50 }, callerIdentities: { [WEB]: 50 }, errorMessages: { 'no HTTP response within 5000 ms': 2 } }),
];

describe('demo summary', () => {
  const lines = formatSummary({ elapsedMs: 10_400, routes: ROUTES, note: 'logs in /tmp/x' });

  it('says how long it has run and the note first', () => {
    assert.equal(lines[0], 'Strait demo · 10s · logs in /tmp/x');
  });

  it('writes one line per route with counts, rate, who answered and the caller as the destination saw it', () => {
    assert.equal(lines[1], `✓ client → web.shop         ok 52  denied  0  err 0  5.0/s  web v1 52              seen as ${CLIENT}`);
    assert.equal(lines[2], `✓ client → catalog.backend  ok 52  denied  0  err 0  5.0/s  catalog v1 26 / v2 26  seen as ${CLIENT}`);
    assert.equal(lines[3], `✓ client → orders.backend   ok  0  denied 52  err 0  5.0/s  —                      ${DENIED}`);
    assert.equal(lines[4], `✗ web → orders.backend      ok 50  denied  0  err 2  4.8/s  orders v1 50           seen as ${WEB}`);
  });

  it('aligns the columns of every route line', () => {
    const col = (needle: string) => new Set(lines.slice(1, 5).map((l) => l.indexOf(needle)));
    assert.equal(col(' ok ').size, 1);
    assert.equal(col('denied').size, 1);
    assert.equal(col('/s').size, 1);
  });

  it('lists the errors under the table, and ends with the legend', () => {
    assert.equal(lines[5], '  ! web → orders.backend: 2× no HTTP response within 5000 ms');
    assert.match(lines.at(-1)!, /^✓ as the policies say {2}✗ not as they say {2}· no answer yet/);
    assert.equal(lines.length, 7);
  });

  it('marks a route by whether every answer was what the policies say', () => {
    assert.equal(routeMark(stats('a', 'ok', {})), '·');
    assert.equal(routeMark(stats('a', 'ok', { ok: 3 })), '✓');
    assert.equal(routeMark(stats('a', 'denied', { ok: 1, denied: 3 })), '✗');
    assert.equal(routeMark(stats('a', 'denied', { denied: 3 })), '✓');
  });

  it('says when the destination saw no mesh identity, and splits mixed identities', () => {
    const [, line] = formatSummary({ elapsedMs: 0, routes: [stats('x → y', 'ok', { ok: 3, apps: { y: 3 }, versions: { v1: 3 }, callerIdentities: { '': 1, [CLIENT]: 2 } })] });
    assert.match(line!, new RegExp(`seen as ${CLIENT} 2, \\(no mesh identity\\) 1$`));
  });

  it('formats elapsed time in seconds, then minutes', () => {
    assert.equal(formatElapsed(59_999), '59s');
    assert.equal(formatElapsed(125_000), '2m05s');
  });

  it('appends plain blocks when not on a terminal, the last one marked final', () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (c: Buffer) => (text += c.toString()));
    const view = new SummaryView(out, () => ({ elapsedMs: 2000, routes: ROUTES.slice(0, 1) }), 60_000);
    view.start();
    view.stop();
    assert.doesNotMatch(text, /\x1b\[/);
    const blocks = text.trimEnd().split('\n\n');
    assert.equal(blocks.length, 2);
    assert.match(blocks[1]!, /^Strait demo · 2s · final\n/);
  });

  it('redraws in place on a terminal', () => {
    const out = Object.assign(new PassThrough(), { isTTY: true, columns: 500 });
    let text = '';
    out.on('data', (c: Buffer) => (text += c.toString()));
    const view = new SummaryView(out, () => ({ elapsedMs: 2000, routes: ROUTES.slice(0, 1) }), 60_000);
    view.start();
    view.stop();
    // Three lines (head, route, legend) were drawn, so the final block first moves up three lines and clears.
    assert.match(text, /\n\x1b\[3F\x1b\[0JStrait demo · 2s · final\n/);
  });
});

describe('demo summary: what each component costs', () => {
  const MiB = 1024 * 1024;
  const c = (name: string, pid: number | null, cpuPercent: number | null, rssMiB: number | null, extra: Partial<ComponentLine> = {}): ComponentLine =>
    ({ name, pid, status: 'running', restarts: 0, cpuPercent, rssBytes: rssMiB === null ? null : rssMiB * MiB, ...extra });

  it('shows the controller and each ztunnel with pid, CPU and memory, and the demo apps summed, aligned', () => {
    const lines = formatComponents([
      c('controller', 4242, 0.6, 84),
      c('ztunnel/node-a', 4250, 12.25, 75),
      c('ztunnel/node-b', 4260, 3, 72, { restarts: 2 }),
      c('app/shop/client-1/app:8080', 4300, 1, 60),
      c('app/shop/web-1/app:8080', 4301, 2.5, 61),
    ]);
    assert.deepEqual(lines, [
      'component        pid    cpu   memory',
      'controller      4242   0.6%   84 MiB',
      'ztunnel node-a  4250  12.3%   75 MiB',
      'ztunnel node-b  4260   3.0%   72 MiB  restarted 2×',
      '2 demo apps            3.5%  121 MiB',
    ]);
  });

  it('says a component is being restarted instead of showing numbers, and … before the first CPU figure', () => {
    const lines = formatComponents([c('controller', 1, null, 80), c('ztunnel/node-a', null, null, null, { status: 'restarting', restarts: 1 })]);
    assert.equal(lines[1], 'controller        1    …  80 MiB');
    assert.equal(lines[2], 'ztunnel node-a    —               restarting, restarted 1×');
  });

  it('appears in the summary between the routes and the legend', () => {
    const out = formatSummary({ elapsedMs: 1000, routes: ROUTES, components: [c('controller', 7, 1, 50)] });
    assert.equal(out[out.length - 3], 'component   pid   cpu  memory');
    assert.equal(out[out.length - 2], 'controller    7  1.0%  50 MiB');
    assert.match(out[out.length - 1]!, /^✓ as the policies say/);
  });
});

describe('demo HTTP response parsing', () => {
  it('reads a Content-Length body', () => {
    assert.deepEqual(parseResponse(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello')), { kind: 'response', status: 200, headers: { 'content-length': '5', 'x-a': 'b' }, body: 'hello' });
  });

  it('reads a chunked body', () => {
    const r = parseResponse(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n'));
    assert.equal(r.kind === 'response' ? r.body : r.kind, 'abcde');
  });

  it('says what is wrong with a truncated or foreign response', () => {
    assert.deepEqual(parseResponse(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello')), { kind: 'malformed', message: 'body truncated: 5 of 9 bytes' });
    assert.equal(parseResponse(Buffer.from('SSH-2.0-OpenSSH\r\n\r\n')).kind, 'malformed');
    assert.equal(parseResponse(Buffer.from('HTTP/1.1 200 OK\r\nContent-Le')).kind, 'malformed');
  });
});
