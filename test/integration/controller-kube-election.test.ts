/**
 * Leader election and the CA Secret against the Kubernetes API server double (real HTTPS, real Lease objects with
 * resourceVersion conflicts), through Strait's client, with short timings so takeovers take seconds.
 * Addresses: 127.0.217.1.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startKubeApiServer, type KubeApiServer } from '../helpers/kube-apiserver.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually } from '../helpers/eventually.js';
import { KubeClient, loadKubeConfig } from '../../src/common/kube/index.js';
import { kubeObjectApi } from '../../src/controller/kube/kube-client-ports.js';
import { leaseApi, secretApi } from '../../src/controller/kube/kube-control-plane.js';
import { LeaderElector } from '../../src/controller/kube/leader-elector.js';
import { loadOrCreateCaSecret, caFromSecret } from '../../src/controller/kube/ca-secret.js';
import { createRootLogger } from '../../src/common/log.js';
import { createKeyAndCsr, SpiffeId } from '../../src/identity/index.js';
import { X509Certificate } from 'node:crypto';

const HOST = '127.0.217.1';
const NS = 'strait-system';
const TIMING = { leaseDurationMs: 1500, renewDeadlineMs: 1000, retryPeriodMs: 200 };
const log = createRootLogger({ component: 'test', level: 'silent', format: 'json' });

describe('controller replicas against the API server', () => {
  let api: KubeApiServer;
  const dir = tempDir('kube-election');
  const clients: KubeClient[] = [];
  const electors: LeaderElector[] = [];
  /** A client authenticated as its own user (the request log tells replicas apart). */
  const replica = (name: string) => {
    const token = api.addServiceAccountToken(NS, name);
    const c = new KubeClient(loadKubeConfig({ kubeconfig: api.writeKubeconfig(join(dir.path, `${name}.kubeconfig`), { token }) }));
    clients.push(c);
    return kubeObjectApi(c);
  };
  const elector = (name: string, lease = 'strait-controller') => {
    const e = new LeaderElector({ api: leaseApi(replica(name), NS, lease), name: lease, namespace: NS, identity: name, ...TIMING, logger: log });
    electors.push(e);
    return e;
  };
  const leaseOf = (name = 'strait-controller') => api.get({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', namespace: NS, name }) as { spec: Record<string, unknown>; metadata: { resourceVersion: string } } | undefined;
  const writesBy = (user: string, resource: string) => api.requests.filter((r) => r.user === `system:serviceaccount:${NS}:${user}` && r.resource === resource && !['get', 'list', 'watch'].includes(r.verb));

  before(async () => {
    api = await startKubeApiServer({ host: HOST });
    api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  });
  after(async () => {
    for (const e of electors) await e.close({ release: false });
    for (const c of clients) c.close();
    await api.close();
    dir.remove();
  });

  it('elects exactly one of two replicas, which keeps renewing while the other only reads', async () => {
    const a = elector('ctl-a');
    const b = elector('ctl-b');
    a.start();
    b.start();
    await eventually(() => a.isLeader() || b.isLeader(), 5000, 'a leader');
    const [leader, follower] = a.isLeader() ? [a, b] : [b, a];
    const leaderName = leader === a ? 'ctl-a' : 'ctl-b';
    const followerName = leader === a ? 'ctl-b' : 'ctl-a';
    const renewTime = leaseOf()!.spec['renewTime'];
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(leader.isLeader(), true);
    assert.equal(follower.isLeader(), false);
    assert.equal(follower.status().holder, leaderName);
    assert.equal(leaseOf()!.spec['holderIdentity'], leaderName);
    assert.notEqual(leaseOf()!.spec['renewTime'], renewTime, 'the leader renews');
    assert.deepEqual(writesBy(followerName, 'leases').filter((w) => w.code === 200 || w.code === 201), [], 'the follower never wrote the Lease successfully');
    await leader.close({ release: false });
    await follower.close({ release: false });
  });

  it('a leader whose renewal hits a Conflict reads the Lease again and stays leader', async () => {
    const a = elector('ctl-c', 'conflicts');
    a.start();
    await eventually(() => a.isLeader(), 5000, 'leader');
    const before = (leaseOf('conflicts')!.spec['leaseTransitions'] as number);
    // Someone else's write in between: our cached resourceVersion is stale on the next renewal.
    const lease = leaseOf('conflicts')!;
    api.put({ ...lease, apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { ...lease.metadata, name: 'conflicts', namespace: NS, annotations: { touched: 'yes' } } } as never);
    const conflictsBefore = api.requests.filter((r) => r.resource === 'leases' && r.name === 'conflicts' && r.code === 409).length;
    await eventually(() => api.requests.filter((r) => r.resource === 'leases' && r.name === 'conflicts' && r.code === 409).length > conflictsBefore, 3000, 'a 409 on renewal');
    const renewed = leaseOf('conflicts')!.spec['renewTime'];
    await eventually(() => leaseOf('conflicts')!.spec['renewTime'] !== renewed, 3000, 'renewed after the conflict');
    assert.equal(a.isLeader(), true);
    assert.equal(leaseOf('conflicts')!.spec['holderIdentity'], 'ctl-c');
    assert.equal(leaseOf('conflicts')!.spec['leaseTransitions'], before, 'a renewal is no transition');
    await a.close({ release: false });
  });

  it('a crashed leader (no release) is replaced once its Lease expires, with one more transition', async () => {
    const a = elector('ctl-d', 'crash');
    a.start();
    await eventually(() => a.isLeader(), 5000, 'leader');
    const b = elector('ctl-e', 'crash');
    b.start();
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(b.isLeader(), false);
    await a.close({ release: false }); // stops renewing, like a kill -9
    const t0 = Date.now();
    await eventually(() => b.isLeader(), 5000, 'takeover');
    const took = Date.now() - t0;
    console.log(`takeover after the leader stopped: ${took} ms (lease ${TIMING.leaseDurationMs} ms, retry ${TIMING.retryPeriodMs} ms)`);
    assert.ok(took >= TIMING.leaseDurationMs - TIMING.retryPeriodMs - 100, `not before the Lease expired (${took} ms)`);
    assert.ok(took <= TIMING.leaseDurationMs + 3 * TIMING.retryPeriodMs + 600, `within the lease duration and two retries, with slack (${took} ms)`);
    assert.equal(leaseOf('crash')!.spec['holderIdentity'], 'ctl-e');
    assert.equal(leaseOf('crash')!.spec['leaseTransitions'], 1);
    await b.close({ release: false });
  });

  it('a leader stopping cleanly releases the Lease and the other takes over at its next try', async () => {
    const a = elector('ctl-f', 'release');
    a.start();
    await eventually(() => a.isLeader(), 5000, 'leader');
    const b = elector('ctl-g', 'release');
    b.start();
    await new Promise((r) => setTimeout(r, 300));
    await a.close();
    assert.equal(leaseOf('release')!.spec['holderIdentity'], '');
    const t0 = Date.now();
    await eventually(() => b.isLeader(), 3000, 'takeover');
    assert.ok(Date.now() - t0 < TIMING.leaseDurationMs, `took ${Date.now() - t0} ms: faster than waiting for expiry`);
    await b.close({ release: false });
  });

  it('a leader that cannot renew stops leading within the renew deadline, before the Lease can expire', async () => {
    const a = elector('ctl-h', 'deadline');
    let stoppedAt = 0;
    a.on('stopped', () => { stoppedAt = Date.now(); });
    a.start();
    await eventually(() => a.isLeader(), 5000, 'leader');
    const lastRenew = Date.parse(String(leaseOf('deadline')!.spec['renewTime']));
    api.failNext({ path: /\/leases\/deadline/, status: 500, count: 1000 });
    await eventually(() => !a.isLeader(), 3000, 'stepped down');
    const after = Date.now() - lastRenew;
    assert.ok(after <= TIMING.renewDeadlineMs + TIMING.retryPeriodMs + 200, `stopped leading ${after} ms after the last renewal`);
    assert.ok(after < TIMING.leaseDurationMs, 'before anyone else could take over');
    await eventually(() => stoppedAt > 0, 2000, 'the stopped event');
    await a.close({ release: false });
  });
});

describe('the CA root Secret', () => {
  let api: KubeApiServer;
  const dir = tempDir('kube-ca-secret');
  const clients: KubeClient[] = [];
  const secrets = (name: string) => {
    const c = new KubeClient(loadKubeConfig({ kubeconfig: api.writeKubeconfig(join(dir.path, `${name}.kubeconfig`), { token: api.addServiceAccountToken(NS, name) }) }));
    clients.push(c);
    return secretApi(kubeObjectApi(c));
  };
  before(async () => {
    api = await startKubeApiServer({ host: HOST });
    api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  });
  after(async () => {
    for (const c of clients) c.close();
    await api.close();
    dir.remove();
  });

  it('two replicas creating it at once end up with one root: the loser of the create reads the winner\'s', async () => {
    const opts = { namespace: NS, name: 'race', trustDomain: 'cluster.local', mayCreate: () => true, waitMs: 5000, pollMs: 100, logger: log };
    const [a, b] = await Promise.all([loadOrCreateCaSecret({ ...opts, api: secrets('r1') }), loadOrCreateCaSecret({ ...opts, api: secrets('r2') })]);
    assert.equal(a.certPem, b.certPem);
    assert.equal(a.keyPem, b.keyPem);
    assert.deepEqual([a.created, b.created].sort(), [false, true]);
    const conflicts = api.requests.filter((r) => r.resource === 'secrets' && r.verb === 'create' && r.code === 409);
    assert.equal(conflicts.length, 1, 'exactly one create lost with 409 AlreadyExists');
    const stored = api.get({ apiVersion: 'v1', kind: 'Secret', namespace: NS, name: 'race' }) as { type: string; data: Record<string, string> };
    assert.equal(stored.type, 'Opaque');
    assert.equal(Buffer.from(stored.data['ca-cert.pem']!, 'base64').toString(), a.certPem);
    // The root signs: a workload certificate from it chains to the stored certificate.
    const ca = caFromSecret(a, { namespace: NS, name: 'race', trustDomain: 'cluster.local', workloadTtlMs: 3600_000 });
    const { csrPem } = await createKeyAndCsr();
    const leaf = new X509Certificate(ca.signWorkload(csrPem, SpiffeId.parse('spiffe://cluster.local/ns/a/sa/b')).certChainPem[0]!);
    assert.ok(leaf.verify(new X509Certificate(a.certPem).publicKey));
  });

  it('a replica that may not create waits for the leader\'s Secret, and never overwrites one', async () => {
    let waiting = 0;
    const waitLog = { ...log, info: (fields: unknown, msg?: string) => { if (String(msg).includes('waiting for the leader')) waiting++; } } as unknown as typeof log;
    const follower = loadOrCreateCaSecret({ api: secrets('f1'), namespace: NS, name: 'later', trustDomain: 'cluster.local', mayCreate: () => false, waitMs: 10_000, pollMs: 100, logger: waitLog, logEveryMs: 200 });
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(api.get({ apiVersion: 'v1', kind: 'Secret', namespace: NS, name: 'later' }), undefined);
    const leader = await loadOrCreateCaSecret({ api: secrets('l1'), namespace: NS, name: 'later', trustDomain: 'cluster.local', mayCreate: () => true, waitMs: 5000, pollMs: 100, logger: log });
    const got = await follower;
    assert.equal(got.certPem, leader.certPem);
    assert.equal(got.created, false);
    assert.ok(waiting >= 1, 'said it was waiting');
    const again = await loadOrCreateCaSecret({ api: secrets('l2'), namespace: NS, name: 'later', trustDomain: 'cluster.local', mayCreate: () => true, waitMs: 5000, pollMs: 100, logger: log });
    assert.equal(again.certPem, leader.certPem);
    assert.equal(api.requests.filter((r) => r.resource === 'secrets' && r.name === 'later' && ['update', 'patch', 'delete'].includes(r.verb)).length, 0, 'never updated');
  });

  it('gives up after its wait with a message that says what to check', async () => {
    await assert.rejects(
      loadOrCreateCaSecret({ api: secrets('f2'), namespace: NS, name: 'never', trustDomain: 'cluster.local', mayCreate: () => false, waitMs: 500, pollMs: 100, logger: log }),
      /no mesh CA root in Secret strait-system\/never after \d+ s: the leader creates it; check that one controller replica holds the Lease/,
    );
  });

  it('refuses a Secret without the keys, naming them', async () => {
    api.put({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'broken', namespace: NS }, data: { 'tls.crt': 'eA==' } });
    await assert.rejects(
      loadOrCreateCaSecret({ api: secrets('f3'), namespace: NS, name: 'broken', trustDomain: 'cluster.local', mayCreate: () => true, waitMs: 500, pollMs: 100, logger: log }),
      /Secret strait-system\/broken has no key "ca-cert.pem"/,
    );
  });
});
