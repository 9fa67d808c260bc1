/**
 * daemonset.yaml's RBAC covers every request the controller makes, and nothing more. Two real controller replicas,
 * started with the args and env of daemonset.yaml's Deployment, run against the API server double with RBAC
 * enforced from daemonset.yaml's own Roles, ClusterRoles and bindings, authenticated with a token of the
 * strait-system/strait-controller ServiceAccount. The test drives every path that calls the API (leader election,
 * the CA Secret, TokenReview of a ztunnel's projected token, waypoint objects and Gateway status, their repair and
 * removal, the source's list+watch of every kind), then reads the double's request log: no request was refused,
 * and every permission daemonset.yaml grants the controller was used by some request (least privilege).
 * Addresses: 127.0.210.*.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { startKubeApiServer, type KubeApiServer, type RequestLogEntry, type TokenReviewResult } from '../helpers/kube-apiserver.js';
import { grantsFor, installObjects, rbacOf, type ManifestObject } from '../helpers/install-manifest.js';
import { describePermission, refusedRequests, unusedPermissions } from '../helpers/rbac-usage.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually } from '../helpers/eventually.js';
import { metricValue } from '../helpers/metrics.js';
import { StraitProcess } from '../helpers/procs.js';
import { CaClient } from '../../src/identity/ca-client.js';
import { createKeyAndCsr } from '../../src/identity/index.js';
import { watchedKinds } from '../../src/controller/sources/kube/kinds.js';
import { DEFAULT_ROOT_NAMESPACE } from '../../src/controller/config.js';
import { DEFAULT_TOKEN_AUDIENCE } from '../../src/controller/kube/kube-config.js';
import { SYSTEM_NAMESPACE as SYS } from '../../src/cli/install/manifest.js';

const API_HOST = '127.0.210.1';
const REPLICAS = { 'strait-controller-aaaaa': '127.0.210.10', 'strait-controller-bbbbb': '127.0.210.11' } as const;
type Replica = keyof typeof REPLICAS;
const CONTROLLER_SA = { namespace: SYS, name: 'strait-controller' };
const CONTROLLER_USER = `system:serviceaccount:${SYS}:strait-controller`;
const ZTUNNEL_SA = { namespace: SYS, name: 'strait-ztunnel' };
/** The audience the ztunnels' projected tokens carry, and the controller asks TokenReview for. */
const AUDIENCE = DEFAULT_TOKEN_AUDIENCE;
/** Short lease timing, so the leader renews (updates the Lease) several times within the test. */
const TIMING = ['--lease-duration', '3s', '--renew-deadline', '2s', '--retry-period', '500ms'];
const GATEWAY = 'gateway.networking.k8s.io/v1';
const ZT_POD = 'strait-ztunnel-aaaaa';
/** A replica is ready once its source has synced (listed every kind) and it holds the CA root. */
const READY_MS = 15_000;

/** A JWT-shaped projected token: the double's review function, not a signature, decides whose it is. */
const ZT_TOKEN = ['e30', Buffer.from(JSON.stringify({ sub: ZT_POD, exp: Math.floor(Date.now() / 1000) + 3600 })).toString('base64url'), 'c2ln'].join('.');

const waypointGateway = (name: string) => ({
  apiVersion: GATEWAY, kind: 'Gateway', metadata: { name, namespace: 'apps' },
  spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] },
});

/** `strait-controller`'s container in daemonset.yaml: the args and env the test runs each replica with. */
function controllerContainer(objects: readonly ManifestObject[]) {
  const d = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'strait-controller') as any;
  assert.ok(d, 'daemonset.yaml has the strait-controller Deployment');
  assert.equal(d.spec.template.spec.serviceAccountName, CONTROLLER_SA.name);
  return d.spec.template.spec.containers.find((c: any) => c.name === 'controller') as { args: string[]; env: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[] };
}

describe('daemonset.yaml RBAC against the controller\'s real requests (two replicas, the API server double enforcing it)', () => {
  let api: KubeApiServer;
  const dir = tempDir('kube-rbac');
  const objects = installObjects();
  const controllerGrants = grantsFor(rbacOf(objects), CONTROLLER_SA);
  const replicas = new Map<Replica, { proc: StraitProcess; xds: string; admin: string; rootFile: string }>();
  /** Every controller process, ready or not, so that after() stops them all. */
  const started: StraitProcess[] = [];
  /** The request log of the scenario, before the tests that break the roles on purpose. */
  let scenario: RequestLogEntry[] = [];
  let ztPodUid = '';

  const review = (token: string, audiences: string[]): TokenReviewResult => {
    if (token !== ZT_TOKEN) return { authenticated: false, error: 'invalid bearer token' };
    const user = {
      username: `system:serviceaccount:${SYS}:${ZTUNNEL_SA.name}`, groups: ['system:serviceaccounts', `system:serviceaccounts:${SYS}`],
      extra: { 'authentication.kubernetes.io/pod-name': [ZT_POD], 'authentication.kubernetes.io/pod-uid': [ztPodUid] },
    };
    return { authenticated: true, user, audiences: [AUDIENCE].filter((a) => audiences.includes(a)) };
  };

  const start = async (name: Replica, token: string): Promise<void> => {
    const c = controllerContainer(objects);
    const replace: Record<string, string> = { '--xds-address': `${REPLICAS[name]}:0`, '--admin-address': `${REPLICAS[name]}:0`, '--data-dir': join(dir.path, name) };
    const args = c.args.map((a, i) => replace[c.args[i - 1] ?? ''] ?? a);
    const env: Record<string, string> = {};
    for (const e of c.env) {
      const field = e.valueFrom?.fieldRef?.fieldPath;
      if (e.value !== undefined) env[e.name] = e.value;
      else if (field === 'metadata.name') env[e.name] = name;
      else if (field === 'metadata.namespace') env[e.name] = SYS;
      else assert.fail(`daemonset.yaml gives the controller env ${e.name} from ${JSON.stringify(e.valueFrom)}, which this test does not provide`);
    }
    const kubeconfig = api.writeKubeconfig(join(dir.path, `${name}.kubeconfig`), { token });
    const proc = StraitProcess.start([...args, '--kubeconfig', kubeconfig, ...TIMING], env);
    started.push(proc);
    let ready;
    try {
      ready = await proc.waitFor((l) => l.msg === 'controller ready', READY_MS, `${name} ready`);
    } catch (err) {
      // A refused list or watch keeps the source from syncing: say which.
      throw new Error(`${String(err)}; requests refused meanwhile: ${JSON.stringify(refusedRequests(api.requests), null, 1)}`);
    }
    replicas.set(name, { proc, xds: ready['xds'] as string, admin: ready['admin'] as string, rootFile: ready['rootCert'] as string });
  };
  const isLeader = async (name: Replica) => metricValue(await (await fetch(`http://${replicas.get(name)!.admin}/metrics`)).text(), 'strait_controller_leader') === 1;
  const get = (apiVersion: string, kind: string, namespace: string, name: string) => api.get({ apiVersion, kind, namespace, name }) as any;
  const byController = (pred: (r: RequestLogEntry) => boolean) => api.requests.filter((r) => r.user === CONTROLLER_USER && (r.code ?? 0) < 300 && pred(r));

  before(async () => {
    // Dependents outlive a deleted Gateway for a while, as under a real garbage collector: the leader's own clean-up
    // (delete) runs first.
    api = await startKubeApiServer({ host: API_HOST, rbac: true, tokenReview: review, garbageCollectionDelayMs: 60_000 });
    api.loadRbac(objects);
    for (const ns of [SYS, DEFAULT_ROOT_NAMESPACE, 'apps']) api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, ...(ns === 'apps' ? { labels: { 'istio.io/dataplane-mode': 'ambient' } } : {}) } });
    api.put({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a' }, status: { addresses: [{ type: 'InternalIP', address: '127.0.210.100' }] } });
    ztPodUid = (api.put({
      apiVersion: 'v1', kind: 'Pod', metadata: { name: ZT_POD, namespace: SYS, labels: { 'app.kubernetes.io/name': 'strait-ztunnel' } },
      spec: { nodeName: 'node-a', serviceAccountName: ZTUNNEL_SA.name, containers: [{ name: 'ztunnel', image: 'strait' }] },
      status: { phase: 'Running', podIP: '127.0.210.100', podIPs: [{ ip: '127.0.210.100' }] },
    }) as any).metadata.uid;
    api.put({
      apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web', namespace: 'apps', labels: { app: 'web' } },
      spec: { nodeName: 'node-a', serviceAccountName: 'web', containers: [{ name: 'web', image: 'demo' }] },
      status: { phase: 'Running', podIP: '127.0.210.20', podIPs: [{ ip: '127.0.210.20' }] },
    });
    // Both replicas use the one ServiceAccount daemonset.yaml runs them as (each pod has its own token of it).
    await Promise.all((Object.keys(REPLICAS) as Replica[]).map((name) => start(name, api.addServiceAccountToken(CONTROLLER_SA.namespace, CONTROLLER_SA.name))));
  });

  after(async () => {
    await Promise.all(started.map((p) => p.stop(10_000)));
    await api?.close();
    dir.remove();
  });

  it('one replica leads through the Lease, renews it, and both use the CA root of the Secret', async () => {
    const leader = await eventually(async () => {
      for (const name of replicas.keys()) if (await isLeader(name)) return name;
      return undefined;
    }, 10_000, 'a leader');
    assert.equal(get('coordination.k8s.io/v1', 'Lease', SYS, 'strait-controller').spec.holderIdentity, leader);
    await eventually(() => byController((r) => r.resource === 'leases' && r.verb === 'update').length >= 2, 5_000, 'Lease renewals');
    const root = Buffer.from(get('v1', 'Secret', SYS, 'strait-ca').data['ca-cert.pem'], 'base64').toString();
    for (const r of replicas.values()) assert.equal(readFileSync(r.rootFile, 'utf8'), root);
  });

  it('a ztunnel\'s projected token is reviewed (TokenReview) and it gets a certificate for a pod of its node', async () => {
    for (const r of replicas.values()) {
      const ca = new CaClient({ address: r.xds, credentials: grpc.credentials.createSsl(readFileSync(r.rootFile)), metadata: () => ({ authorization: `Bearer ${ZT_TOKEN}`, 'x-strait-node': 'node-a' }) });
      try {
        const { csrPem } = await createKeyAndCsr();
        assert.ok((await ca.createCertificate(csrPem, 'spiffe://cluster.local/ns/apps/sa/web', 3600)).length >= 2);
      } finally {
        ca.close();
      }
    }
    assert.ok(byController((r) => r.resource === 'tokenreviews' && r.verb === 'create').length >= 2, 'each replica reviewed the token');
  });

  it('the leader makes a waypoint\'s objects and status, repairs edits to them, and removes them when the Gateway goes', async () => {
    const gw = api.put(waypointGateway('waypoint')) as any;
    await eventually(() => get(GATEWAY, 'Gateway', 'apps', 'waypoint').status?.conditions?.length && get('apps/v1', 'Deployment', 'apps', 'waypoint') && get('v1', 'Service', 'apps', 'waypoint') && get('v1', 'ServiceAccount', 'apps', 'waypoint') && get('v1', 'ConfigMap', 'apps', 'strait-ca-root'), 10_000, 'waypoint objects and status');
    // A second waypoint in the namespace co-owns its root ConfigMap: the leader updates the ConfigMap's owners.
    const gw2 = api.put(waypointGateway('waypoint-2')) as any;
    await eventually(() => get('v1', 'ConfigMap', 'apps', 'strait-ca-root').metadata.ownerReferences?.length === 2, 10_000, 'root ConfigMap owned by both waypoints');
    assert.deepEqual(get('v1', 'ConfigMap', 'apps', 'strait-ca-root').metadata.ownerReferences.map((o: any) => o.uid).sort(), [gw.metadata.uid, gw2.metadata.uid].sort());
    // Someone edits the Deployment (not watched) and the Service (watched): the Service's change brings a pass over
    // the waypoint, which puts both back.
    const dep = get('apps/v1', 'Deployment', 'apps', 'waypoint');
    const image = dep.spec.template.spec.containers[0].image;
    api.put({ ...dep, spec: { ...dep.spec, template: { ...dep.spec.template, spec: { ...dep.spec.template.spec, containers: [{ ...dep.spec.template.spec.containers[0], image: 'edited:by-hand' }] } } } });
    const svc = get('v1', 'Service', 'apps', 'waypoint');
    const ports = svc.spec.ports;
    api.put({ ...svc, spec: { ...svc.spec, ports: [{ name: 'edited', port: 1234, protocol: 'TCP' }] } });
    await eventually(() => get('apps/v1', 'Deployment', 'apps', 'waypoint').spec.template.spec.containers[0].image === image && isDeepStrictEqual(get('v1', 'Service', 'apps', 'waypoint').spec.ports, ports), 10_000, 'edits undone');
    // The Gateway goes: the leader deletes what it owned (the garbage collector would, later).
    api.delete({ apiVersion: GATEWAY, kind: 'Gateway', namespace: 'apps', name: 'waypoint' });
    await eventually(() => !get('apps/v1', 'Deployment', 'apps', 'waypoint') && !get('v1', 'Service', 'apps', 'waypoint') && !get('v1', 'ServiceAccount', 'apps', 'waypoint'), 10_000, 'waypoint objects deleted');
    assert.deepEqual(byController((r) => r.verb === 'delete').map((r) => `${r.resource}/${r.name}`).sort(), ['deployments/waypoint', 'serviceaccounts/waypoint', 'services/waypoint']);
  });

  it('the Kubernetes source listed and watched every kind it reads', async () => {
    for (const k of watchedKinds(DEFAULT_ROOT_NAMESPACE)) {
      const of = (verb: string) => (r: RequestLogEntry) => r.verb === verb && k.types.some((t) => t.group === r.group && t.resource === r.resource) && r.namespace === k.namespace;
      assert.ok(byController(of('list')).length >= 2, `both replicas listed ${k.id}`);
      await eventually(() => api.openWatches().filter((w) => w.user === CONTROLLER_USER && k.types.some((t) => t.group === w.group && t.resource === w.resource)).length >= 2, 5_000, `both replicas watching ${k.id}`);
    }
    scenario = [...api.requests];
  });

  it('no request was refused (every verb the controller calls is granted)', () => {
    assert.ok(scenario.length > 50, 'the scenario ran');
    assert.deepEqual(refusedRequests(scenario), []);
  });

  it('every permission daemonset.yaml grants the controller was used by a request (least privilege)', () => {
    assert.ok(scenario.length > 50 && controllerGrants.length > 0, 'the scenario ran, and daemonset.yaml grants the controller something');
    assert.deepEqual(unusedPermissions(controllerGrants, scenario, CONTROLLER_USER).map(describePermission), [], 'granted and never used: remove these from daemonset.yaml');
  });

  it('the ztunnel\'s ServiceAccount has no grants and made no request: it talks only to the controller', () => {
    assert.deepEqual(grantsFor(rbacOf(objects), ZTUNNEL_SA), []);
    // Why none is needed: its pods hold no credential for the API server, only a token for the controller's audience,
    // which the controller reviews (the TokenReviews above, made as the controller).
    const ds = objects.find((o) => o.kind === 'DaemonSet' && o.metadata.name === 'strait-ztunnel') as any;
    assert.equal(ds.spec.template.spec.serviceAccountName, ZTUNNEL_SA.name);
    assert.equal(ds.spec.template.spec.automountServiceAccountToken, false);
    const tokens = ds.spec.template.spec.volumes.flatMap((v: any) => v.projected?.sources ?? []).flatMap((s: any) => (s.serviceAccountToken ? [s.serviceAccountToken.audience] : []));
    assert.deepEqual(tokens, [AUDIENCE]);
    assert.deepEqual(scenario.filter((r) => r.user.endsWith(`:${ZTUNNEL_SA.name}`)).map((r) => `${r.method} ${r.path}`), []);
    assert.deepEqual(new Set(scenario.map((r) => r.user)), new Set([CONTROLLER_USER]), 'every request came from the controller');
  });

  it('the check names a grant that is never used (daemonset.yaml with patch on deployments added)', () => {
    const mutated = structuredClone(objects);
    const role = mutated.find((o) => o.kind === 'ClusterRole' && o.metadata.name === 'strait-controller')!;
    (role['rules'] as { resources: string[]; verbs: string[] }[]).find((r) => r.resources.includes('deployments'))!.verbs.push('patch');
    const unused = unusedPermissions(grantsFor(rbacOf(mutated), CONTROLLER_SA), scenario, CONTROLLER_USER).map(describePermission);
    assert.deepEqual(unused, ['patch deployments.apps (ClusterRoleBinding strait-controller → ClusterRole strait-controller)']);
  });

  it('the check names a verb the controller needs and lacks (the ClusterRole in the double without get on gateways)', async () => {
    const role = structuredClone(objects.find((o) => o.kind === 'ClusterRole' && o.metadata.name === 'strait-controller')!);
    const rule = (role['rules'] as { resources: string[]; verbs: string[] }[]).find((r) => r.resources.includes('gateways'))!;
    rule.verbs = rule.verbs.filter((v) => v !== 'get');
    const from = api.requests.length;
    api.loadRbac([role]);
    try {
      api.put(waypointGateway('refused'));
      await eventually(() => api.requests.slice(from).some((r) => r.code === 403 && r.name === 'refused'), 10_000, 'the leader\'s get of the Gateway refused');
      // The leader's get of the new Gateway, and of any other it reconciles meanwhile: nothing else is refused.
      const refused = refusedRequests(api.requests.slice(from));
      assert.ok(refused.some((line) => line.includes(' named refused ')), refused.join('\n'));
      for (const line of refused) assert.match(line, /^403 for system:serviceaccount:strait-system:strait-controller: get gateways\.gateway\.networking\.k8s\.io in namespace apps named [a-z0-9-]+ \(GET /);
    } finally {
      api.loadRbac(objects);
    }
  });
});
