/**
 * The waypoint's configuration (config.ts), its local-mesh plan (addresses, service account), the pods `strait up`
 * writes for the controller, and the waypoint state's refusal of malformed compiled resources (a NACK keeps the old).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CertificateAuthority } from '../../src/identity/index.js';
import { parseWaypointConfig, DEFAULT_RETRY_BUFFER_BYTES } from '../../src/waypoint/config.js';
import { WaypointState } from '../../src/waypoint/waypoint-state.js';
import { planLocalMesh } from '../../src/local/plan.js';
import { listenAddresses, waypointPodsManifest } from '../../src/local/components.js';
import { parseManifests } from '../../src/common/model/parse.js';
import { TYPE_POLICY, TYPE_ROUTE } from '../../src/common/xds/resources.js';
import { docs, objectsOf, waypoint } from '../helpers/manifests.js';

describe('waypoint configuration', () => {
  let dir: string;
  let root: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'strait-wp-config-'));
    const ca = await CertificateAuthority.loadOrCreate({ dataDir: dir });
    root = join(dir, 'root-cert.pem');
    await writeFile(root, ca.rootCertPem);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('takes the Gateway from --waypoint (or STRAIT_WAYPOINT), its name as service account, and Istio\'s ports', () => {
    const c = parseWaypointConfig({ STRAIT_WAYPOINT: 'env/ignored' }, { waypoint: 'shop/waypoint', token: 't', rootCert: root });
    assert.equal(c.namespace, 'shop');
    assert.equal(c.name, 'waypoint');
    assert.equal(c.serviceAccount, 'waypoint');
    assert.deepEqual(c.ports, { hbone: 15008, admin: 15000, metrics: 15020, ready: 15021 });
    assert.equal(c.retryBufferBytes, DEFAULT_RETRY_BUFFER_BYTES);
    assert.equal(parseWaypointConfig({ STRAIT_WAYPOINT: 'a/b', STRAIT_SERVICE_ACCOUNT: 'sa1' }, { token: 't', rootCert: root }).serviceAccount, 'sa1');
  });

  it('refuses bad input naming the flag and the fix', () => {
    assert.throws(() => parseWaypointConfig({}, { token: 't', rootCert: root }), /pass --waypoint NAMESPACE\/NAME/);
    assert.throws(() => parseWaypointConfig({}, { waypoint: 'just-a-name', token: 't', rootCert: root }), /--waypoint must be NAMESPACE\/NAME, got "just-a-name"/);
    assert.throws(() => parseWaypointConfig({}, { waypoint: 'a/b', rootCert: root }), /waypoint-a-b\.token/);
    assert.throws(() => parseWaypointConfig({}, { waypoint: 'a/b', token: 't', rootCert: root, retryBuffer: 'lots' }), /--retry-buffer: "lots" must be a size/);
    assert.throws(() => parseWaypointConfig({}, { waypoint: 'a/b', token: 't', rootCert: root, listenAddress: 'localhost' }), /not an IP address/);
  });
});

describe('waypoints in the local mesh plan', () => {
  it('gives each waypoint Gateway its own loopback address (its own spec.addresses first) and keeps running ones', () => {
    const objs = objectsOf(docs(waypoint('b', 'wp'), waypoint('a', 'wp'), waypoint('c', 'pinned', { address: '127.0.101.1' })));
    const p = planLocalMesh(objs, { waypointPoolPrefix: '127.0.101.' });
    assert.deepEqual(p.waypoints.map((w) => [w.key, w.address, w.serviceAccount]), [['a/wp', '127.0.101.2', 'wp'], ['b/wp', '127.0.101.3', 'wp'], ['c/pinned', '127.0.101.1', 'pinned']]);
    const again = planLocalMesh(objs.filter((o) => o.metadata.namespace !== 'a'), { waypointPoolPrefix: '127.0.101.', previousWaypoints: new Map([['b/wp', '127.0.101.3']]) });
    assert.equal(again.waypoints.find((w) => w.key === 'b/wp')!.address, '127.0.101.3', 'a running waypoint keeps its address');
    const ports = listenAddresses('127.0.99.1', { nodes: [], apps: [], pods: [], waypoints: p.waypoints }).filter((a) => a.host === '127.0.101.1').map((a) => a.port);
    assert.deepEqual(ports.sort(), [15000, 15008, 15020, 15021]);
  });

  it('writes the pods the controller learns each waypoint\'s address and identity from, valid manifests', () => {
    const p = planLocalMesh(objectsOf(docs(waypoint('shop', 'waypoint'))), { waypointPoolPrefix: '127.0.101.' });
    const r = parseManifests(waypointPodsManifest(p.waypoints), 'waypoint-pods.yaml');
    assert.deepEqual(r.problems.filter((x) => x.severity === 'error'), []);
    const pod = r.objects[0]!.object as { kind: string; metadata: { labels: Record<string, string> }; spec: { serviceAccountName: string }; status: { podIP: string } };
    assert.equal(pod.kind, 'Pod');
    assert.equal(pod.metadata.labels['gateway.networking.k8s.io/gateway-name'], 'waypoint');
    assert.equal(pod.spec.serviceAccountName, 'waypoint');
    assert.equal(pod.status.podIP, '127.0.101.1');
  });
});

describe('waypoint state', () => {
  const subs = (s: WaypointState) => Object.fromEntries(s.subscriptions().map((x) => [x.typeUrl, x.apply]));
  const table = { service: 'shop/api', hostname: 'api.shop.svc.cluster.local', origin: { kind: 'default', objects: [] }, rules: [{ name: 'r', match: {}, action: { kind: 'forward', backends: [{ service: 'shop/api', weight: 1 }] } }] };

  it('holds route tables by service and policies by kind, and refuses a malformed push whole (NACK), keeping what it had', () => {
    const s = new WaypointState();
    const apply = subs(s);
    apply[TYPE_ROUTE]!({ typeUrl: TYPE_ROUTE, added: [{ name: 'shop/api', version: '1', body: table }], removed: [] } as never);
    assert.equal(s.routesFor('shop/api')?.rules.length, 1);
    assert.throws(() => apply[TYPE_ROUTE]!({ typeUrl: TYPE_ROUTE, added: [{ name: 'shop/x', version: '1', body: { service: 'shop/x', rules: [{ name: 'bad' }], origin: {} } }], removed: ['shop/api'] } as never), /rules\[0\] lacks name, match or action/);
    assert.equal(s.routesFor('shop/api')?.rules.length, 1, 'the old table stays');
    apply[TYPE_POLICY]!({ typeUrl: TYPE_POLICY, added: [{ name: 'backend/shop/api', version: '1', body: { type: 'backend', service: 'shop/api', origin: 'shop/dr', policy: {}, subsets: {} } }], removed: [] } as never);
    assert.equal(s.backendPolicy('shop/api')?.origin, 'shop/dr');
    assert.throws(() => apply[TYPE_POLICY]!({ typeUrl: TYPE_POLICY, added: [{ name: 'authz/x/y', version: '1', body: { type: 'authz', action: 'ALLOW' } }], removed: [] } as never), /needs action, scope and rules/);
    apply[TYPE_ROUTE]!({ typeUrl: TYPE_ROUTE, added: [], removed: ['shop/api'] } as never);
    assert.equal(s.routesFor('shop/api'), undefined);
  });
});

describe('the waypoint process and hostile paths', () => {
  it('matches a route regex with nested quantifiers against a hostile path in linear time, with the V8 settings the waypoint starts with', async () => {
    const { spawnSync } = await import('node:child_process');
    const router = new URL('../../src/waypoint/router.js', import.meta.url).href;
    const config = new URL('../../src/waypoint/config.js', import.meta.url).href;
    const script = `
      import { setFlagsFromString } from 'node:v8';
      const { WAYPOINT_V8_FLAGS } = await import(${JSON.stringify(config)});
      for (const f of WAYPOINT_V8_FLAGS) setFlagsFromString(f);
      const { matchRoute } = await import(${JSON.stringify(router)});
      const table = { service: 's/x', hostname: 'x', origin: { kind: 'VirtualService', objects: [] }, rules: [
        { name: 'r', match: { path: { type: 'regex', value: '/(a+)+b' } }, action: { kind: 'fail', status: 500, flag: 'NC', reason: 'x' } }] };
      const t = Date.now();
      const hit = matchRoute(table, { method: 'GET', path: '/' + 'a'.repeat(30), authority: 'x', port: 80, header: () => undefined });
      console.log(JSON.stringify({ hit: hit !== undefined, ms: Date.now() - t }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { hit: boolean; ms: number };
    assert.equal(out.hit, false);
    assert.ok(out.ms < 1000, `took ${out.ms} ms (exponential backtracking takes ~30 s here)`);
  });
});
