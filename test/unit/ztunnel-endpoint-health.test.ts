/**
 * Passive ejection and the endpoint pick, without sockets (DESIGN §6: decide, then do).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { StraitError } from '../../src/common/errors.js';
import { HboneRefusedError } from '../../src/hbone/client.js';
import type { ServiceResource, WorkloadResource } from '../../src/common/xds/resources.js';
import { EndpointHealth, failureBlame } from '../../src/ztunnel/proxy/endpoint-health.js';
import { buildRequest, endpointKey, roundRobin, type HboneRequest } from '../../src/ztunnel/proxy/request.js';
import { ProxyState } from '../../src/dataplane/state/proxy-state.js';

const policy = { baseMs: 1_000, maxMs: 8_000, maxEntries: 100 };

describe('endpoint ejection', () => {
  it('ejects an endpoint on a failed connect and readmits it when the period is over', () => {
    const h = new EndpointHealth(policy);
    assert.equal(h.isEjected('a', 0), false);
    const e = h.failed('a', 10_000, 'connection refused');
    assert.deepEqual(e, { kind: 'ejected', endpoint: 'a', durationMs: 1_000, ejections: 1, reason: 'connection refused' });
    assert.equal(h.isEjected('a', 10_999), true);
    assert.equal(h.ejectedCount(), 1);
    assert.equal(h.nextDeadline(), 11_000);
    assert.deepEqual(h.expire(10_999), [], 'nothing is due before the deadline');
    assert.deepEqual(h.expire(11_000), [{ kind: 'readmitted', endpoint: 'a', ejectedForMs: 1_000, ejections: 1 }]);
    assert.equal(h.isEjected('a', 11_000), false);
    assert.equal(h.ejectedCount(), 0);
  });

  it('doubles the period on each ejection without a success in between, up to the cap', () => {
    const h = new EndpointHealth(policy);
    let now = 0;
    const periods: number[] = [];
    for (let i = 0; i < 6; i++) {
      const e = h.failed('a', now, 'refused')!;
      periods.push(e.durationMs);
      now += e.durationMs;
      h.expire(now);
    }
    assert.deepEqual(periods, [1_000, 2_000, 4_000, 8_000, 8_000, 8_000]);
  });

  it('forgets the history on a success: the next ejection is short again', () => {
    const h = new EndpointHealth(policy);
    h.failed('a', 0, 'refused');
    h.expire(1_000);
    assert.equal(h.failed('a', 1_000, 'refused')!.durationMs, 2_000);
    h.expire(3_000);
    assert.equal(h.succeeded('a', 3_000), undefined, 'already readmitted: no second readmission');
    assert.equal(h.failed('a', 4_000, 'refused')!.durationMs, 1_000);
  });

  it('counts failures of connections that picked the endpoint before it was ejected as the same failure', () => {
    const h = new EndpointHealth(policy);
    assert.ok(h.failed('a', 0, 'refused'));
    assert.equal(h.failed('a', 10, 'refused'), undefined);
    assert.equal(h.failed('a', 20, 'refused'), undefined);
    assert.equal(h.ejectedCount(), 1);
    h.expire(1_000);
    assert.equal(h.failed('a', 1_000, 'refused')!.ejections, 2, 'a failure after readmission is a new ejection');
  });

  it('readmits an ejected endpoint that succeeds (picked because every endpoint was ejected)', () => {
    const h = new EndpointHealth(policy);
    h.failed('a', 0, 'refused');
    assert.deepEqual(h.succeeded('a', 400), { kind: 'readmitted', endpoint: 'a', ejectedForMs: 400, ejections: 1 });
    assert.equal(h.isEjected('a', 500), false);
    assert.equal(h.ejectedCount(), 0);
    assert.equal(h.nextDeadline(), undefined);
  });

  it('forgets a readmitted endpoint that stays quiet for the longest period, and stays bounded in size', () => {
    const h = new EndpointHealth({ baseMs: 1_000, maxMs: 8_000, maxEntries: 3 });
    h.failed('a', 0, 'refused');
    h.expire(1_000);
    assert.equal(h.nextDeadline(), 9_000, 'kept until the cap has passed, for the backoff');
    h.expire(9_000);
    assert.equal(h.nextDeadline(), undefined);
    assert.equal(h.failed('a', 9_000, 'refused')!.ejections, 1, 'a forgotten endpoint starts over');
    for (const k of ['b', 'c', 'd', 'e']) h.failed(k, 9_000, 'refused');
    assert.equal(h.snapshot().length, 3, 'never more entries than maxEntries');
    assert.equal(h.ejectedCount(), 3);
  });

  it('rejects a policy whose cap is below its base', () => {
    assert.throws(() => new EndpointHealth({ baseMs: 5_000, maxMs: 1_000, maxEntries: 10 }), RangeError);
  });
});

describe('whose fault a failed connect is', () => {
  const errno = (code: string) => Object.assign(new Error(code), { code });
  it('blames the endpoint for refused, reset, timed-out connects and 503/504 from its ztunnel', () => {
    assert.equal(failureBlame(errno('ECONNREFUSED')), 'endpoint');
    assert.equal(failureBlame(errno('ETIMEDOUT')), 'endpoint');
    assert.equal(failureBlame(new StraitError('STRAIT_ERR_HBONE_CONNECT', 'refused', { cause: errno('ECONNREFUSED') })), 'endpoint');
    assert.equal(failureBlame(new StraitError('STRAIT_ERR_HBONE_CONNECT_TIMEOUT', 'timed out')), 'endpoint');
    assert.equal(failureBlame(new HboneRefusedError(503, 'cannot reach', 'refused with 503')), 'endpoint');
    assert.equal(failureBlame(new HboneRefusedError(504, 'timeout', 'refused with 504')), 'endpoint');
  });
  it('blames this process when it is out of file descriptors, wherever in the cause chain', () => {
    assert.equal(failureBlame(errno('EMFILE')), 'local');
    assert.equal(failureBlame(new StraitError('STRAIT_ERR_HBONE_CONNECT', 'x', { cause: errno('ENFILE') })), 'local');
  });
  it('does not retry policy and identity failures elsewhere', () => {
    assert.equal(failureBlame(new HboneRefusedError(403, 'denied', 'refused with 403')), 'other');
    assert.equal(failureBlame(new HboneRefusedError(400, 'unknown target', 'refused with 400')), 'other');
    assert.equal(failureBlame(new StraitError('STRAIT_ERR_PEER_VERIFY', 'presented another id')), 'other');
  });
});

describe('the endpoint pick', () => {
  const workload = (name: string, ip: string): WorkloadResource => ({
    uid: `apps/${name}`, name, namespace: 'apps', node: 'node-a', serviceAccount: name, identity: `spiffe://cluster.local/ns/apps/sa/${name}`,
    addresses: [ip], labels: { app: name }, protocol: 'HBONE', healthy: true, canonicalName: name, canonicalRevision: 'latest', namedPorts: {}, services: [],
  });
  const state = new ProxyState();
  state.applyWorkloads([workload('client', '10.0.0.1'), workload('s1', '10.0.1.1'), workload('s2', '10.0.1.2'), workload('s3', '10.0.1.3')], []);
  const svc: ServiceResource = {
    name: 'server', namespace: 'apps', hostname: 'server.apps.svc.cluster.local', vips: ['10.96.0.1'], ports: [{ port: 80, targetPort: 8080 }],
    endpoints: ['s1', 's2', 's3'].map((n, i) => ({ workload: `apps/${n}`, address: `10.0.1.${i + 1}`, ports: { '80': 8080 }, healthy: true })),
  };
  state.applyServices([svc], []);
  const k = (n: number) => endpointKey(`apps/s${n}`, `10.0.1.${n}`, 8080);
  const pickFor = (choice: Parameters<typeof buildRequest>[4]) => {
    const d = buildRequest(state, 'node-a', '10.0.0.1', { host: '10.96.0.1', port: 80 }, choice);
    assert.equal(d.kind, 'hbone');
    return d as HboneRequest;
  };

  it('names the endpoint it picked and how many others are left to try', () => {
    const d = pickFor({ pick: () => 1 });
    assert.equal(d.actualDestination.host, '10.0.1.2');
    assert.deepEqual(d.endpoint, { key: k(2), untried: 2 });
  });

  it('leaves ejected endpoints out while any other is in', () => {
    const ejected = new Set([k(1), k(2)]);
    const rr = roundRobin();
    for (let i = 0; i < 5; i++) assert.equal(pickFor({ pick: rr, ejected: (key) => ejected.has(key) }).actualDestination.host, '10.0.1.3');
  });

  it('falls back to all endpoints when every one is ejected', () => {
    const rr = roundRobin();
    const hosts = new Set(Array.from({ length: 3 }, () => pickFor({ pick: rr, ejected: () => true }).actualDestination.host));
    assert.equal(hosts.size, 3);
  });

  it('never picks an endpoint this connection already tried, and refuses once all are tried', () => {
    const tried = new Set([k(1), k(3)]);
    const d = pickFor({ pick: roundRobin(), ejected: (key) => key === k(2), tried });
    assert.equal(d.actualDestination.host, '10.0.1.2', 'the only untried endpoint, even though ejected');
    assert.equal(d.endpoint?.untried, 0);
    const none = buildRequest(state, 'node-a', '10.0.0.1', { host: '10.96.0.1', port: 80 }, { pick: roundRobin(), tried: new Set([k(1), k(2), k(3)]) });
    assert.equal(none.kind, 'refuse');
    assert.match((none as { message: string }).message, /none of its 3 ready endpoint\(s\) for port 80 could be reached/);
  });

  it('picks no endpoint for a workload address (nothing to fall back to)', () => {
    const d = buildRequest(state, 'node-a', '10.0.0.1', { host: '10.0.1.1', port: 8080 }, { pick: roundRobin() });
    assert.equal(d.kind, 'hbone');
    assert.equal((d as HboneRequest).endpoint, undefined);
  });
});
