import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { covers, overlay, renderRootConfigMap, renderWaypoint, WAYPOINT_NODE_OPTIONS_TEXT, type KubeGateway, type KubeObject } from '../../src/controller/kube/waypoint-objects.js';
import { waypointStatus } from '../../src/controller/kube/gateway-status.js';
import { WAYPOINT_NODE_OPTIONS } from '../../src/waypoint/config.js';
import { parseWaypointConfig } from '../../src/waypoint/config.js';

const gw = (over: Partial<KubeGateway['metadata']> = {}, listeners = [{ name: 'mesh', port: 15008, protocol: 'HBONE' }]): KubeGateway => ({
  apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway',
  metadata: { name: 'waypoint', namespace: 'shop', labels: {}, annotations: {}, uid: 'uid-1', generation: 2, ...over },
  spec: { gatewayClassName: 'istio-waypoint', listeners },
});
const render = { image: 'ghcr.io/strait-mesh/strait:1.2.3', systemNamespace: 'strait-system', trustDomain: 'cluster.local', tokenAudience: 'strait-controller' };
type Container = { args: string[]; env: { name: string; value?: string }[]; image: string; readinessProbe: { httpGet: { port: number; path: string } } };
const containerOf = (d: KubeObject) => (d['spec'] as { template: { spec: { containers: Container[] } } }).template.spec.containers[0]!;
const podSpecOf = (d: KubeObject) => (d['spec'] as { template: { spec: Record<string, unknown> } }).template.spec;

describe('the objects of a waypoint Gateway', () => {
  it('owns its Deployment, Service and ServiceAccount through a controller ownerReference to the Gateway', () => {
    const o = renderWaypoint(gw(), render);
    for (const obj of [o.deployment, o.service, o.serviceAccount]) {
      assert.deepEqual(obj.metadata.ownerReferences, [{ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', name: 'waypoint', uid: 'uid-1', controller: true, blockOwnerDeletion: true }]);
      assert.equal(obj.metadata.namespace, 'shop');
      assert.equal(obj.metadata.labels?.['gateway.networking.k8s.io/gateway-name'], 'waypoint');
    }
    assert.equal(o.deployment.metadata.name, 'waypoint');
    assert.equal(o.service.metadata.name, 'waypoint');
    assert.equal(o.serviceAccount.metadata.name, 'waypoint');
  });

  it('runs `strait waypoint` with flags the waypoint command accepts, reaching the controller by its Service name', () => {
    const c = containerOf(renderWaypoint(gw(), render).deployment);
    assert.equal(c.image, 'ghcr.io/strait-mesh/strait:1.2.3');
    assert.equal(c.args[0], 'waypoint');
    // The kubelet expands $(POD_IP); everything else goes to the waypoint's own parser as is.
    const flags: Record<string, string> = {};
    for (let i = 1; i < c.args.length; i += 2) flags[c.args[i]!.slice(2).replace(/-([a-z])/g, (_, x: string) => x.toUpperCase())] = c.args[i + 1]!.replace('$(POD_IP)', '10.1.2.3');
    assert.deepEqual(Object.keys(flags).sort(), ['listenAddress', 'rootCert', 'serviceAccount', 'tokenFile', 'trustDomain', 'waypoint', 'xdsAddress']);
    assert.equal(flags['xdsAddress'], 'strait-controller.strait-system.svc:15012');
    assert.equal(flags['tokenFile'], '/var/run/secrets/tokens/strait-token');
    assert.equal(flags['rootCert'], '/var/run/secrets/strait/root-cert.pem');
    // The parser reads the token and root files: without them it must fail on those, not on a flag.
    assert.throws(() => parseWaypointConfig({}, flags), /token-file|\/var\/run\/secrets/);
  });

  it('gives the waypoint its V8 options, the same as the local mesh does', () => {
    const c = containerOf(renderWaypoint(gw(), render).deployment);
    assert.equal(WAYPOINT_NODE_OPTIONS_TEXT, WAYPOINT_NODE_OPTIONS.join(' '));
    assert.deepEqual(c.env.find((e) => e.name === 'NODE_OPTIONS'), { name: 'NODE_OPTIONS', value: WAYPOINT_NODE_OPTIONS.join(' ') });
  });

  it('mounts a projected token with the controller\'s audience and the root ConfigMap, and probes readiness on 15021', () => {
    const spec = podSpecOf(renderWaypoint(gw(), { ...render, tokenAudience: 'aud-x' }).deployment);
    const vols = spec['volumes'] as { name: string; projected?: { sources: { serviceAccountToken: { audience: string; expirationSeconds: number; path: string } }[] }; configMap?: { name: string } }[];
    assert.deepEqual(vols.find((v) => v.projected)?.projected?.sources[0]?.serviceAccountToken, { audience: 'aud-x', expirationSeconds: 3600, path: 'strait-token' });
    assert.deepEqual(vols.find((v) => v.configMap)?.configMap, { name: 'strait-ca-root' });
    assert.equal(spec['serviceAccountName'], 'waypoint');
    const c = containerOf(renderWaypoint(gw(), render).deployment);
    assert.deepEqual(c.readinessProbe.httpGet, { path: '/healthz/ready', port: 15021 });
  });

  it('uses the ServiceAccount the Gateway names in gateway.istio.io/service-account', () => {
    const o = renderWaypoint(gw({ annotations: { 'gateway.istio.io/service-account': 'wp-sa' } }), render);
    assert.equal(o.serviceAccount.metadata.name, 'wp-sa');
    assert.equal(podSpecOf(o.deployment)['serviceAccountName'], 'wp-sa');
    assert.ok(containerOf(o.deployment).args.join(' ').includes('--service-account wp-sa'));
  });

  it('exposes HBONE 15008 and each other listener port once', () => {
    const o = renderWaypoint(gw({}, [{ name: 'mesh', port: 15008, protocol: 'HBONE' }, { name: 'http', port: 8080, protocol: 'HTTP' }, { name: 'http2', port: 8080, protocol: 'HTTP' }]), render);
    const spec = o.service['spec'] as { ports: { name: string; port: number }[]; selector: Record<string, string>; type: string };
    assert.deepEqual(spec.ports.map((p) => [p.name, p.port]), [['mesh', 15008], ['http', 8080]]);
    assert.deepEqual(spec.selector, { 'gateway.networking.k8s.io/gateway-name': 'waypoint' });
    assert.equal(spec.type, 'ClusterIP');
  });

  it('puts the mesh root in a ConfigMap owned (not controlled) by the namespace\'s waypoints', () => {
    const cm = renderRootConfigMap('shop', 'PEM', [gw({ uid: 'b' }), gw({ name: 'other', uid: 'a' })]);
    assert.deepEqual(cm['data'], { 'root-cert.pem': 'PEM' });
    assert.deepEqual(cm.metadata.ownerReferences?.map((r) => [r.name, r.uid, r.controller]), [['other', 'a', undefined], ['waypoint', 'b', undefined]]);
    assert.equal(renderRootConfigMap('strait-system', 'PEM').metadata.ownerReferences, undefined);
  });
});

describe('comparing with what the cluster holds', () => {
  it('counts an object with the server\'s defaults added as unchanged, and a changed field as changed', () => {
    const desired = renderWaypoint(gw(), render).deployment;
    const fromServer = JSON.parse(JSON.stringify(desired)) as KubeObject;
    fromServer.metadata.resourceVersion = '42';
    fromServer.metadata.uid = 'dep-uid';
    const spec = fromServer['spec'] as Record<string, unknown> & { template: { spec: { containers: Record<string, unknown>[] } } };
    spec['replicas'] = 1;
    spec.template.spec.containers[0]!['terminationMessagePath'] = '/dev/termination-log';
    fromServer['status'] = { readyReplicas: 1 };
    assert.equal(covers(fromServer, desired), true);
    assert.equal(covers(fromServer, renderWaypoint(gw(), { ...render, image: 'other:1' }).deployment), false);
  });

  it('overlays ours on the server\'s object, keeping its resourceVersion, cluster IP and others\' labels', () => {
    const desired = renderWaypoint(gw(), render).service;
    const actual: KubeObject = { ...JSON.parse(JSON.stringify(desired)), metadata: { ...desired.metadata, resourceVersion: '7', labels: { team: 'a', 'gateway.networking.k8s.io/gateway-name': 'old' } } };
    (actual['spec'] as Record<string, unknown>)['clusterIP'] = '10.96.3.4';
    (actual['spec'] as Record<string, unknown>)['ports'] = [{ name: 'old', port: 1 }];
    const merged = overlay(actual, desired);
    assert.equal(merged.metadata.resourceVersion, '7');
    assert.equal(merged.metadata.labels?.['team'], 'a');
    assert.equal(merged.metadata.labels?.['gateway.networking.k8s.io/gateway-name'], 'waypoint');
    assert.equal((merged['spec'] as { clusterIP: string }).clusterIP, '10.96.3.4');
    assert.deepEqual((merged['spec'] as { ports: unknown }).ports, (desired['spec'] as { ports: unknown }).ports);
    assert.equal(covers(merged, desired), true);
  });
});

describe('a waypoint Gateway\'s status', () => {
  const NOW = '2025-01-01T00:00:00.000Z';
  const LATER = '2025-01-01T01:00:00.000Z';

  it('is Accepted and Programmed with the Service\'s cluster IP as its address, at the Gateway\'s generation', () => {
    const s = waypointStatus(gw(), { clusterIP: '10.96.0.20' }, NOW);
    assert.deepEqual(s.addresses, [{ type: 'IPAddress', value: '10.96.0.20' }]);
    assert.deepEqual(s.conditions, [
      { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'Resource accepted', observedGeneration: 2, lastTransitionTime: NOW },
      { type: 'Programmed', status: 'True', reason: 'Programmed', message: 'Resource programmed, assigned to service(s) waypoint.shop.svc.cluster.local:15008', observedGeneration: 2, lastTransitionTime: NOW },
    ]);
  });

  it('is not Programmed (AddressNotAssigned) until the Service has a cluster IP', () => {
    const s = waypointStatus(gw(), {}, NOW);
    assert.equal(s.addresses, undefined);
    assert.deepEqual(s.conditions?.map((c) => [c.type, c.status, c.reason]), [['Accepted', 'True', 'Accepted'], ['Programmed', 'False', 'AddressNotAssigned']]);
  });

  it('is computed the same again from the same facts (no write), keeping transition times until a status changes', () => {
    const first = waypointStatus(gw(), { clusterIP: '10.96.0.20' }, NOW);
    const again = waypointStatus({ ...gw(), status: first }, { clusterIP: '10.96.0.20' }, LATER);
    assert.deepEqual(again, first);
    const failed = waypointStatus({ ...gw(), status: first }, { failure: 'Deployment shop/waypoint exists and is not owned' }, LATER);
    assert.deepEqual(failed.conditions?.map((c) => [c.type, c.status, c.reason, c.lastTransitionTime]), [['Accepted', 'True', 'Accepted', NOW], ['Programmed', 'False', 'Invalid', LATER]]);
    // A failure to write does not take the address away (no flapping).
    assert.deepEqual(failed.addresses, [{ type: 'IPAddress', value: '10.96.0.20' }]);
  });

  it('keeps conditions of other types and follows a new generation', () => {
    const other = { type: 'example.com/Custom', status: 'True' as const, reason: 'X', message: 'y', lastTransitionTime: NOW };
    const s = waypointStatus({ ...gw({ generation: 5 }), status: { conditions: [other] } }, { clusterIP: '10.0.0.1' }, NOW);
    assert.deepEqual(s.conditions?.map((c) => c.type), ['Accepted', 'Programmed', 'example.com/Custom']);
    assert.ok(s.conditions?.slice(0, 2).every((c) => c.observedGeneration === 5));
  });
});
