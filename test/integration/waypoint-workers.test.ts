/**
 * Waypoint data-plane workers (issue 14): a real `strait up --workers 2` (the controller, two ztunnels and the
 * waypoint each with two workers) serving HTTP through the waypoint. Addresses: 127.0.214.0/24 (pods .1-.20, VIP
 * .100, nodes .201-.202, the waypoint .210, the controller .254).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { docs } from '../helpers/manifests.js';
import { metricValue } from '../helpers/metrics.js';
import { TestMesh } from '../helpers/mesh.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually } from '../helpers/eventually.js';

const CLIENT = '127.0.214.1';
const VIP = '127.0.214.100';
const WAYPOINT = '127.0.214.210';

const objects = [
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { 'istio.io/dataplane-mode': 'ambient', 'istio.io/use-waypoint': 'waypoint' } } },
  { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a' }, status: { addresses: [{ type: 'InternalIP', address: '127.0.214.201' }] } },
  { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-b' }, status: { addresses: [{ type: 'InternalIP', address: '127.0.214.202' }] } },
  {
    apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'waypoint', namespace: 'shop' },
    spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }], addresses: [{ type: 'IPAddress', value: WAYPOINT }] },
  },
  ...([['client', 'node-a', CLIENT, 'client'], ['api', 'node-b', '127.0.214.11', 'api']] as const).map(([name, node, ip, app]) => ({
    apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'shop', labels: { app } },
    spec: { nodeName: node, serviceAccountName: app, containers: [{ name: 'app', image: 'strait/demo-app', ports: [{ containerPort: 8080 }] }] },
    status: { podIP: ip },
  })),
  { apiVersion: 'v1', kind: 'Service', metadata: { name: 'api', namespace: 'shop' }, spec: { clusterIP: VIP, selector: { app: 'api' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } },
];

describe('the waypoint with --workers 2 (strait up --workers 2)', () => {
  const dir = tempDir('waypoint-workers');
  let mesh: TestMesh;
  const waypointMetrics = async () => (await fetch(`http://${WAYPOINT}:15020/metrics`)).text();
  const dump = async () => (await fetch(`http://${WAYPOINT}:15000/config_dump`)).json() as Promise<any>;

  before(async () => {
    writeFileSync(join(dir.path, 'mesh.yaml'), docs(...objects));
    mesh = await new TestMesh(dir.path, ['--workers', '2', '--controller-address', '127.0.214.254']).start();
    await eventually(async () => (await fetch(`http://${WAYPOINT}:15021/healthz/ready`)).ok, 30_000, 'waypoint ready');
  });
  after(async () => {
    await mesh?.stop();
    mesh?.cleanup();
    dir.remove();
  });

  it('runs two waypoint workers with one xDS stream and one certificate request at the controller', async () => {
    const d = await dump();
    assert.equal(d.workers.length, 2);
    for (const w of d.workers) assert.equal(w.ready, true);
    assert.equal(d.certificate.identity, 'spiffe://cluster.local/ns/shop/sa/waypoint');
    const text = await (await fetch(`http://${mesh.state.controller.admin}/metrics`)).text();
    assert.equal(metricValue(text, 'pilot_xds', { kind: 'waypoint' }), 1, 'one waypoint stream');
    // Three identities in the mesh (client, api, the waypoint), each asked for once, whatever the workers.
    assert.equal(metricValue(text, 'citadel_server_csr_count'), 3);
  });

  it('serves requests through the workers, and the merged request metrics count every one', async () => {
    const before = metricValue(await waypointMetrics(), 'istio_requests_total', { reporter: 'waypoint' });
    const r = await mesh.curlBatch(CLIENT, 'node-a', `http://${VIP}/`, 60, { parallel: 30 });
    assert.equal(r.statuses[200], 60, JSON.stringify(r.statuses));
    const text = await waypointMetrics();
    assert.equal(metricValue(text, 'istio_requests_total', { reporter: 'waypoint' }) - before, 60);
    const tunnels = [1, 2].map((w) => metricValue(text, 'strait_worker_tunnels_total', { worker: String(w) }));
    assert.ok(tunnels[0]! + tunnels[1]! >= 1, `tunnels per worker: ${tunnels}`);
  });

  it('a waypoint worker killed with SIGKILL is started again and requests keep being served', async () => {
    const victim = (await dump()).workers[0] as { worker: number; pid: number };
    process.kill(victim.pid, 'SIGKILL');
    await eventually(async () => {
      const w = (await dump()).workers.find((x: { worker: number }) => x.worker === victim.worker);
      return w.ready && w.pid !== victim.pid;
    }, 20_000, 'the waypoint worker slot served by a new process');
    assert.equal(metricValue(await waypointMetrics(), 'strait_worker_restarts_total', { reason: 'signal' }), 1);
    // Pooled HBONE connections to the dead worker are gone from the ztunnels' pools once they see the close.
    await eventually(async () => (await mesh.curlBatch(CLIENT, 'node-a', `http://${VIP}/`, 10)).statuses[200] === 10, 10_000, 'requests served');
  });

  it('stops with the mesh: SIGTERM drains every waypoint worker and no process is left', async () => {
    const pids = [(await fetch(`http://${WAYPOINT}:15000/config_dump`).then((r) => r.headers.get('x-strait-pid'))), ...(await dump()).workers.map((w: { pid: number }) => String(w.pid))].map(Number);
    assert.equal(await mesh.stop(), 0);
    await eventually(() => pids.every((p) => !existsSync(`/proc/${p}`)), 10_000, 'the waypoint primary and workers gone');
  });
});
