/**
 * Services without a selector, whose endpoints come from EndpointSlices, through the real local mesh (`strait up`):
 * real ztunnels, real curl. An endpoint that is an enrolled pod is reached over HBONE with both identities; one
 * outside the mesh is reached in plain TCP (also by a waypoint); a slice edit moves the traffic. Addresses: 127.0.219.*.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { docs, namespace } from '../helpers/manifests.js';
import { TestMesh, appPod, node } from '../helpers/mesh.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually } from '../helpers/eventually.js';

const CLIENT = '127.0.219.1';
const SERVER = '127.0.219.2';
const EXTERNAL = '127.0.219.50';
const ID = (ns: string, sa: string) => `spiffe://cluster.local/ns/${ns}/sa/${sa}`;

const selectorless = (name: string, vip: string, labels: Record<string, string> = {}) => ({
  apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'apps', labels },
  spec: { clusterIP: vip, ports: [{ name: 'http', port: 80, targetPort: 80 }] },
});
const slice = (service: string, endpoints: { address: string; pod?: string }[], port: number) => ({
  apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
  metadata: { name: `${service}-1`, namespace: 'apps', labels: { 'kubernetes.io/service-name': service } },
  addressType: 'IPv4',
  endpoints: endpoints.map((e) => ({ addresses: [e.address], conditions: { ready: true }, ...(e.pod ? { targetRef: { kind: 'Pod', name: e.pod, namespace: 'apps' } } : {}) })),
  ports: [{ name: 'http', port, protocol: 'TCP' }],
});

describe('ztunnel: Services without a selector (EndpointSlices)', () => {
  const dir = tempDir('zt-slices');
  let mesh: TestMesh;
  let external: http.Server;
  const externalCalls: string[] = [];
  const write = (...extra: unknown[]) => writeFileSync(join(dir.path, 'mesh.yaml'), docs(
    namespace('apps', { 'istio.io/dataplane-mode': 'ambient' }),
    node('node-a', '127.0.219.101'),
    node('node-b', '127.0.219.102'),
    appPod('apps', 'client', 'node-a', CLIENT, 'client'),
    appPod('apps', 'server', 'node-b', SERVER, 'server'),
    selectorless('db', '127.0.219.200'),
    selectorless('legacy', '127.0.219.201'),
    selectorless('legacy-l7', '127.0.219.202', { 'istio.io/use-waypoint': 'waypoint' }),
    slice('legacy-l7', [{ address: EXTERNAL }], 9090),
    {
      apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'waypoint', namespace: 'apps' },
      spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }], addresses: [{ type: 'IPAddress', value: '127.0.219.150' }] },
    },
    ...extra,
  ));

  before(async () => {
    external = http.createServer((req, res) => { externalCalls.push(`${req.socket.remoteAddress} ${req.url}`); res.end('external\n'); });
    await new Promise<void>((r) => external.listen(9090, EXTERNAL, r));
    write(slice('db', [{ address: SERVER, pod: 'server' }], 8080), slice('legacy', [{ address: EXTERNAL }], 9090));
    mesh = await new TestMesh(dir.path, ['--controller-address', '127.0.219.254']).start();
  });
  after(async () => {
    await mesh?.stop();
    mesh?.cleanup();
    await new Promise((r) => external?.close(r));
    dir.remove();
  });

  it('reaches an enrolled pod listed in a slice over HBONE, with the identities of both sides', async () => {
    const r = await mesh.curl(CLIENT, 'node-a', 'http://db.apps/q');
    assert.equal(r.code, 0, r.stderr);
    const body = JSON.parse(r.stdout);
    assert.equal(body.pod, 'server');
    assert.equal(body.caller.identity, ID('apps', 'client'));
    const out = await eventually(() => mesh.logs('ztunnel/node-a').find((l) => l.msg === 'connection complete' && l.direction === 'outbound' && l['dst.service'] === 'db.apps.svc.cluster.local'), 5000, 'outbound access log');
    assert.equal(out['dst.identity'], ID('apps', 'server'));
    assert.equal(out['dst.workload'], 'server');
  });

  it('reaches an address outside the mesh in plain TCP at the slice\'s port', async () => {
    const r = await mesh.curl(CLIENT, 'node-a', 'http://legacy.apps/old');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'external\n');
    assert.ok(externalCalls.some((c) => c.endsWith(' /old')), externalCalls.join(', '));
    const out = await eventually(() => mesh.logs('ztunnel/node-a').find((l) => l.msg === 'connection complete' && l.direction === 'outbound' && l['dst.service'] === 'legacy.apps.svc.cluster.local'), 5000, 'outbound access log');
    assert.equal(out['dst.addr'], `${EXTERNAL}:9090`);
    assert.equal(out['dst.identity'], undefined, 'no mesh identity for an address outside the mesh');
  });

  it('lets a waypoint reach an address outside the mesh listed in a slice, in plain TCP', async () => {
    const r = await mesh.curlJson(CLIENT, 'node-a', 'http://legacy-l7.apps/via-waypoint');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.text, 'external\n');
    assert.ok(externalCalls.some((c) => c.endsWith(' /via-waypoint')), externalCalls.join(', '));
    const line = await eventually(() => mesh.logs('waypoint/apps/waypoint').find((l) => l.msg === 'request complete' && l.path === '/via-waypoint'), 5000, 'the waypoint access log');
    assert.equal(line.upstream, `${EXTERNAL}:9090`);
  });

  it('follows a slice edit: the endpoint moves, and an emptied slice refuses with no_endpoint', async () => {
    write(slice('db', [{ address: EXTERNAL }], 9090), slice('legacy', [], 9090));
    await eventually(async () => (await mesh.curl(CLIENT, 'node-a', 'http://db.apps/moved')).stdout === 'external\n', 10_000, 'db now answered by the external server');
    const r = await eventually(async () => { const x = await mesh.curl(CLIENT, 'node-a', 'http://legacy.apps/'); return x.code !== 0 ? x : undefined; }, 10_000, 'legacy refused');
    assert.notEqual(r.code, 0);
    const refused = await eventually(() => mesh.logs('ztunnel/node-a').find((l) => l.msg === 'connection refused' && l['dst.service'] === 'legacy.apps.svc.cluster.local'), 5000, 'the refusal in the access log');
    assert.equal(refused.reason, 'no_endpoint');
    assert.match(refused.error, /service apps\/legacy has no ready endpoint for port 80/);
  });
});
