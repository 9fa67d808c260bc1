/**
 * The product's L7 routing examples (examples/l7/, issue 10) through a real `strait up` with real curl: the canary
 * VirtualService `api` and Bookinfo's `reviews-route`, weights measured over 1,000+ requests, HTTP/1.1 and h2c, and a
 * weight edited in the manifest directory followed live with no process restarted.
 * The manifests are examples/l7/ as written, with only the addresses moved into this file's range:
 * pods 127.0.11.x → 127.0.200.x, Service VIPs 127.0.21.x → 127.0.201.x, nodes 127.0.100.x → 127.0.203.1-2; the two
 * waypoints get 127.0.203.3 (default) and .4 (production) through Gateway spec.addresses; the controller 127.0.203.9.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { TestMesh, alive, type CurlBatchResult } from '../helpers/mesh.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually } from '../helpers/eventually.js';

const EXAMPLES = fileURLToPath(new URL('../../../examples/l7/', import.meta.url));
const WAYPOINT_ADDRESS: Record<string, string> = { default: '127.0.203.3', production: '127.0.203.4' };
const FRONTEND = '127.0.200.1';
/** Requests per weighted split: 90/10 over 1,000 has a standard deviation of 0.95 %, so ±3 % is over 3 sigma. */
const N = 1000;

/** examples/l7/*.yaml with the addresses moved (see the file comment), and each waypoint Gateway given its address. */
function copyExamples(to: string): void {
  for (const f of readdirSync(EXAMPLES).filter((n) => n.endsWith('.yaml'))) {
    let text = readFileSync(join(EXAMPLES, f), 'utf8')
      .replaceAll('127.0.11.', '127.0.200.').replaceAll('127.0.21.', '127.0.201.').replaceAll('127.0.100.', '127.0.203.');
    if (f === '05-waypoints.yaml') {
      text = text.split('\n---\n').map((doc) => {
        const ns = /namespace: (\S+)/.exec(doc)![1]!;
        return doc.replace('gatewayClassName: istio-waypoint', `gatewayClassName: istio-waypoint\n  addresses:\n    - type: IPAddress\n      value: ${WAYPOINT_ADDRESS[ns]}`);
      }).join('\n---\n');
      assert.equal(text.match(/type: IPAddress/g)?.length, 2, 'both waypoints got an address');
    }
    writeFileSync(join(to, f), text);
  }
}

/** Share of `version` in a batch's answers, after checking every request got a 200 from the mesh. */
function share(r: CurlBatchResult, version: string): number {
  assert.deepEqual(r.statuses, { 200: r.total }, `every request answered 200; stderr: ${r.stderr.slice(0, 500)}`);
  assert.equal((r.tally.v1 ?? 0) + (r.tally.v2 ?? 0), r.total, JSON.stringify(r.tally));
  return (r.tally[version] ?? 0) / r.total;
}

describe('the product\'s routing examples (examples/l7) through the waypoint', () => {
  const dir = tempDir('wp-examples');
  let mesh: TestMesh;

  before(async () => {
    copyExamples(dir.path);
    mesh = await new TestMesh(dir.path, ['--controller-address', '127.0.203.9']).start();
  });
  after(async () => {
    await mesh?.stop();
    mesh?.cleanup();
    dir.remove();
  });

  const waypoints = () => (mesh.readState() as unknown as { waypoints: Record<string, { pid: number; hbone: string }> }).waypoints;

  it('runs a waypoint for each namespace on the address its Gateway gives', () => {
    const w = waypoints();
    assert.equal(w['default/waypoint']?.hbone, '127.0.203.3:15008');
    assert.equal(w['production/waypoint']?.hbone, '127.0.203.4:15008');
  });

  it('VirtualService api: x-canary: true goes to v2 every time, over HTTP/1.1 and h2c', async () => {
    const h1 = await mesh.curlBatch(FRONTEND, 'node-a', 'http://api.default/canary', 100, { headers: { 'x-canary': 'true' } });
    assert.deepEqual(h1.tally, { v2: 100 }, JSON.stringify(h1.statuses));
    const h2 = await mesh.curlBatch(FRONTEND, 'node-a', 'http://api.default/canary', 50, { headers: { 'x-canary': 'true' }, http2: true });
    assert.deepEqual(h2.tally, { v2: 50 }, JSON.stringify(h2.statuses));
    const one = await mesh.curlH2(FRONTEND, 'node-a', 'http://api.default/canary', ['-H', 'x-canary: true']);
    assert.equal(one.httpVersion, '2', 'the client spoke h2c with the waypoint');
    assert.equal(one.body.version, 'v2');
    // The port is named "http": Istio sends HTTP/1.1 to the backend whatever the client spoke.
    assert.equal(one.body.protocol, 'HTTP/1.1');
  });

  it('VirtualService api: the match is exact — "True" and "true " are not the canary and get the 90/10 split', async () => {
    const r = await mesh.curlBatch(FRONTEND, 'node-a', 'http://api.default/', 200, { headersFor: (i) => ({ 'x-canary': i % 2 ? 'True' : 'truex' }) });
    assert.ok((r.tally.v1 ?? 0) > 150, `most went to v1: ${JSON.stringify(r.tally)}`);
  });

  it(`VirtualService api: without the header ${N} requests split 90/10 within ±3 % (HTTP/1.1)`, async () => {
    const r = await mesh.curlBatch(FRONTEND, 'node-a', 'http://api.default/split', N);
    const v2 = share(r, 'v2');
    assert.ok(Math.abs(v2 - 0.1) <= 0.03, `v2 got ${(v2 * 100).toFixed(1)} % of ${N} (want 10 ± 3)`);
    console.log(`api 90/10 over ${N} HTTP/1.1 requests: v2 ${(v2 * 100).toFixed(1)} % in ${r.durationMs} ms`);
  });

  it(`VirtualService api: without the header ${N} requests split 90/10 within ±3 % (h2c)`, async () => {
    const r = await mesh.curlBatch(FRONTEND, 'node-a', 'http://api.default/split-h2', N, { http2: true });
    const v2 = share(r, 'v2');
    assert.ok(Math.abs(v2 - 0.1) <= 0.03, `v2 got ${(v2 * 100).toFixed(1)} % of ${N} (want 10 ± 3)`);
    console.log(`api 90/10 over ${N} h2c requests: v2 ${(v2 * 100).toFixed(1)} % in ${r.durationMs} ms`);
  });

  it(`VirtualService reviews-route: end-user: jason sees v2 only; everyone else ${N} requests split 90/10 within ±3 %`, async () => {
    const jason = await mesh.curlBatch(FRONTEND, 'node-a', 'http://reviews.default:9080/reviews/1', 100, { headers: { 'end-user': 'jason' } });
    assert.deepEqual(jason.tally, { v2: 100 });
    const others = await mesh.curlBatch(FRONTEND, 'node-a', 'http://reviews.default:9080/reviews/1', N, { headersFor: (i): Record<string, string> => (i % 2 ? { 'end-user': 'alice' } : {}) });
    const v2 = share(others, 'v2');
    assert.ok(Math.abs(v2 - 0.1) <= 0.03, `v2 got ${(v2 * 100).toFixed(1)} % of ${N} (want 10 ± 3)`);
  });

  it('the access log names the rule each request matched', async () => {
    await mesh.curlJson(FRONTEND, 'node-a', 'http://api.default/which-rule', ['-H', 'x-canary: true']);
    const line = await eventually(() => mesh.logs('waypoint/default/waypoint').find((l) => l.msg === 'request complete' && l.path === '/which-rule'), 5000, 'access log line');
    assert.equal(line.route, 'VirtualService/default/api/http[0]');
    assert.equal(line.upstream_cluster, 'outbound|80|v2|api.default.svc.cluster.local');
    assert.equal(line.response_flags, '-');
  });

  it('a weight edited in the manifest directory is followed within seconds, with no process restarted', async () => {
    const before = mesh.readState();
    const pidsBefore = [...mesh.pids(before), ...Object.values(waypoints()).map((w) => w.pid)];
    const file = join(dir.path, '30-routing.yaml');
    const text = readFileSync(file, 'utf8');
    // The api VirtualService is the first document: 90/10 → 10/90.
    const api = text.indexOf('name: api\n');
    const edited = text.slice(0, api) + text.slice(api).replace('weight: 90', 'weight: @@').replace('weight: 10\n', 'weight: 90\n').replace('weight: @@', 'weight: 10');
    assert.notEqual(edited, text);
    const changedAt = Date.now();
    writeFileSync(file, edited);
    await eventually(async () => {
      const probe = await mesh.curlBatch(FRONTEND, 'node-a', 'http://api.default/probe', 40);
      return (probe.tally.v2 ?? 0) >= 30;
    }, 15_000, 'the split to follow the edit');
    const followedMs = Date.now() - changedAt;
    const r = await mesh.curlBatch(FRONTEND, 'node-a', 'http://api.default/after-edit', N);
    const v2 = share(r, 'v2');
    assert.ok(Math.abs(v2 - 0.9) <= 0.03, `v2 got ${(v2 * 100).toFixed(1)} % of ${N} after the edit (want 90 ± 3)`);
    // reviews-route (the same file, unchanged) still splits 90/10 towards v1.
    const reviews = await mesh.curlBatch(FRONTEND, 'node-a', 'http://reviews.default:9080/', 200);
    assert.ok((reviews.tally.v1 ?? 0) >= 150, JSON.stringify(reviews.tally));
    const pidsAfter = [...mesh.pids(), ...Object.values(waypoints()).map((w) => w.pid)];
    assert.deepEqual(pidsAfter, pidsBefore, 'no component was restarted');
    assert.ok(pidsAfter.every((p) => alive(p)));
    console.log(`weight edit followed in ${followedMs} ms`);
  });
});
