/**
 * The leader's waypoint objects against the Kubernetes API server double: for a Gateway of class istio-waypoint a
 * Deployment, Service, ServiceAccount and root ConfigMap owned by it, the Gateway's status, no writes when nothing
 * changed, removal with the Gateway, objects of others left alone. The test plays the config source: it copies the
 * double's Gateways and Services into the store the reconciler reads.
 * Addresses: 127.0.217.2.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startKubeApiServer, type KubeApiServer } from '../helpers/kube-apiserver.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually } from '../helpers/eventually.js';
import { KubeClient, loadKubeConfig } from '../../src/common/kube/index.js';
import { kubeObjectApi } from '../../src/controller/kube/kube-client-ports.js';
import { WaypointReconciler } from '../../src/controller/kube/waypoint-reconciler.js';
import { ConfigStore } from '../../src/controller/store.js';
import { parseManifests } from '../../src/common/model/parse.js';
import { createRootLogger } from '../../src/common/log.js';

const HOST = '127.0.217.2';
const NS = 'shop';
const USER = 'system:serviceaccount:strait-system:strait-controller';
const log = createRootLogger({ component: 'test', level: (process.env['TEST_LOG_LEVEL'] ?? 'silent') as 'silent', format: 'json' });
const GW = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'waypoint', namespace: NS }, spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] } };

describe('waypoint objects made by the leader', () => {
  let api: KubeApiServer;
  const dir = tempDir('kube-waypoints');
  let client: KubeClient;
  const store = new ConfigStore();
  let leader = true;
  let reconciler: WaypointReconciler;
  /** The config source's job: the double's Gateways and Services into the store (a resync batch). */
  const sync = () => {
    const objs = [...api.list('gateway.networking.k8s.io/v1', 'Gateway'), ...api.list('v1', 'Service')];
    const parsed = parseManifests(objs.map((o) => JSON.stringify(o)).join('\n---\n'), 'double');
    store.apply('double', parsed.objects.map((o) => ({ type: 'upsert' as const, object: o })), Date.now(), { resync: true });
  };
  const get = (apiVersion: string, kind: string, name: string, namespace = NS) => api.get({ apiVersion, kind, namespace, name }) as any;
  const writes = () => api.requests.filter((r) => r.user === USER && !['get', 'list', 'watch'].includes(r.verb));

  before(async () => {
    api = await startKubeApiServer({ host: HOST });
    for (const ns of [NS, 'strait-system']) api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    client = new KubeClient(loadKubeConfig({ kubeconfig: api.writeKubeconfig(join(dir.path, 'ctl.kubeconfig'), { token: api.addServiceAccountToken('strait-system', 'strait-controller') }) }));
    reconciler = new WaypointReconciler({
      api: kubeObjectApi(client), store, isLeader: () => leader, gatewayClass: 'istio-waypoint', rootCertPem: '-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----\n',
      render: { image: 'ghcr.io/strait-mesh/strait:test', systemNamespace: 'strait-system', trustDomain: 'cluster.local', tokenAudience: 'strait-controller' },
      logger: log, resyncMs: 60_000,
    });
    reconciler.start();
  });
  after(async () => {
    await reconciler.close();
    client.close();
    await api.close();
    dir.remove();
  });

  it('creates the Deployment, Service, ServiceAccount and root ConfigMap, owned by the Gateway', async () => {
    const gw = api.put(GW) as any;
    sync();
    await eventually(() => get('v1', 'Service', 'waypoint'), 5000, 'the Service');
    await reconciler.idle();
    const uid = gw.metadata.uid;
    for (const [apiVersion, kind] of [['apps/v1', 'Deployment'], ['v1', 'Service'], ['v1', 'ServiceAccount']] as const) {
      const o = get(apiVersion, kind, 'waypoint');
      assert.ok(o, `${kind} created`);
      assert.deepEqual(o.metadata.ownerReferences, [{ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', name: 'waypoint', uid, controller: true, blockOwnerDeletion: true }], kind);
    }
    const cm = get('v1', 'ConfigMap', 'strait-ca-root');
    assert.match(cm.data['root-cert.pem'], /BEGIN CERTIFICATE/);
    assert.deepEqual(cm.metadata.ownerReferences.map((r: any) => r.uid), [uid]);
    assert.ok(get('v1', 'ConfigMap', 'strait-ca-root', 'strait-system'), 'the system namespace has the root too');
    const dep = get('apps/v1', 'Deployment', 'waypoint');
    assert.deepEqual(dep.spec.template.spec.containers[0].args.slice(0, 3), ['waypoint', '--waypoint', 'shop/waypoint']);
  });

  it('reports Accepted, then Programmed with the Service\'s cluster IP once the API server assigns it', async () => {
    let status = get('gateway.networking.k8s.io/v1', 'Gateway', 'waypoint').status;
    assert.deepEqual(status.conditions.map((c: any) => [c.type, c.status, c.reason]), [['Accepted', 'True', 'Accepted'], ['Programmed', 'False', 'AddressNotAssigned']]);
    assert.equal(status.conditions[0].observedGeneration, 1);
    // The double does not allocate cluster IPs: play the allocator.
    const svc = get('v1', 'Service', 'waypoint');
    api.put({ ...svc, spec: { ...svc.spec, clusterIP: '10.96.0.77', clusterIPs: ['10.96.0.77'] } });
    sync();
    await eventually(() => get('gateway.networking.k8s.io/v1', 'Gateway', 'waypoint').status.addresses, 5000, 'the address');
    status = get('gateway.networking.k8s.io/v1', 'Gateway', 'waypoint').status;
    assert.deepEqual(status.addresses, [{ type: 'IPAddress', value: '10.96.0.77' }]);
    assert.deepEqual(status.conditions.map((c: any) => [c.type, c.status, c.reason]), [['Accepted', 'True', 'Accepted'], ['Programmed', 'True', 'Programmed']]);
    assert.match(status.conditions[1].message, /assigned to service\(s\) waypoint\.shop\.svc\.cluster\.local:15008/);
  });

  it('writes nothing on a pass over an unchanged cluster', async () => {
    await reconciler.idle();
    const before = writes().length;
    reconciler.reconcileAll();
    await new Promise((r) => setTimeout(r, 50));
    await reconciler.idle();
    sync();
    await new Promise((r) => setTimeout(r, 300));
    await reconciler.idle();
    assert.deepEqual(writes().slice(before), []);
  });

  it('puts back what someone changed in its Deployment, and follows a changed Gateway', async () => {
    const dep = get('apps/v1', 'Deployment', 'waypoint');
    dep.spec.template.spec.containers[0].image = 'evil:latest';
    api.put(dep);
    reconciler.reconcileAll();
    await eventually(() => get('apps/v1', 'Deployment', 'waypoint').spec.template.spec.containers[0].image === 'ghcr.io/strait-mesh/strait:test', 5000, 'image restored');
    const gw = get('gateway.networking.k8s.io/v1', 'Gateway', 'waypoint');
    api.put({ ...gw, spec: { ...gw.spec, listeners: [...gw.spec.listeners, { name: 'http', port: 8080, protocol: 'HTTP' }] } });
    sync();
    await eventually(() => get('v1', 'Service', 'waypoint').spec.ports.some((p: any) => p.port === 8080), 5000, 'listener port on the Service');
    await eventually(() => get('gateway.networking.k8s.io/v1', 'Gateway', 'waypoint').status.conditions[0].observedGeneration === 2, 5000, 'observedGeneration 2');
    assert.equal(get('v1', 'Service', 'waypoint').spec.clusterIP, '10.96.0.77', 'the cluster IP is kept across the update');
  });

  it('leaves alone a Deployment it does not own, and says so in the Gateway\'s status', async () => {
    api.put({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'mine', namespace: NS }, spec: { selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'x', image: 'user/app' }] } } } });
    api.put({ ...GW, metadata: { name: 'mine', namespace: NS } });
    sync();
    await eventually(() => get('gateway.networking.k8s.io/v1', 'Gateway', 'mine')?.status?.conditions?.find((c: any) => c.type === 'Programmed')?.reason === 'Invalid', 5000, 'Programmed False/Invalid');
    const status = get('gateway.networking.k8s.io/v1', 'Gateway', 'mine').status;
    assert.match(status.conditions.find((c: any) => c.type === 'Programmed').message, /Deployment shop\/mine exists and is not owned by Gateway shop\/mine/);
    assert.equal(get('apps/v1', 'Deployment', 'mine').spec.template.spec.containers[0].image, 'user/app');
    api.delete({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', namespace: NS, name: 'mine' });
    sync();
    await reconciler.idle();
    assert.ok(get('apps/v1', 'Deployment', 'mine'), 'the user\'s Deployment survives the Gateway');
  });

  it('does not write while not the leader, and catches up when it becomes leader', async () => {
    leader = false;
    const before = writes().length;
    api.put({ ...GW, metadata: { name: 'later', namespace: NS } });
    sync();
    await new Promise((r) => setTimeout(r, 300));
    await reconciler.idle();
    assert.deepEqual(writes().slice(before), []);
    assert.equal(get('apps/v1', 'Deployment', 'later'), undefined);
    leader = true;
    reconciler.reconcileAll();
    await eventually(() => get('apps/v1', 'Deployment', 'later'), 5000, 'the Deployment once leader');
  });

  it('removes the objects when the Gateway is deleted', async () => {
    await reconciler.idle();
    api.delete({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', namespace: NS, name: 'waypoint' });
    sync();
    await eventually(() => !get('apps/v1', 'Deployment', 'waypoint') && !get('v1', 'Service', 'waypoint') && !get('v1', 'ServiceAccount', 'waypoint'), 5000, 'objects gone');
    // The ConfigMap stays while another waypoint of the namespace owns it.
    assert.ok(get('v1', 'ConfigMap', 'strait-ca-root'));
  });

  it('cleans up itself where no garbage collector runs', async () => {
    await reconciler.idle();
    // A cluster without GC: the Gateway goes, its dependents stay, until the reconciler sees the Gateway gone.
    const gw = get('gateway.networking.k8s.io/v1', 'Gateway', 'later');
    api.delete({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', namespace: NS, name: 'later' }, 'Orphan');
    assert.ok(get('apps/v1', 'Deployment', 'later'), 'orphaned, as without GC');
    // Orphaning strips the owner references; put them back to look like a cluster whose GC is off.
    for (const [apiVersion, kind] of [['apps/v1', 'Deployment'], ['v1', 'Service'], ['v1', 'ServiceAccount']] as const) {
      const o = get(apiVersion, kind, 'later');
      api.put({ ...o, metadata: { ...o.metadata, ownerReferences: [{ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', name: 'later', uid: gw.metadata.uid, controller: true, blockOwnerDeletion: true }] } });
    }
    sync();
    await eventually(() => !get('apps/v1', 'Deployment', 'later') && !get('v1', 'Service', 'later') && !get('v1', 'ServiceAccount', 'later'), 5000, 'objects deleted by the controller');
    assert.ok(writes().some((w) => w.verb === 'delete' && w.resource === 'deployments' && w.name === 'later'));
  });
});
