/**
 * The same-node fast path's two pure parts: which outbound decisions it may take (buildRequest's `sameNode`: an
 * HBONE workload of this node, reached directly, never through a waypoint), and the flag that turns it off.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServiceResource, WaypointRef, WorkloadResource } from '../../src/common/xds/resources.js';
import { ProxyState } from '../../src/dataplane/state/proxy-state.js';
import { CertificateAuthority } from '../../src/identity/index.js';
import { parseConfig } from '../../src/ztunnel/config.js';
import { buildRequest } from '../../src/ztunnel/proxy/request.js';

const id = (sa: string) => `spiffe://cluster.local/ns/apps/sa/${sa}`;

function workload(name: string, ip: string, node: string, o: Partial<WorkloadResource> = {}): WorkloadResource {
  return {
    uid: `apps/${name}`, name, namespace: 'apps', node, serviceAccount: name, identity: id(name), addresses: [ip],
    labels: { app: name }, protocol: 'HBONE', healthy: true, canonicalName: name, canonicalRevision: 'v1', namedPorts: {}, services: [], ...o,
  };
}

const WAYPOINT: WaypointRef = { namespace: 'apps', name: 'waypoint', identity: id('waypoint'), address: '10.0.9.9' };
const client = workload('client', '10.0.0.1', 'node-a');
const local = workload('local', '10.0.0.2', 'node-a', { services: ['apps/local'] });
const remote = workload('remote', '10.0.1.1', 'node-b');
const localTcp = workload('legacy', '10.0.0.3', 'node-a', { protocol: 'TCP' });
const localBound = workload('bound', '10.0.0.4', 'node-a', { waypoint: WAYPOINT });
const waypointPod = workload('waypoint', '10.0.9.9', 'node-a', { waypointFor: 'apps/waypoint' });

function svc(name: string, vip: string, w: WorkloadResource, waypoint?: WaypointRef): ServiceResource {
  return {
    name, namespace: 'apps', hostname: `${name}.apps.svc.cluster.local`, vips: [vip], ports: [{ port: 80, targetPort: 8080 }],
    endpoints: [{ workload: w.uid, address: w.addresses[0]!, ports: { '80': 8080 }, healthy: true }], ...(waypoint ? { waypoint } : {}),
  };
}

const state = new ProxyState();
state.applyWorkloads([client, local, remote, localTcp, localBound, waypointPod], []);
state.applyServices([svc('local', '10.96.0.1', local), svc('bound-svc', '10.96.0.2', local, WAYPOINT)], []);

describe('buildRequest marks same-node HBONE requests (the fast path\'s candidates)', () => {
  const rows: { name: string; from: string; to: string; port: number; sameNode: string | undefined; kind: string }[] = [
    { name: 'a pod of this node, by its address', from: '10.0.0.1', to: '10.0.0.2', port: 8080, sameNode: '10.0.0.2:8080', kind: 'hbone' },
    { name: 'a service whose endpoint is on this node: the endpoint\'s address and target port', from: '10.0.0.1', to: '10.96.0.1', port: 80, sameNode: '10.0.0.2:8080', kind: 'hbone' },
    { name: 'a pod of another node is not', from: '10.0.0.1', to: '10.0.1.1', port: 8080, sameNode: undefined, kind: 'hbone' },
    { name: 'a pod of this node bound to a waypoint is not (the waypoint is in the path)', from: '10.0.0.1', to: '10.0.0.4', port: 8080, sameNode: undefined, kind: 'hbone' },
    { name: 'a service bound to a waypoint is not, even with the waypoint on this node', from: '10.0.0.1', to: '10.96.0.2', port: 80, sameNode: undefined, kind: 'hbone' },
    { name: 'the waypoint itself reaching its local workload directly is', from: '10.0.9.9', to: '10.0.0.4', port: 8080, sameNode: '10.0.0.4:8080', kind: 'hbone' },
    { name: 'a pod of this node outside the mesh is plain TCP, never the fast path', from: '10.0.0.1', to: '10.0.0.3', port: 5432, sameNode: undefined, kind: 'passthrough' },
  ];
  for (const r of rows) {
    it(r.name, () => {
      const d = buildRequest(state, 'node-a', r.from, { host: r.to, port: r.port }, { pick: () => 0 });
      assert.equal(d.kind, r.kind);
      const same = d.kind === 'hbone' && d.sameNode ? `${d.sameNode.host}:${d.sameNode.port}` : undefined;
      assert.equal(same, r.sameNode);
      if (d.kind === 'hbone' && d.sameNode) assert.equal(d.authority, same, 'the fast path asks the inbound side for what the CONNECT would');
    });
  }
});

describe('--same-node-fast-path / STRAIT_SAME_NODE_FAST_PATH', () => {
  let dir: string;
  let base: { node: string; token: string; rootCert: string };
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'strait-zt-fastpath-'));
    const ca = await CertificateAuthority.loadOrCreate({ dataDir: dir });
    await writeFile(join(dir, 'root.pem'), ca.rootCertPem);
    base = { node: 'node-a', token: 't', rootCert: join(dir, 'root.pem') };
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('is on by default, off with STRAIT_SAME_NODE_FAST_PATH=false, and the flag wins over the environment', () => {
    assert.equal(parseConfig({}, base).sameNodeFastPath, true);
    assert.equal(parseConfig({ STRAIT_SAME_NODE_FAST_PATH: 'false' }, base).sameNodeFastPath, false);
    assert.equal(parseConfig({ STRAIT_SAME_NODE_FAST_PATH: 'true' }, base).sameNodeFastPath, true);
    assert.equal(parseConfig({ STRAIT_SAME_NODE_FAST_PATH: 'false' }, { ...base, sameNodeFastPath: true }).sameNodeFastPath, true);
    assert.equal(parseConfig({ STRAIT_SAME_NODE_FAST_PATH: 'true' }, { ...base, sameNodeFastPath: false }).sameNodeFastPath, false);
  });

  it('names a value that is neither true nor false', () => {
    assert.throws(() => parseConfig({ STRAIT_SAME_NODE_FAST_PATH: 'off' }, base), { code: 'STRAIT_ERR_CONFIG', message: /STRAIT_SAME_NODE_FAST_PATH: "off" must be true or false/ });
  });
});
