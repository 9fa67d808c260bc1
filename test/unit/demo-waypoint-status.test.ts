// What the demo reads of its waypoints: the outlier state of each cluster from a waypoint's /config_dump (fed here the
// snapshot the waypoint's own OutlierDetector makes), named by pod; asked over HTTP from a real server, and what it
// says when a waypoint cannot be asked.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { OutlierDetector } from '../../src/waypoint/upstream/outlier.js';
import { WaypointWatch, outliersOf } from '../../src/demo/waypoint-status.js';

const PODS: Record<string, string> = { '127.0.10.24:8080': 'inventory-1', '127.0.10.25:8080': 'inventory-2' };
const podAt = (e: string) => PODS[e];

/** A config_dump whose inventory cluster has ejected inventory-2 (3 consecutive 503s), as the waypoint builds it. */
function dump(now: { t: number }) {
  const d = new OutlierDetector({ consecutive5xxErrors: 3, intervalMs: 1_000, baseEjectionTimeMs: 10_000, maxEjectionPercent: 50 }, { now: () => now.t });
  d.retain(Object.keys(PODS));
  d.recordResult('127.0.10.24:8080', { status: 200 });
  for (let i = 0; i < 3; i++) d.recordResult('127.0.10.25:8080', { status: 503 });
  return {
    waypoint: { namespace: 'store', name: 'waypoint' },
    clusters: [
      { name: 'store/api:80/v1', policy: {}, endpoints: 1, active: {}, circuitBreaker: {} },
      { name: 'store/inventory:80', policy: {}, endpoints: 2, active: {}, circuitBreaker: {}, outlier: d.snapshot() },
    ],
  };
}

describe('outliersOf', () => {
  it('reads the ejected endpoints of each cluster with outlier detection, by pod, with when they come back', () => {
    const now = { t: 5_000 };
    assert.deepEqual(outliersOf('store/waypoint', dump(now), podAt), [{
      waypoint: 'store/waypoint', cluster: 'store/inventory:80', service: 'inventory.store', port: 80, ejectionsTotal: 1,
      endpoints: [
        { endpoint: '127.0.10.24:8080', pod: 'inventory-1', ejected: false, ejections: 0 },
        { endpoint: '127.0.10.25:8080', pod: 'inventory-2', ejected: true, reason: 'consecutive_5xx', untilMs: 15_000, ejections: 1 },
      ],
    }]);
  });

  it('names a subset, falls back to the address for an unknown pod, and ignores what is not shaped as expected', () => {
    const [v] = outliersOf('w', { clusters: [{ name: 'ns/svc:8080/v2', outlier: { hosts: [{ endpoint: '10.0.0.1:80', ejections: 2 }], ejected: [] } }] }, () => undefined);
    assert.deepEqual(v, { waypoint: 'w', cluster: 'ns/svc:8080/v2', service: 'svc.ns', port: 8080, subset: 'v2', ejectionsTotal: 2, endpoints: [{ endpoint: '10.0.0.1:80', pod: '10.0.0.1:80', ejected: false, ejections: 2 }] });
    for (const bad of [null, 'x', {}, { clusters: 'x' }, { clusters: [null, { name: 'no-port', outlier: { hosts: [] } }, { name: 'a/b:1', outlier: {} }] }]) {
      assert.deepEqual(outliersOf('w', bad, podAt), [], JSON.stringify(bad));
    }
  });
});

describe('WaypointWatch', () => {
  let server: Server;
  let admin = '';
  let asked = 0;
  before(async () => {
    server = createServer((req, res) => {
      asked++;
      if (req.url !== '/config_dump') return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(dump({ t: Date.now() })));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    admin = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  it('asks each waypoint\'s admin for /config_dump and keeps the outlier state of the last poll', async () => {
    const watch = new WaypointWatch(() => [{ key: 'store/waypoint', admin }], podAt);
    assert.deepEqual(watch.latest(), { outliers: [], errors: {} }, 'nothing before the first poll');
    await Promise.all([watch.poll(), watch.poll()]);
    assert.equal(asked, 1, 'a poll in flight is joined, not repeated');
    const s = watch.latest();
    assert.deepEqual(s.errors, {});
    assert.deepEqual(s.outliers.map((o) => [o.cluster, o.endpoints.filter((e) => e.ejected).map((e) => e.pod)]), [['store/inventory:80', ['inventory-2']]]);
    assert.ok(s.outliers[0]!.endpoints[1]!.untilMs! > Date.now(), 'ejected until a time to come');
  });

  it('says which waypoint could not be asked, and keeps none of its clusters', async () => {
    const closed = createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const gone = `127.0.0.1:${(closed.address() as AddressInfo).port}`;
    closed.close();
    const watch = new WaypointWatch(() => [{ key: 'store/waypoint', admin }, { key: 'other/waypoint', admin: gone }], podAt);
    await watch.poll();
    assert.equal(watch.latest().outliers.length, 1);
    assert.match(watch.latest().errors['other/waypoint'] ?? '', new RegExp(`^cannot ask waypoint other/waypoint at ${gone}: `));
  });
});
