// The demo's summary from fixed counts: an aligned L4 table and an L7 table (statuses, retries, splits, denials and the
// waypoint's outlier ejections under their route), marks that say whether the mesh did what the manifests say, and
// the reasons behind errors and refusals. Also the HTTP response parser.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { formatComponents, formatElapsed, formatSummary, outlierLine, routeMark, SummaryView, type ComponentLine } from '../../src/demo/summary.js';
import { emptyStats, type RouteStats } from '../../src/demo/traffic.js';
import type { Expectation, Layer } from '../../src/demo/routes.js';
import type { OutlierView } from '../../src/demo/waypoint-status.js';
import { parseResponse } from '../../src/demo/http-get.js';

const CLIENT = 'spiffe://cluster.local/ns/shop/sa/client';
const WEB = 'spiffe://cluster.local/ns/shop/sa/web';
const DENIED = 'refused by policy (SOCKS5 0x02)';

function stats(route: string, expect: Expectation, s: Partial<RouteStats>, layer: Layer = 'l4', label = route.split(' ')[2] ?? route): RouteStats {
  return { ...emptyStats(route, expect, layer, label), ...s };
}

const ROUTES: RouteStats[] = [
  stats('client → web.shop', 'ok', { ok: 52, ratePerSec: 5, apps: { web: 52 }, versions: { v1: 52 }, pods: { 'web-1': 52 }, callerIdentities: { [CLIENT]: 52 } }),
  stats('client → catalog.backend', 'ok', { ok: 52, ratePerSec: 5, apps: { catalog: 52 }, versions: { v2: 26, v1: 26 }, pods: { 'catalog-v1': 26, 'catalog-v2': 26 }, callerIdentities: { [CLIENT]: 52 } }),
  stats('client → orders.backend', 'denied', { denied: 52, ratePerSec: 5, deniedReasons: { [DENIED]: 52 } }),
  stats('web → orders.backend', 'ok', { ok: 50, errors: 2, ratePerSec: 4.8, apps: { orders: 50 }, versions: { v1: 50 }, pods: { 'orders-1': 50 }, callerIdentities: { [WEB]: 50 }, errorMessages: { 'no HTTP response within 5000 ms': 2 } }),
];

/** What the L7 routes of examples/demo see after about a minute. */
const L7: RouteStats[] = [
  stats('client → api.store', 'ok', { ok: 300, ratePerSec: 5, apps: { api: 300 }, versions: { v1: 271, v2: 29 }, pods: { 'api-v1': 271, 'api-v2': 29 }, statuses: { 200: 300 } }, 'l7'),
  stats('client → api.store x-canary: true', 'ok', { ok: 300, ratePerSec: 5, apps: { api: 300 }, versions: { v2: 300 }, pods: { 'api-v2': 300 }, statuses: { 200: 300 } }, 'l7'),
  stats('client → api.store DELETE /items/1', 'denied', { denied: 300, ratePerSec: 5, statuses: { 403: 300 }, deniedReasons: { 'HTTP 403 RBAC: access denied': 300 } }, 'l7'),
  stats('client → payments.store', 'ok', { ok: 300, ratePerSec: 5, apps: { payments: 300 }, versions: { v1: 300 }, pods: { 'payments-1': 300 }, statuses: { 200: 300 }, retried: { 200: 128 }, retries: 129 }, 'l7'),
  stats('client → inventory.store', 'outlier', {
    ok: 291, errors: 9, ratePerSec: 5, apps: { inventory: 291 }, versions: { v1: 291 }, pods: { 'inventory-1': 201, 'inventory-2': 90 },
    statuses: { 503: 9, 200: 291 }, podFailures: { 'inventory-2': 9 }, errorMessages: { 'HTTP 503 from inventory-2': 9 },
  }, 'l7'),
];

const NOW = 1_000_000;
const inventory = (ejected: boolean, ejections: number): OutlierView => ({
  waypoint: 'store/waypoint', cluster: 'store/inventory:80', service: 'inventory.store', port: 80, ejectionsTotal: ejections,
  endpoints: [
    { endpoint: '127.0.10.24:8080', pod: 'inventory-1', ejected: false, ejections: 0 },
    { endpoint: '127.0.10.25:8080', pod: 'inventory-2', ejected, ejections, ...(ejected ? { reason: 'consecutive_5xx', untilMs: NOW + 5_200 } : {}) },
  ],
});

describe('demo summary: the L4 routes', () => {
  const lines = formatSummary({ elapsedMs: 10_400, routes: ROUTES, note: 'logs in /tmp/x' });

  it('says how long it has run and the note first', () => {
    assert.equal(lines[0], 'Strait demo · 10s · logs in /tmp/x');
  });

  it('writes a header, then one line per route with counts, rate, who answered and the caller as the destination saw it', () => {
    assert.equal(lines[1], 'L4 · ztunnels               ok  denied  err   rate  answered by            caller, as the destination saw it');
    assert.equal(lines[2], `✓ client → web.shop         52       0    0  5.0/s  web v1 52              ${CLIENT}`);
    assert.equal(lines[3], `✓ client → catalog.backend  52       0    0  5.0/s  catalog v1 26 / v2 26  ${CLIENT}`);
    assert.equal(lines[4], `✓ client → orders.backend    0      52    0  5.0/s  —                      ${DENIED}`);
    assert.equal(lines[5], `✗ web → orders.backend      50       0    2  4.8/s  orders v1 50           ${WEB}`);
  });

  it('aligns the columns of every route line with the header', () => {
    // Numbers and rates end where their header ends.
    for (const h of ['ok', 'denied', 'err', 'rate']) {
      const end = lines[1]!.indexOf(` ${h} `) + h.length + 1;
      for (const l of lines.slice(2, 6)) assert.match(l.slice(end - 1, end + 1), /^[\d/s]{1}\s$|^s\s$/, `${h} in ${l}`);
    }
    assert.equal(new Set(lines.slice(1, 6).map((l) => l.indexOf('answered by') >= 0 ? l.indexOf('answered by') : l.search(/(web|catalog|orders) v1|—/))).size, 1);
  });

  it('lists the errors under the table, and ends with the legend', () => {
    assert.equal(lines[6], '  ! web → orders.backend: 2× no HTTP response within 5000 ms');
    assert.match(lines.at(-1)!, /^✓ as the manifests say {2}✗ not as they say {2}· no answer yet$/);
    assert.equal(lines.length, 8);
  });

  it('marks a route by whether every answer was what the manifests say', () => {
    assert.equal(routeMark(stats('a', 'ok', {})), '·');
    assert.equal(routeMark(stats('a', 'ok', { ok: 3 })), '✓');
    assert.equal(routeMark(stats('a', 'denied', { ok: 1, denied: 3 })), '✗');
    assert.equal(routeMark(stats('a', 'denied', { denied: 3 })), '✓');
  });

  it('says when the destination saw no mesh identity, and splits mixed identities', () => {
    const [, , line] = formatSummary({ elapsedMs: 0, routes: [stats('x → y', 'ok', { ok: 3, apps: { y: 3 }, versions: { v1: 3 }, callerIdentities: { '': 1, [CLIENT]: 2 } })] });
    assert.match(line!, new RegExp(`  ${CLIENT} 2, \\(no mesh identity\\) 1$`));
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
    // Four lines (head, table header, route, legend) were drawn, so the final block first moves up four lines and clears.
    assert.match(text, /\n\x1b\[4F\x1b\[0JStrait demo · 2s · final\n/);
  });
});

describe('demo summary: the L7 routes through the waypoint', () => {
  const lines = formatSummary({
    elapsedMs: 60_000, routes: [...ROUTES, ...L7], waypoints: ['store/waypoint'], nowMs: NOW,
    waypointStatus: { outliers: [inventory(true, 3)], errors: {} },
  });
  const at = lines.indexOf(lines.find((l) => l.startsWith('L7'))!);

  it('titles the table with the waypoint and shows per route the statuses, the retries, the rate and the split', () => {
    assert.deepEqual(lines.slice(at, at + 7), [
      'L7 · waypoint store/waypoint          answers          retried   rate  answered by',
      '✓ client → api.store                  200×300                0  5.0/s  api v1 271 (90%) / v2 29 (10%)',
      '✓ client → api.store x-canary: true   200×300                0  5.0/s  api v2 300',
      '✓ client → api.store DELETE /items/1  403×300                —  5.0/s  HTTP 403 RBAC: access denied',
      '✓ client → payments.store             200×300        128 → 200  5.0/s  payments v1 300',
      '✓ client → inventory.store            200×291 503×9          0  5.0/s  inventory-1 201 (69%) / inventory-2 90 (31%)',
      '    ⏏ outlier detection: inventory-2 ejected (consecutive 5xx), back in 6s · ejections so far: inventory-2 3×',
    ]);
  });

  it('does not list the 503s an outlier route expects from its failing pod as errors', () => {
    assert.equal(lines.some((l) => l.includes('! client → inventory.store')), false);
    assert.equal(lines.at(-1), '✓ as the manifests say  ✗ not as they say  · no answer yet   retried: answers after more than one try at the waypoint');
  });

  it('fits in 120 columns with the component table', () => {
    const all = formatSummary({
      elapsedMs: 60_000, routes: [...ROUTES, ...L7], waypoints: ['store/waypoint'], nowMs: NOW, waypointStatus: { outliers: [inventory(true, 3)], errors: {} },
      components: [{ name: 'waypoint/store/waypoint', pid: 12345, status: 'running', restarts: 0, cpuPercent: 9.2, rssBytes: 90 * 1024 * 1024 }],
    });
    for (const l of all) assert.ok([...l].length <= 120, `${[...l].length} columns: ${l}`);
    assert.ok(all.includes('waypoint store/waypoint  12345  9.2%  90 MiB'), all.join('\n'));
  });

  it('says an outlier is back in service, and how often each endpoint was ejected so far', () => {
    assert.equal(outlierLine(inventory(false, 4), NOW, false), '⏏ outlier detection: inventory-1, inventory-2 in service · ejections so far: inventory-2 4×');
    assert.equal(outlierLine(inventory(false, 0), NOW, false), '⏏ outlier detection: inventory-1, inventory-2 in service · no ejection yet');
    assert.equal(outlierLine(inventory(true, 1), NOW + 6_000, true),
      '⏏ outlier detection on inventory.store:80 (waypoint store/waypoint): inventory-2 ejected (consecutive 5xx), due back now · ejections so far: inventory-2 1×');
  });

  it('shows the outlier state of a cluster no route names below the tables, and a waypoint that could not be asked', () => {
    const out = formatSummary({ elapsedMs: 0, routes: L7.slice(0, 1), nowMs: NOW, waypointStatus: { outliers: [inventory(false, 0)], errors: { 'store/waypoint': 'cannot ask waypoint store/waypoint at 127.0.101.1:15000: ECONNREFUSED' } } });
    assert.ok(out.includes('  ⏏ outlier detection on inventory.store:80 (waypoint store/waypoint): inventory-1, inventory-2 in service · no ejection yet'), out.join('\n'));
    assert.ok(out.includes('  ! waypoint store/waypoint: cannot ask waypoint store/waypoint at 127.0.101.1:15000: ECONNREFUSED'), out.join('\n'));
    assert.equal(out[1], 'L7 · waypoint         answers  retried   rate  answered by', 'no waypoint named: the title says so');
  });

  it('marks an outlier route ✓ only when every failure is a 5xx a pod gave itself', () => {
    const inv = L7[4]!;
    assert.equal(routeMark(inv), '✓');
    assert.equal(routeMark({ ...inv, errors: 10, statuses: { 200: 291, 503: 9, failed: 1 }, errorMessages: { 'no HTTP response within 5000 ms': 1 } }), '✗', 'a timeout is the mesh\'s');
    assert.equal(routeMark({ ...inv, errors: 10, statuses: { 200: 291, 503: 10 }, podFailures: { 'inventory-2': 9 } }), '✗', 'a 503 with no pod behind it is the waypoint\'s');
    assert.equal(routeMark({ ...inv, ok: 0, apps: {}, versions: {}, pods: {}, statuses: { 503: 9 } }), '✗', 'nothing answered');
    const failing = formatSummary({ elapsedMs: 0, routes: [{ ...inv, errors: 10, statuses: { 200: 291, 503: 9, failed: 1 }, errorMessages: { 'HTTP 503 from inventory-2': 9, 'no HTTP response within 5000 ms': 1 } }] });
    assert.ok(failing.includes('  ! client → inventory.store: 1× no HTTP response within 5000 ms'), failing.join('\n'));
    assert.match(failing[2]!, /^✗ client → inventory\.store {2}200×291 503×9 failed×1 /);
  });

  it('splits by version when versions tell the pods apart, by pod otherwise, and counts retries that ended otherwise', () => {
    const [, , line] = formatSummary({ elapsedMs: 0, routes: [stats('client → payments.store', 'ok', {
      ok: 8, errors: 2, apps: { payments: 8 }, versions: { v1: 8 }, pods: { 'payments-1': 8 }, statuses: { 200: 8, 503: 2 }, retried: { 200: 3, 503: 2 }, retries: 11,
      podFailures: { 'payments-1': 2 }, errorMessages: { 'HTTP 503 from payments-1': 2 },
    }, 'l7')] });
    assert.match(line!, /200×8 503×2 {2}3 → 200, 2 → 503 {2}0\.0\/s {2}payments v1 8$/);
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
    assert.match(out[out.length - 1]!, /^✓ as the manifests say/);
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
