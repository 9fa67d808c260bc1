/**
 * Two real `strait controller --source kubernetes` replicas against the Kubernetes API server double: one leads and
 * alone writes, both serve one CA root kept in a Secret, proxies authenticate with projected ServiceAccount tokens
 * (TokenReview with the audience, node authorization from the pod store) over the real gRPC door, the leader makes
 * and removes a waypoint's objects, and a kill -9 of the leader hands leadership over within the lease time.
 * Each replica has its own API credentials, so the double's request log tells their requests apart.
 * Addresses: 127.0.218.*.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import tls from 'node:tls';
import { join } from 'node:path';
import { startKubeApiServer, type KubeApiServer, type TokenReviewResult } from '../helpers/kube-apiserver.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually } from '../helpers/eventually.js';
import { metricValue } from '../helpers/metrics.js';
import { RawAdsStream, wireNode } from '../helpers/xds.js';
import { STRAIT_BIN, StraitProcess } from '../helpers/procs.js';
import { ZTUNNEL_NODE_OPTIONS } from '../../src/ztunnel/config.js';
import { CaClient } from '../../src/identity/ca-client.js';
import { createKeyAndCsr } from '../../src/identity/index.js';

const API_HOST = '127.0.218.1';
const CTL = { 'ctl-a': '127.0.218.10', 'ctl-b': '127.0.218.11' } as const;
type Replica = keyof typeof CTL;
const ZT_ADDR = '127.0.218.100';
const SYS = 'strait-system';
const AUDIENCE = 'strait-controller';
const TIMING = ['--lease-duration', '3s', '--renew-deadline', '2s', '--retry-period', '500ms'];
const LEASE_MS = 3000;
const RETRY_MS = 500;

/** A JWT-shaped projected token (the double's review function, not a signature, decides what it is). */
const projected = (name: string) => ['e30', Buffer.from(JSON.stringify({ sub: name, exp: Math.floor(Date.now() / 1000) + 3600 })).toString('base64url'), 'c2ln'].join('.');
const TOKENS = {
  ztA: projected('zt-a'),
  ztWrongAudience: projected('zt-a-api-audience'),
  notPodBound: projected('zt-secret-token'),
};

interface Running { proc: StraitProcess; xds: string; admin: string; rootFile: string; user: string }

describe('controller replicas on Kubernetes (real processes against the API server double)', () => {
  let api: KubeApiServer;
  const dir = tempDir('kube-replicas');
  const replicas = new Map<Replica, Running>();
  let ztunnel: StraitProcess | undefined;
  let ztPodUid = '';

  const review = (token: string, audiences: string[]): TokenReviewResult => {
    const ztUser = { username: `system:serviceaccount:${SYS}:strait-ztunnel`, groups: ['system:serviceaccounts', `system:serviceaccounts:${SYS}`] };
    const bound = { ...ztUser, extra: { 'authentication.kubernetes.io/pod-name': ['strait-ztunnel-aaaaa'], 'authentication.kubernetes.io/pod-uid': [ztPodUid] } };
    const answer = (user: TokenReviewResult['user'], tokenAudiences: string[]) => ({ authenticated: true, user, audiences: tokenAudiences.filter((a) => audiences.includes(a)) });
    if (token === TOKENS.ztA) return answer(bound, [AUDIENCE]);
    if (token === TOKENS.ztWrongAudience) return answer(bound, ['https://kubernetes.default.svc.cluster.local']);
    if (token === TOKENS.notPodBound) return answer(ztUser, [AUDIENCE]);
    return { authenticated: false, error: 'invalid bearer token' };
  };

  const start = async (name: Replica): Promise<Running> => {
    const token = api.addServiceAccountToken(SYS, `controller-${name}`);
    const kubeconfig = api.writeKubeconfig(join(dir.path, `${name}.kubeconfig`), { token });
    const data = join(dir.path, `data-${name}`);
    const proc = StraitProcess.start(['controller', '--source', 'kubernetes', '--kubeconfig', kubeconfig, '--data-dir', data,
      '--xds-address', `${CTL[name]}:0`, '--admin-address', `${CTL[name]}:0`, '--pod-name', name, '--system-namespace', SYS,
      '--waypoint-image', 'ghcr.io/strait-mesh/strait:test', ...TIMING]);
    const ready = await proc.waitFor((l) => l.msg === 'controller ready', 30_000, `${name} ready`);
    const r = { proc, xds: ready['xds'] as string, admin: ready['admin'] as string, rootFile: ready['rootCert'] as string, user: `system:serviceaccount:${SYS}:controller-${name}` };
    replicas.set(name, r);
    return r;
  };
  const metrics = async (name: Replica) => (await fetch(`http://${replicas.get(name)!.admin}/metrics`)).text();
  const isLeader = async (name: Replica) => metricValue(await metrics(name), 'strait_controller_leader') === 1;
  const leaderNow = async (): Promise<Replica | undefined> => {
    const leading: Replica[] = [];
    for (const [name, r] of replicas) if (r.proc.child.exitCode === null && r.proc.child.signalCode === null && (await isLeader(name))) leading.push(name);
    assert.ok(leading.length <= 1, `two leaders at once: ${leading.join(', ')}`);
    return leading[0];
  };
  const get = (apiVersion: string, kind: string, namespace: string, name: string) => api.get({ apiVersion, kind, namespace, name }) as any;
  /** Writes (anything but get/list/watch) the replica made, apart from the Lease it competes for. */
  const writesBy = (name: Replica) => api.requests.filter((r) => r.user === replicas.get(name)!.user && !['get', 'list', 'watch'].includes(r.verb) && r.resource !== 'leases' && r.resource !== 'tokenreviews');
  const md = (token: string, node: string) => {
    const m = new grpc.Metadata();
    m.set('authorization', `Bearer ${token}`);
    m.set('x-strait-node', node);
    return m;
  };
  const credentials = () => grpc.credentials.createSsl(Buffer.from(readFileSync(replicas.get('ctl-a')!.rootFile)));

  before(async () => {
    api = await startKubeApiServer({ host: API_HOST, tokenReview: review });
    for (const ns of [SYS, 'apps']) api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, ...(ns === 'apps' ? { labels: { 'istio.io/dataplane-mode': 'ambient' } } : {}) } });
    for (const node of ['node-a', 'node-b']) api.put({ apiVersion: 'v1', kind: 'Node', metadata: { name: node }, status: { addresses: [{ type: 'InternalIP', address: node === 'node-a' ? ZT_ADDR : '127.0.218.101' }] } });
    const zt = api.put({
      apiVersion: 'v1', kind: 'Pod', metadata: { name: 'strait-ztunnel-aaaaa', namespace: SYS, labels: { 'app.kubernetes.io/name': 'strait-ztunnel' } },
      spec: { nodeName: 'node-a', serviceAccountName: 'strait-ztunnel', containers: [{ name: 'ztunnel', image: 'strait' }] },
      status: { phase: 'Running', podIP: ZT_ADDR, podIPs: [{ ip: ZT_ADDR }] },
    }) as any;
    ztPodUid = zt.metadata.uid;
    api.put({
      apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web', namespace: 'apps', labels: { app: 'web' } },
      spec: { nodeName: 'node-a', serviceAccountName: 'web', containers: [{ name: 'web', image: 'demo' }] },
      status: { phase: 'Running', podIP: '127.0.218.20', podIPs: [{ ip: '127.0.218.20' }] },
    });
    api.put({
      apiVersion: 'v1', kind: 'Pod', metadata: { name: 'db', namespace: 'apps', labels: { app: 'db' } },
      spec: { nodeName: 'node-b', serviceAccountName: 'db', containers: [{ name: 'db', image: 'demo' }] },
      status: { phase: 'Running', podIP: '127.0.218.21', podIPs: [{ ip: '127.0.218.21' }] },
    });
    await Promise.all([start('ctl-a'), start('ctl-b')]);
  });

  after(async () => {
    await ztunnel?.stop(15_000);
    for (const r of replicas.values()) await r.proc.stop(10_000);
    await api?.close();
    dir.remove();
  });

  it('exactly one replica leads, and keeps leading', async () => {
    const leader = await eventually(() => leaderNow(), 10_000, 'a leader');
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(await leaderNow(), leader);
    }
    const lease = get('coordination.k8s.io/v1', 'Lease', SYS, 'strait-controller');
    assert.equal(lease.spec.holderIdentity, leader);
    const syncz = await (await fetch(`http://${replicas.get(leader)!.admin}/debug/syncz`)).json() as { leadership: { leader: boolean; holder: string } };
    assert.deepEqual([syncz.leadership.leader, syncz.leadership.holder], [true, leader]);
  });

  it('both replicas sign with the one CA root kept in the Secret', async () => {
    const secret = get('v1', 'Secret', SYS, 'strait-ca');
    assert.ok(secret, 'the leader created the CA Secret');
    const rootInSecret = Buffer.from(secret.data['ca-cert.pem'], 'base64').toString();
    for (const r of replicas.values()) assert.equal(readFileSync(r.rootFile, 'utf8'), rootInSecret);
    assert.equal(api.requests.filter((r) => r.resource === 'secrets' && ['update', 'patch', 'delete'].includes(r.verb)).length, 0, 'never overwritten');
    // Proxies in the cluster dial the controller's Service by name: its certificate carries those names.
    for (const r of replicas.values()) {
      for (const servername of [`strait-controller.${SYS}.svc`, `strait-controller.${SYS}.svc.cluster.local`]) {
        const [host, port] = [r.xds.slice(0, r.xds.lastIndexOf(':')), Number(r.xds.slice(r.xds.lastIndexOf(':') + 1))];
        const sock = tls.connect({ host, port, servername, ca: rootInSecret, ALPNProtocols: ['h2'] });
        await once(sock, 'secureConnect');
        assert.equal(sock.authorized, true, servername);
        sock.destroy();
      }
    }
    // The root ConfigMap the ztunnels mount.
    await eventually(() => get('v1', 'ConfigMap', SYS, 'strait-ca-root'), 10_000, 'root ConfigMap');
    assert.equal(get('v1', 'ConfigMap', SYS, 'strait-ca-root').data['root-cert.pem'], rootInSecret);
  });

  it('a ztunnel with its pod\'s projected token connects for the node its pod runs on, and gets certificates there', async () => {
    const tokenFile = join(dir.path, 'zt-token');
    writeFileSync(tokenFile, TOKENS.ztA);
    const leader = (await leaderNow())!;
    const follower = leader === 'ctl-a' ? 'ctl-b' : 'ctl-a';
    // It talks to the replica that does not lead: every replica serves xDS and the CA.
    ztunnel = new StraitProcess(spawn(process.execPath, [...ZTUNNEL_NODE_OPTIONS, STRAIT_BIN, 'ztunnel', '--node', 'node-a', '--xds-address', replicas.get(follower)!.xds,
      '--token-file', tokenFile, '--root-cert', replicas.get(follower)!.rootFile, '--listen-address', ZT_ADDR, '--local-pod-listeners'], { stdio: ['ignore', 'pipe', 'pipe'] }));
    await ztunnel.waitFor((l) => l.msg === 'ztunnel listening', 20_000, 'ztunnel listening');
    await eventually(async () => (await fetch(`http://${ZT_ADDR}:15021/healthz/ready`)).ok, 20_000, 'ztunnel ready (config and the web pod\'s certificate)');
    const m = await metrics(follower);
    assert.ok(metricValue(m, 'citadel_server_success_cert_issuance_count') >= 1);
    assert.ok(metricValue(m, 'strait_token_reviews_total', { result: 'accepted' }) >= 1);
    // Its reconnects and certificate calls were answered from the review cache, not a review each.
    assert.ok(api.requests.filter((r) => r.resource === 'tokenreviews' && r.user === replicas.get(follower)!.user).length <= 2);
  });

  it('refuses the same token claiming another node, on xDS and on the CA', async () => {
    const s = new RawAdsStream(replicas.get('ctl-a')!.xds, md(TOKENS.ztA, 'node-b'), credentials());
    s.write({ node: wireNode({ id: 'ztunnel~node-b~1', kind: 'ztunnel', nodeName: 'node-b' }), type_url: 'type.strait.dev/Workload' });
    const end = await s.ended;
    s.close();
    assert.equal(end.code, grpc.status.PERMISSION_DENIED);
    assert.match(end.details, /pod strait-system\/strait-ztunnel-aaaaa runs on node node-a, so its token may not connect as the ztunnel of node node-b/);
    const ca = new CaClient({ address: replicas.get('ctl-a')!.xds, credentials: credentials(), metadata: () => ({ authorization: `Bearer ${TOKENS.ztA}`, 'x-strait-node': 'node-b' }) });
    try {
      const { csrPem } = await createKeyAndCsr();
      await assert.rejects(ca.createCertificate(csrPem, 'spiffe://cluster.local/ns/apps/sa/db', 3600), (err: unknown) => (err as { code?: number }).code === grpc.status.PERMISSION_DENIED || /PERMISSION_DENIED|runs on node node-a/.test(String(err)));
    } finally {
      ca.close();
    }
    assert.ok(metricValue(await metrics('ctl-a'), 'strait_auth_refused_total', { service: 'xds', reason: 'wrong_node' }) >= 1);
  });

  it('lets an authenticated ztunnel obtain only identities of pods on its own node', async () => {
    const ca = new CaClient({ address: replicas.get('ctl-a')!.xds, credentials: credentials(), metadata: () => ({ authorization: `Bearer ${TOKENS.ztA}`, 'x-strait-node': 'node-a' }) });
    try {
      const { csrPem } = await createKeyAndCsr();
      const chain = await ca.createCertificate(csrPem, 'spiffe://cluster.local/ns/apps/sa/web', 3600);
      assert.ok(chain.length >= 2);
      await assert.rejects(ca.createCertificate(csrPem, 'spiffe://cluster.local/ns/apps/sa/db', 3600), /no pod with service account "db" in namespace "apps" is scheduled on node node-a/);
    } finally {
      ca.close();
    }
  });

  it('refuses a token without the controller\'s audience, and one not bound to a pod', async () => {
    const wrongAudience = new RawAdsStream(replicas.get('ctl-b')!.xds, md(TOKENS.ztWrongAudience, 'node-a'), credentials());
    const end = await wrongAudience.ended;
    wrongAudience.close();
    assert.equal(end.code, grpc.status.UNAUTHENTICATED);
    assert.match(end.details, /not for audience "strait-controller"/);
    const secretToken = new RawAdsStream(replicas.get('ctl-b')!.xds, md(TOKENS.notPodBound, 'node-a'), credentials());
    const end2 = await secretToken.ended;
    secretToken.close();
    assert.equal(end2.code, grpc.status.PERMISSION_DENIED);
    assert.match(end2.details, /not bound to a pod/);
    const m = await metrics('ctl-b');
    assert.ok(metricValue(m, 'strait_auth_refused_total', { service: 'xds', reason: 'wrong_audience' }) >= 1);
  });

  it('the leader makes a waypoint Gateway\'s Deployment, Service, ServiceAccount and ConfigMap, owned by it, and its status', async () => {
    const gw = api.put({
      apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'waypoint', namespace: 'apps' },
      spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] },
    }) as any;
    await eventually(() => get('apps/v1', 'Deployment', 'apps', 'waypoint') && get('v1', 'Service', 'apps', 'waypoint') && get('v1', 'ServiceAccount', 'apps', 'waypoint') && get('v1', 'ConfigMap', 'apps', 'strait-ca-root'), 15_000, 'waypoint objects');
    for (const [apiVersion, kind] of [['apps/v1', 'Deployment'], ['v1', 'Service'], ['v1', 'ServiceAccount']] as const) {
      assert.deepEqual(get(apiVersion, kind, 'apps', 'waypoint').metadata.ownerReferences.map((r: any) => [r.kind, r.name, r.uid, r.controller]), [['Gateway', 'waypoint', gw.metadata.uid, true]], kind);
    }
    assert.equal(get('apps/v1', 'Deployment', 'apps', 'waypoint').spec.template.spec.containers[0].image, 'ghcr.io/strait-mesh/strait:test');
    await eventually(() => get('gateway.networking.k8s.io/v1', 'Gateway', 'apps', 'waypoint').status?.conditions?.length, 10_000, 'status');
    assert.deepEqual(get('gateway.networking.k8s.io/v1', 'Gateway', 'apps', 'waypoint').status.conditions.map((c: any) => [c.type, c.status, c.reason]), [['Accepted', 'True', 'Accepted'], ['Programmed', 'False', 'AddressNotAssigned']]);
    // The API server's allocator (which the double does not run) gives the Service its cluster IP.
    const svc = get('v1', 'Service', 'apps', 'waypoint');
    api.put({ ...svc, spec: { ...svc.spec, clusterIP: '10.96.7.7', clusterIPs: ['10.96.7.7'] } });
    await eventually(() => get('gateway.networking.k8s.io/v1', 'Gateway', 'apps', 'waypoint').status.addresses, 10_000, 'address in the status');
    const status = get('gateway.networking.k8s.io/v1', 'Gateway', 'apps', 'waypoint').status;
    assert.deepEqual(status.addresses, [{ type: 'IPAddress', value: '10.96.7.7' }]);
    assert.deepEqual(status.conditions.map((c: any) => [c.type, c.status, c.reason, c.observedGeneration]), [['Accepted', 'True', 'Accepted', 1], ['Programmed', 'True', 'Programmed', 1]]);
  });

  it('deleting the Gateway removes its objects', async () => {
    api.delete({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', namespace: 'apps', name: 'waypoint' });
    await eventually(() => !get('apps/v1', 'Deployment', 'apps', 'waypoint') && !get('v1', 'Service', 'apps', 'waypoint') && !get('v1', 'ServiceAccount', 'apps', 'waypoint'), 10_000, 'objects gone');
  });

  it('the replica that does not lead never wrote to the cluster', async () => {
    const leader = (await leaderNow())!;
    const follower: Replica = leader === 'ctl-a' ? 'ctl-b' : 'ctl-a';
    assert.deepEqual(writesBy(follower).map((w) => `${w.verb} ${w.resource}/${w.name ?? ''}`), []);
    assert.ok(writesBy(leader).length >= 5, 'the leader did the writing');
    // Its Lease attempts never succeeded either.
    assert.deepEqual(api.requests.filter((r) => r.user === replicas.get(follower)!.user && r.resource === 'leases' && ['create', 'update'].includes(r.verb) && (r.code ?? 0) < 300), []);
  });

  it('after a kill -9 of the leader the other replica takes over within the lease time', async () => {
    const leader = (await leaderNow())!;
    const other: Replica = leader === 'ctl-a' ? 'ctl-b' : 'ctl-a';
    const transitions = get('coordination.k8s.io/v1', 'Lease', SYS, 'strait-controller').spec.leaseTransitions as number;
    const killedAt = Date.now();
    replicas.get(leader)!.proc.child.kill('SIGKILL');
    await replicas.get(leader)!.proc.exited;
    await eventually(() => isLeader(other), LEASE_MS + 4 * RETRY_MS + 3000, 'takeover');
    const takeoverMs = Date.now() - killedAt;
    console.log(`takeover after kill -9 of the leader: ${takeoverMs} ms (--lease-duration ${LEASE_MS} ms, --retry-period ${RETRY_MS} ms)`);
    // The last renewal came up to one retry period before the kill; the other saw it up to one (jittered) retry period
    // later, counts the lease duration from then, and tries again within another retry period: lease + 2 retries,
    // plus one retry period of slack for a loaded machine.
    assert.ok(takeoverMs <= LEASE_MS + 3 * RETRY_MS + 500, `took ${takeoverMs} ms`);
    const lease = get('coordination.k8s.io/v1', 'Lease', SYS, 'strait-controller');
    assert.equal(lease.spec.holderIdentity, other);
    assert.equal(lease.spec.leaseTransitions, transitions + 1);
    // The new leader writes: a new waypoint gets its objects.
    api.put({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'after', namespace: 'apps' }, spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] } });
    await eventually(() => get('apps/v1', 'Deployment', 'apps', 'after'), 10_000, 'the new leader creates the Deployment');
  });

  it('a leader stopped with SIGTERM releases the Lease', async () => {
    const leader = (await leaderNow())!;
    assert.equal(await replicas.get(leader)!.proc.stop(10_000), 0);
    const lease = get('coordination.k8s.io/v1', 'Lease', SYS, 'strait-controller');
    assert.equal(lease.spec.holderIdentity, '', 'released: the next replica need not wait for it to expire');
  });
});
