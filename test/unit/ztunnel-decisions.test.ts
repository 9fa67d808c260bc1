/**
 * The ztunnel's two decisions as tables, without sockets (DESIGN §6 "decide, then do"; as Istio's ztunnel tests
 * build_request): where an outbound connection goes (buildRequest), and whether an inbound one is let in
 * (decideInbound). Each row is one case a user meets: waypoint-bound service, VIP with no ready endpoint, a
 * destination outside the mesh, an unknown source, a pod on another node, each policy outcome.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { AuthorizationResource, L4Rule, ServiceResource, WaypointRef, WorkloadResource } from '../../src/common/xds/resources.js';
import { ProxyState } from '../../src/dataplane/state/proxy-state.js';
import { decideInbound, type InboundArrival, type InboundDecision } from '../../src/ztunnel/proxy/inbound-decision.js';
import { buildRequest, roundRobin, type OutboundDecision } from '../../src/ztunnel/proxy/request.js';

const id = (ns: string, sa: string) => `spiffe://cluster.local/ns/${ns}/sa/${sa}`;

function workload(name: string, ip: string, node: string, o: Partial<WorkloadResource> = {}): WorkloadResource {
  return {
    uid: `apps/${name}`, name, namespace: 'apps', node, serviceAccount: name, identity: id('apps', name), addresses: [ip],
    labels: { app: name }, protocol: 'HBONE', healthy: true, canonicalName: name, canonicalRevision: 'v1', namedPorts: {}, services: [], ...o,
  };
}

function service(name: string, vip: string, port: number, endpoints: { w: WorkloadResource; port: number; healthy?: boolean }[], waypoint?: WaypointRef): ServiceResource {
  return {
    name, namespace: 'apps', hostname: `${name}.apps.svc.cluster.local`, vips: [vip], ports: [{ port, targetPort: endpoints[0]?.port ?? port }],
    endpoints: endpoints.map((e) => ({ workload: e.w.uid, address: e.w.addresses[0]!, ports: { [String(port)]: e.port }, healthy: e.healthy ?? true })),
    ...(waypoint ? { waypoint } : {}),
  };
}

const WAYPOINT: WaypointRef = { namespace: 'apps', name: 'waypoint', identity: id('apps', 'waypoint'), address: '10.0.9.9' };
const UNREADY_WAYPOINT: WaypointRef = { namespace: 'apps', name: 'pending', identity: id('apps', 'pending') };

const client = workload('client', '10.0.0.1', 'node-a');
const remoteClient = workload('remote-client', '10.0.0.9', 'node-b');
const legacy = workload('legacy', '10.0.0.5', 'node-a', { protocol: 'TCP' });
const web1 = workload('web-1', '10.0.1.1', 'node-b', { services: ['apps/web'], labels: { app: 'web' } });
const web2 = workload('web-2', '10.0.1.2', 'node-b', { services: ['apps/web'], labels: { app: 'web' } });
const db = workload('db', '10.0.2.1', 'node-b', { protocol: 'TCP', services: ['apps/db'] });
const bound = workload('bound', '10.0.3.1', 'node-b', { waypoint: WAYPOINT });
const waypointPod = workload('waypoint', '10.0.9.9', 'node-a', { waypointFor: 'apps/waypoint' });
const reviews1 = workload('reviews-1', '10.0.4.1', 'node-b', { services: ['apps/reviews'] });

const services = [
  service('web', '10.96.0.10', 80, [{ w: web1, port: 8080 }, { w: web2, port: 8080 }]),
  service('db', '10.96.0.20', 5432, [{ w: db, port: 5432 }]),
  service('empty', '10.96.0.30', 80, [{ w: web1, port: 8080, healthy: false }]),
  service('reviews', '10.96.0.40', 9080, [{ w: reviews1, port: 9080 }], WAYPOINT),
  service('ratings', '10.96.0.50', 9080, [{ w: reviews1, port: 9080 }], UNREADY_WAYPOINT),
];

function stateWith(policies: AuthorizationResource[] = []): ProxyState {
  const s = new ProxyState();
  s.applyWorkloads([client, remoteClient, legacy, web1, web2, db, bound, waypointPod, reviews1], []);
  s.applyServices(services, []);
  s.applyPolicies(policies.map((p) => ({ name: `${p.type}/${p.namespace}/${p.name}`, body: p })), []);
  return s;
}

/** The parts of an outbound decision a row checks. */
function summary(d: OutboundDecision): Record<string, unknown> {
  switch (d.kind) {
    case 'refuse': return { kind: d.kind, code: d.code, source: d.source?.name, service: d.dstService?.name };
    case 'passthrough': return { kind: d.kind, to: `${d.actualDestination.host}:${d.actualDestination.port}`, service: d.dstService?.name };
    case 'hbone': return {
      kind: d.kind, to: `${d.actualDestination.host}:${d.actualDestination.port}`, authority: d.authority, peer: d.expectedPeerSans.join(','),
      service: d.dstService?.name, waypoint: d.waypoint?.name,
    };
  }
}

describe('buildRequest: where an outbound connection goes', () => {
  const state = stateWith();
  const rows: { name: string; from: string; to: string; port: number; expect: Record<string, unknown> }[] = [
    { name: 'an address no workload has is an unknown source', from: '10.0.0.77', to: '10.96.0.10', port: 80, expect: { kind: 'refuse', code: 'unknown_source', source: undefined, service: undefined } },
    { name: 'a pod outside the mesh (TCP) is an unknown source', from: '10.0.0.5', to: '10.96.0.10', port: 80, expect: { kind: 'refuse', code: 'unknown_source', source: undefined, service: undefined } },
    { name: 'a pod on another node must use its own ztunnel', from: '10.0.0.9', to: '10.96.0.10', port: 80, expect: { kind: 'refuse', code: 'source_not_local', source: 'remote-client', service: undefined } },
    { name: 'a destination outside the mesh (IP) is passed through in plain TCP', from: '10.0.0.1', to: '192.0.2.1', port: 443, expect: { kind: 'passthrough', to: '192.0.2.1:443', service: undefined } },
    { name: 'a host name that is not a service is passed through', from: '10.0.0.1', to: 'example.com', port: 443, expect: { kind: 'passthrough', to: 'example.com:443', service: undefined } },
    {
      name: 'a service VIP goes over HBONE to a ready endpoint, checked against its identity', from: '10.0.0.1', to: '10.96.0.10', port: 80,
      expect: { kind: 'hbone', to: '10.0.1.1:15008', authority: '10.0.1.1:8080', peer: id('apps', 'web-1'), service: 'web', waypoint: undefined },
    },
    {
      name: 'a service host name resolves like its VIP', from: '10.0.0.1', to: 'web.apps.svc.cluster.local', port: 80,
      expect: { kind: 'hbone', to: '10.0.1.1:15008', authority: '10.0.1.1:8080', peer: id('apps', 'web-1'), service: 'web', waypoint: undefined },
    },
    { name: 'a VIP with no ready endpoint is refused', from: '10.0.0.1', to: '10.96.0.30', port: 80, expect: { kind: 'refuse', code: 'no_endpoint', source: 'client', service: 'empty' } },
    { name: 'a port the service does not have is refused', from: '10.0.0.1', to: '10.96.0.10', port: 81, expect: { kind: 'refuse', code: 'no_port', source: 'client', service: 'web' } },
    { name: 'a service whose endpoint is outside the mesh is reached in plain TCP', from: '10.0.0.1', to: '10.96.0.20', port: 5432, expect: { kind: 'passthrough', to: '10.0.2.1:5432', service: 'db' } },
    {
      name: 'a waypoint-bound service goes to its waypoint, :authority the VIP', from: '10.0.0.1', to: '10.96.0.40', port: 9080,
      expect: { kind: 'hbone', to: '10.0.9.9:15008', authority: '10.96.0.40:9080', peer: id('apps', 'waypoint'), service: 'reviews', waypoint: 'waypoint' },
    },
    { name: 'a service bound to a waypoint without an address is refused, never sent around it', from: '10.0.0.1', to: '10.96.0.50', port: 9080, expect: { kind: 'refuse', code: 'waypoint_unready', source: 'client', service: 'ratings' } },
    {
      name: 'the waypoint itself reaches the service\'s endpoints directly', from: '10.0.9.9', to: '10.96.0.40', port: 9080,
      expect: { kind: 'hbone', to: '10.0.4.1:15008', authority: '10.0.4.1:9080', peer: id('apps', 'reviews-1'), service: 'reviews', waypoint: undefined },
    },
    {
      name: 'a pod on another node, by its address, goes over HBONE to that pod', from: '10.0.0.1', to: '10.0.1.2', port: 8080,
      expect: { kind: 'hbone', to: '10.0.1.2:15008', authority: '10.0.1.2:8080', peer: id('apps', 'web-2'), service: undefined, waypoint: undefined },
    },
    {
      name: 'a pod bound to a waypoint, by its address, goes to the waypoint', from: '10.0.0.1', to: '10.0.3.1', port: 80,
      expect: { kind: 'hbone', to: '10.0.9.9:15008', authority: '10.0.3.1:80', peer: id('apps', 'waypoint'), service: undefined, waypoint: 'waypoint' },
    },
    { name: 'a pod outside the mesh, by its address, is reached in plain TCP', from: '10.0.0.1', to: '10.0.2.1', port: 5432, expect: { kind: 'passthrough', to: '10.0.2.1:5432', service: undefined } },
  ];
  for (const r of rows) {
    it(r.name, () => {
      const d = buildRequest(state, 'node-a', r.from, { host: r.to, port: r.port }, { pick: () => 0 });
      assert.deepEqual(summary(d), r.expect);
    });
  }

  for (const to of ['127.0.0.1', '127.3.2.1', '0.0.0.0', '::1', '::', '::ffff:127.0.0.1']) {
    it(`a captured connection to ${to} (this node's own localhost: its admin port) is refused, never passed through`, () => {
      const d = buildRequest(state, 'node-a', '10.0.0.1', { host: to, port: 15000, captured: true }, { pick: () => 0 });
      assert.deepEqual(summary(d), { kind: 'refuse', code: 'loopback_destination', source: 'client', service: undefined });
    });
  }

  it('a captured connection to an ordinary address outside the mesh is still passed through', () => {
    const d = buildRequest(state, 'node-a', '10.0.0.1', { host: '192.0.2.1', port: 443, captured: true }, { pick: () => 0 });
    assert.deepEqual(summary(d), { kind: 'passthrough', to: '192.0.2.1:443', service: undefined });
  });

  it('over SOCKS5 (not captured) a loopback destination is passed through as before: the local mesh\'s apps live on loopback', () => {
    const d = buildRequest(state, 'node-a', '10.0.0.1', { host: '127.0.0.1', port: 8080 }, { pick: () => 0 });
    assert.deepEqual(summary(d), { kind: 'passthrough', to: '127.0.0.1:8080', service: undefined });
  });

  it('an IPv4-mapped source address is the same source', () => {
    const d = buildRequest(state, 'node-a', '::ffff:10.0.0.1', { host: '10.96.0.10', port: 80 }, { pick: roundRobin() });
    assert.equal(d.kind, 'hbone');
  });
});

const allow = (name: string, rules: L4Rule[], notes: string[] = []): AuthorizationResource =>
  ({ type: 'authz', name, namespace: 'apps', scope: 'namespace', action: 'ALLOW', rules, notes });
const deny = (name: string, principals: string[]): AuthorizationResource =>
  ({ type: 'authz', name, namespace: 'apps', scope: 'namespace', action: 'DENY', rules: [{ from: [{ principals }] }], notes: [] });
const audit = (name: string): AuthorizationResource => ({ type: 'authz', name, namespace: 'apps', scope: 'namespace', action: 'AUDIT', rules: [{}], notes: [] });
const strict: AuthorizationResource = { type: 'peerauthn', name: 'default', namespace: 'apps', scope: 'namespace', mode: 'STRICT', portLevel: {} };

/** The parts of an inbound decision a row checks. */
function verdict(d: InboundDecision): Record<string, unknown> {
  return {
    kind: d.kind, ...(d.kind === 'refuse' ? { code: d.code } : { policy: d.authz.policy }),
    sourceIp: d.sourceIp, source: d.source?.name, workload: d.workload?.name,
  };
}

describe('decideInbound: whether an arrival on node-b reaches its pod', () => {
  const hbone = (target: string, port: number, peer: string, o: Partial<InboundArrival> = {}): InboundArrival =>
    ({ target: { host: target, port }, peerIdentity: peer, remoteAddress: '10.1.0.1', ...o });
  const plaintext = (target: string, port: number, from: string): InboundArrival => ({ target: { host: target, port }, remoteAddress: from });
  const rows: { name: string; policies?: AuthorizationResource[]; arrival: InboundArrival; expect: Record<string, unknown> }[] = [
    { name: 'an address that is no workload is an unknown target', arrival: hbone('10.0.5.5', 80, id('apps', 'client')), expect: { kind: 'refuse', code: 'unknown_target', sourceIp: '10.1.0.1', source: undefined, workload: undefined } },
    { name: 'a pod of another node is an unknown target here', arrival: hbone('10.0.0.1', 80, id('apps', 'web-1')), expect: { kind: 'refuse', code: 'unknown_target', sourceIp: '10.1.0.1', source: undefined, workload: 'client' } },
    { name: 'a pod outside the mesh is an unknown target', arrival: hbone('10.0.2.1', 5432, id('apps', 'client')), expect: { kind: 'refuse', code: 'unknown_target', sourceIp: '10.1.0.1', source: undefined, workload: 'db' } },
    {
      name: 'the source is the forwarded workload when its identity is the peer\'s', arrival: hbone('10.0.1.1', 8080, id('apps', 'client'), { forwardedFor: '10.0.0.1' }),
      expect: { kind: 'allow', policy: undefined, sourceIp: '10.0.0.1', source: 'client', workload: 'web-1' },
    },
    {
      name: 'a forwarded address of another identity is not trusted: the TCP peer is the source', arrival: hbone('10.0.1.1', 8080, id('apps', 'evil'), { forwardedFor: '10.0.0.1' }),
      expect: { kind: 'allow', policy: undefined, sourceIp: '10.1.0.1', source: undefined, workload: 'web-1' },
    },
    { name: 'a waypoint-bound pod refuses anyone but its waypoint', arrival: hbone('10.0.3.1', 80, id('apps', 'client')), expect: { kind: 'refuse', code: 'waypoint_required', sourceIp: '10.1.0.1', source: undefined, workload: 'bound' } },
    { name: 'a waypoint-bound pod admits its waypoint', arrival: hbone('10.0.3.1', 80, id('apps', 'waypoint')), expect: { kind: 'allow', policy: undefined, sourceIp: '10.1.0.1', source: undefined, workload: 'bound' } },
    { name: 'plaintext is admitted under the default PERMISSIVE, its source known by address', arrival: plaintext('10.0.1.1', 8080, '10.0.0.5'), expect: { kind: 'allow', policy: undefined, sourceIp: '10.0.0.5', source: 'legacy', workload: 'web-1' } },
    { name: 'plaintext is refused under STRICT', policies: [strict], arrival: plaintext('10.0.1.1', 8080, '10.0.0.5'), expect: { kind: 'refuse', code: 'mtls_required', sourceIp: '10.0.0.5', source: 'legacy', workload: 'web-1' } },
    { name: 'mTLS is admitted under STRICT', policies: [strict], arrival: hbone('10.0.1.1', 8080, id('apps', 'client')), expect: { kind: 'allow', policy: undefined, sourceIp: '10.1.0.1', source: undefined, workload: 'web-1' } },
    {
      name: 'a matching DENY policy denies', policies: [deny('no-client', ['cluster.local/ns/apps/sa/client'])], arrival: hbone('10.0.1.1', 8080, id('apps', 'client')),
      expect: { kind: 'refuse', code: 'policy_denied', sourceIp: '10.1.0.1', source: undefined, workload: 'web-1' },
    },
    {
      name: 'a matching ALLOW policy allows, and is named', policies: [allow('only-client', [{ from: [{ principals: ['cluster.local/ns/apps/sa/client'] }] }])], arrival: hbone('10.0.1.1', 8080, id('apps', 'client')),
      expect: { kind: 'allow', policy: 'apps/only-client', sourceIp: '10.1.0.1', source: undefined, workload: 'web-1' },
    },
    {
      name: 'ALLOW policies of which none matches deny', policies: [allow('only-other', [{ from: [{ principals: ['cluster.local/ns/apps/sa/other'] }] }])], arrival: hbone('10.0.1.1', 8080, id('apps', 'client')),
      expect: { kind: 'refuse', code: 'policy_denied', sourceIp: '10.1.0.1', source: undefined, workload: 'web-1' },
    },
    {
      name: 'DENY wins over a matching ALLOW', policies: [allow('all', [{}]), deny('no-client', ['cluster.local/ns/apps/sa/client'])], arrival: hbone('10.0.1.1', 8080, id('apps', 'client')),
      expect: { kind: 'refuse', code: 'policy_denied', sourceIp: '10.1.0.1', source: undefined, workload: 'web-1' },
    },
    { name: 'an AUDIT policy never decides', policies: [audit('watch')], arrival: hbone('10.0.1.1', 8080, id('apps', 'client')), expect: { kind: 'allow', policy: undefined, sourceIp: '10.1.0.1', source: undefined, workload: 'web-1' } },
  ];
  for (const r of rows) {
    it(r.name, () => assert.deepEqual(verdict(decideInbound(stateWith(r.policies), 'node-b', r.arrival)), r.expect));
  }

  it('an AUDIT match is reported with the decision', () => {
    const d = decideInbound(stateWith([audit('watch')]), 'node-b', hbone('10.0.1.1', 8080, id('apps', 'client')));
    assert.equal(d.kind, 'allow');
    assert.deepEqual(d.kind === 'allow' && d.authz.audited, ['apps/watch']);
  });
});

describe('the service both ends name', () => {
  const state = stateWith();
  const at = (o: Partial<InboundArrival>) => decideInbound(state, 'node-b', { target: { host: '10.0.1.1', port: 8080 }, peerIdentity: id('apps', 'client'), remoteAddress: '10.1.0.1', ...o });

  it('the source sends the service VIP:port it resolved along with the endpoint it picked', () => {
    const d = buildRequest(state, 'node-a', '10.0.0.1', { host: 'web.apps.svc.cluster.local', port: 80 }, { pick: () => 0 });
    assert.equal(d.kind, 'hbone');
    assert.deepEqual(d.kind === 'hbone' && d.originalDestination, { host: '10.96.0.10', port: 80 });
  });

  it('the destination names the service of the original destination when the target serves it on that port', () => {
    assert.equal(at({ originalDestination: { host: '10.96.0.10', port: 80 } }).service?.name, 'web');
  });

  it('without one (or with one the target does not serve), it names the target\'s service for that port', () => {
    assert.equal(at({}).service?.name, 'web');
    assert.equal(at({ originalDestination: { host: '10.96.0.20', port: 5432 } }).service?.name, 'web', 'db does not select web-1');
  });

  it('names no service for a port no service of the target maps to', () => {
    assert.equal(at({ target: { host: '10.0.1.1', port: 9999 } }).service, undefined);
  });
});

describe('a denial caused by an ALLOW rule dropped for needing L7', () => {
  it('says which rule was dropped and what to do', () => {
    const getOnly = allow('get-only', [], ['rules[0] dropped: to[0].operation.methods need a waypoint (an ALLOW rule with L7 fields never matches at L4)']);
    const d = decideInbound(stateWith([getOnly]), 'node-b', { target: { host: '10.0.1.1', port: 8080 }, peerIdentity: id('apps', 'client'), remoteAddress: '10.1.0.1' });
    assert.equal(d.kind, 'refuse');
    assert.equal(d.kind === 'refuse' && d.code, 'policy_denied');
    assert.match(d.kind === 'refuse' ? d.reason : '', /no ALLOW policy matched \(apps\/get-only\); apps\/get-only rules\[0\] dropped: to\[0\]\.operation\.methods need a waypoint .*; bind a waypoint to the destination \(istio\.io\/use-waypoint\)/);
  });
});

describe('a selector policy the waypoint enforces whole (sidecar compatibility)', () => {
  // reviews-1 is an endpoint of apps/reviews, bound to WAYPOINT; its ALLOW rule needed L7 fields, so at L4 it has none.
  const reviewsPolicy: AuthorizationResource = {
    type: 'authz', name: 'reviews-policy', namespace: 'apps', scope: 'workload', selector: { app: 'reviews-1' }, action: 'ALLOW', rules: [],
    notes: ['rules[0] dropped: to[0].operation.methods need a waypoint (an ALLOW rule with L7 fields never matches at L4)'],
    waypointEnforced: [WAYPOINT.identity],
  };
  const arrival = (peer: string | undefined): InboundArrival => ({ target: { host: '10.0.4.1', port: 9080 }, ...(peer ? { peerIdentity: peer } : {}), remoteAddress: '10.1.0.1' });

  it('lets the waypoint that enforced it through', () => {
    const d = decideInbound(stateWith([reviewsPolicy]), 'node-b', arrival(WAYPOINT.identity));
    assert.deepEqual(verdict(d), { kind: 'allow', policy: undefined, sourceIp: '10.1.0.1', source: undefined, workload: 'reviews-1' });
    assert.equal(d.kind === 'allow' && d.authz.reason, 'allowed: no ALLOW policy applies (apps/reviews-policy enforced by the peer, a waypoint, on the request)');
  });

  it('still applies it at L4 to every other peer: another workload, another waypoint, plaintext; the denial says to go through the service', () => {
    for (const peer of [id('apps', 'client'), UNREADY_WAYPOINT.identity, undefined]) {
      const d = decideInbound(stateWith([reviewsPolicy]), 'node-b', arrival(peer));
      assert.equal(d.kind === 'refuse' && d.code, 'policy_denied', `peer ${peer ?? 'plaintext'}`);
      assert.equal(d.kind === 'refuse' && d.reason, 'denied: no ALLOW policy matched (apps/reviews-policy); apps/reviews-policy is enforced whole by the destination\'s waypoint, and this connection did not come through it: send the request to the service, not to the pod\'s address');
    }
  });

  it('exempts the waypoint from that policy only: a DENY policy it does not enforce still denies it', () => {
    const denyWaypoint = deny('no-waypoint', [WAYPOINT.identity.slice('spiffe://'.length)]);
    const d = decideInbound(stateWith([reviewsPolicy, denyWaypoint]), 'node-b', arrival(WAYPOINT.identity));
    assert.equal(d.kind === 'refuse' && d.code, 'policy_denied');
  });
});
