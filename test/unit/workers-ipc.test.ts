/**
 * The pieces of the data-plane workers that need no process: request/answer pairs over a channel (two Requests
 * wired to each other, as the primary's and a worker's are over the cluster channel) and the state feed (what a
 * worker applies ends up equal to the primary's state).
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { StraitError, isStraitError } from '../../src/common/errors.js';
import type { WorkloadResource } from '../../src/common/xds/resources.js';
import { ProxyState } from '../../src/dataplane/state/proxy-state.js';
import { FeedRecorder, applyToSubscriptions } from '../../src/dataplane/workers/feed-recorder.js';
import { FeedingState, applyToProxyState } from '../../src/dataplane/workers/feeding-state.js';
import { MAX_PENDING_REQUESTS, type StateUpdate } from '../../src/dataplane/workers/protocol.js';
import { Requests } from '../../src/dataplane/workers/requests.js';

/** Two ends of one channel; messages are delivered as a structured clone on the next turn, as IPC does. */
function pair(handlersB: Record<string, (arg: unknown) => unknown>, deliver = true) {
  let a!: Requests;
  let b!: Requests;
  a = new Requests((m) => { if (deliver) setImmediate(() => b.handle(structuredClone(m))); }, 'worker 1');
  b = new Requests((m) => setImmediate(() => a.handle(structuredClone(m))), 'the primary', handlersB);
  return { a, b };
}

describe('Requests over one channel', () => {
  it('answers a request with what the other side\'s handler returned', async () => {
    const { a } = pair({ cert: (identity) => ({ for: identity }) });
    assert.deepEqual(await a.request('cert', 'spiffe://cluster.local/ns/a/sa/b'), { for: 'spiffe://cluster.local/ns/a/sa/b' });
  });

  it('fails a request with the handler\'s error code and message; an unknown request is a BUG answer', async () => {
    const { a } = pair({ cert: () => { throw new StraitError('STRAIT_ERR_CERT_EXPIRED', 'no certificate yet'); } });
    await assert.rejects(a.request('cert', 'x'), (err: unknown) => isStraitError(err, 'STRAIT_ERR_CERT_EXPIRED') && (err as Error).message === 'no certificate yet');
    await assert.rejects(a.request('nothing'), (err: unknown) => isStraitError(err, 'STRAIT_ERR_BUG') && /unknown "nothing"/.test((err as Error).message));
  });

  it('times out a request nobody answers, and fails every pending one when the channel closes', async () => {
    const { a } = pair({}, false);
    const keepAlive = setTimeout(() => undefined, 5_000); // the request timers do not hold the process open
    after(() => clearTimeout(keepAlive));
    await assert.rejects(a.request('metrics', undefined, 30), (err: unknown) => isStraitError(err, 'STRAIT_ERR_WORKER') && /did not answer .* within 30 ms/.test((err as Error).message));
    const pending = a.request('metrics');
    a.close();
    await assert.rejects(pending, /went away before answering/);
    await assert.rejects(a.request('metrics'), /the channel is closed/);
  });

  it('refuses more than MAX_PENDING_REQUESTS at once', async () => {
    const { a } = pair({}, false);
    const held = Array.from({ length: MAX_PENDING_REQUESTS }, () => a.request('metrics').catch(() => undefined));
    await assert.rejects(a.request('metrics'), /requests are pending already/);
    a.close();
    await Promise.all(held);
  });
});

const workload = (uid: string, ip: string): WorkloadResource => ({
  uid, name: uid, namespace: 'apps', node: 'n1', serviceAccount: 'sa', identity: 'spiffe://cluster.local/ns/apps/sa/sa', addresses: [ip],
  labels: {}, protocol: 'HBONE', healthy: true, canonicalName: uid, canonicalRevision: 'latest', namedPorts: {},
} as WorkloadResource);

describe('the state feed', () => {
  it('a worker that starts from the snapshot and applies every later update holds what the primary holds', () => {
    const primary = new FeedingState();
    primary.applyWorkloads([workload('w1', '10.0.0.1')], []);
    primary.applyPolicies([{ name: 'p1', body: { type: 'peerauthn', mode: 'STRICT' } as never }], []);
    const fed: StateUpdate[] = [];
    primary.feed = (u) => fed.push(structuredClone(u));
    const worker = new ProxyState();
    for (const u of structuredClone(primary.snapshot())) assert.ok(applyToProxyState(worker, u));
    primary.applyWorkloads([workload('w2', '10.0.0.2')], ['w1']);
    primary.applyServices([{ name: 's', namespace: 'apps', hostname: 's.apps.svc.cluster.local', vips: ['10.1.0.1'], ports: [], endpoints: [] }], []);
    primary.applyPolicies([], ['p1']);
    assert.deepEqual(fed.map((u) => u.store), ['workloads', 'services', 'policies'], 'each update fed once, in the order applied');
    for (const u of fed) applyToProxyState(worker, u);
    assert.deepEqual([...worker.workloads.keys()], ['w2']);
    assert.equal(worker.workloadByAddress('10.0.0.2')?.uid, 'w2');
    assert.equal(worker.workloadByAddress('10.0.0.1'), undefined);
    assert.equal(worker.serviceByVip('10.1.0.1')?.name, 's');
    assert.equal(worker.policies.size, 0);
    assert.equal(applyToProxyState(worker, { store: 'routes', added: [], removed: [] }), false, 'a store ProxyState does not have is refused');
  });

  it('wrapped subscriptions record and feed only responses they applied; a NACKed one feeds nothing', () => {
    const applied: string[] = [];
    const sub = {
      typeUrl: 'type.strait.dev/Route',
      apply: (u: { added: { name: string; body: unknown }[]; removed: string[] }) => {
        if (u.added.some((r) => r.body === 'bad')) throw new Error('malformed');
        for (const r of u.added) applied.push(r.name);
      },
    };
    const recorder = new FeedRecorder();
    const fed: StateUpdate[] = [];
    recorder.feed = (u) => fed.push(u);
    const [wrapped] = recorder.wrap([sub]);
    wrapped!.apply({ added: [{ name: 'r1', version: '1', body: { a: 1 } }, { name: 'r2', version: '1', body: { b: 2 } }], removed: [], systemVersion: '1' });
    assert.throws(() => wrapped!.apply({ added: [{ name: 'r3', version: '2', body: 'bad' }], removed: [], systemVersion: '2' }), /malformed/);
    wrapped!.apply({ added: [], removed: ['r1'], systemVersion: '3' });
    assert.equal(fed.length, 2, 'the NACKed response was not fed');
    assert.deepEqual(recorder.snapshot(), [{ store: 'type.strait.dev/Route', added: [{ name: 'r2', body: { b: 2 } }], removed: [] }]);
    const workerApplied: string[] = [];
    const workerSub = { typeUrl: 'type.strait.dev/Route', apply: (u: { added: { name: string }[] }) => { for (const r of u.added) workerApplied.push(r.name); } };
    for (const u of recorder.snapshot()) assert.ok(applyToSubscriptions([workerSub], u));
    assert.deepEqual(workerApplied, ['r2']);
  });
});
