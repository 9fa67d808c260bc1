/**
 * L7 authorization at the waypoint through a real `strait up`, with real curl clients whose identities are their pods'
 * service accounts (the source ztunnel's mTLS, never a header): AuthorizationPolicies with targetRefs to the waypoint's
 * Gateway and to a Service, every operation/source/condition field, DENY before ALLOW, AUDIT; and the product's
 * examples/l7 objects as written — the sidecar-style `orders-policy` and `payment-auth` enforced whole by their
 * waypoints (and at L4 for a client that bypasses them), the `payment-service` retries and the
 * `orders-circuit-breaker` DestinationRule.
 * Addresses: 127.0.205.0/24 (client pods .1-.9, app pods .11-.29, VIPs .101-.129, nodes .201-.202, waypoints .210-.212,
 * the controller .254).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';

import { docs } from '../helpers/manifests.js';
import { TestMesh, demoPod, node } from '../helpers/mesh.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually } from '../helpers/eventually.js';
import { socks5Connect } from '../../src/demo/socks5-client.js';

const EXAMPLES = new URL('../../../examples/l7/', import.meta.url).pathname;
/** The objects of one examples/l7 file, as written. */
const example = (file: string, kind: string, name: string): Record<string, any> => {
  const all = parseAllDocuments(readFileSync(join(EXAMPLES, file), 'utf8')).map((d) => d.toJS() as Record<string, any>);
  const o = all.find((x) => x?.kind === kind && x.metadata?.name === name);
  assert.ok(o, `examples/l7/${file} has ${kind} ${name}`);
  return o;
};

const ALICE = '127.0.205.1';
const BOB = '127.0.205.2';
const CAROL = '127.0.205.3';
const FRONTEND = '127.0.205.4';
const ORDER_SERVICE = '127.0.205.5';
const ORDERS_POD = '127.0.205.21';

const ns = (name: string, labels: Record<string, string>) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });
const enrolled = { 'istio.io/dataplane-mode': 'ambient', 'istio.io/use-waypoint': 'waypoint' };
const gateway = (namespace: string, address: string) => ({
  apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'waypoint', namespace, labels: { 'istio.io/waypoint-for': 'service' } },
  spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }], addresses: [{ type: 'IPAddress', value: address }] },
});
/** A client pod: only its address and service account matter (no app runs). */
const client = (namespace: string, name: string, ip: string, sa: string) => ({
  apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace, labels: { app: name } },
  spec: { nodeName: 'node-a', serviceAccountName: sa, containers: [{ name: 'c', image: 'example/client' }] },
  status: { podIP: ip },
});
const service = (namespace: string, name: string, ip: string, ports = [{ name: 'http', port: 80, targetPort: 8080 }]) => ({
  apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec: { clusterIP: ip, selector: { app: name }, ports },
});
const policy = (name: string, spec: Record<string, unknown>) => ({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name, namespace: 'authz' }, spec });
const toGateway = { targetRefs: [{ kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'waypoint' }] };
const toApi = { targetRefs: [{ kind: 'Service', group: '', name: 'api' }] };
const principal = (sa: string, namespace = 'authz') => `cluster.local/ns/${namespace}/sa/${sa}`;

describe('L7 authorization at the waypoint through strait up, with the callers\' real identities', () => {
  const dir = tempDir('waypoint-authz');
  let mesh: TestMesh;

  before(async () => {
    writeFileSync(join(dir.path, 'mesh.yaml'), docs(
      ns('authz', enrolled), ns('other', { 'istio.io/dataplane-mode': 'ambient' }),
      // The examples' namespaces, each with its waypoint (as examples/l7/05-waypoints.yaml, on this test's addresses).
      ...parseAllDocuments(readFileSync(join(EXAMPLES, '00-namespaces.yaml'), 'utf8')).map((d) => d.toJS()),
      node('node-a', '127.0.205.201'), node('node-b', '127.0.205.202'),
      gateway('authz', '127.0.205.210'), gateway('default', '127.0.205.211'), gateway('production', '127.0.205.212'),
      client('authz', 'alice', ALICE, 'alice'), client('authz', 'bob', BOB, 'bob'), client('other', 'carol', CAROL, 'carol'),
      client('default', 'frontend-1', FRONTEND, 'frontend'), client('production', 'order-service-1', ORDER_SERVICE, 'order-service'),
      demoPod('authz', 'api', 'node-b', '127.0.205.11', 'api'),
      demoPod('authz', 'admin', 'node-b', '127.0.205.12', 'admin'),
      demoPod('default', 'orders-1', 'node-b', ORDERS_POD, 'orders', { labels: { app: 'orders', version: 'v1' } }),
      demoPod('production', 'payment-service-1', 'node-b', '127.0.205.22', 'payment-service', { labels: { app: 'payment-service', version: 'v1' } }),
      service('authz', 'api', '127.0.205.101', [{ name: 'http', port: 80, targetPort: 8080 }, { name: 'http-alt', port: 9090, targetPort: 8080 }]),
      service('authz', 'admin', '127.0.205.102'),
      service('default', 'orders', '127.0.205.121'), service('production', 'payment-service', '127.0.205.122'),

      // Every request through the authz waypoint: bob may not touch /admin*, whatever an ALLOW says.
      policy('deny-bob-admin', { ...toGateway, action: 'DENY', rules: [{ from: [{ source: { principals: [principal('bob')] } }], to: [{ operation: { paths: ['/admin*'] } }] }] }),
      // Requests for api only: one rule per field under test; anything else is denied (an ALLOW applies).
      policy('api-allow', { ...toApi, action: 'ALLOW', rules: [
        { from: [{ source: { principals: [principal('alice')] } }], to: [{ operation: { methods: ['GET'], paths: ['/items/{*}'] } }] },
        { to: [{ operation: { paths: ['/exact'] } }] },
        { to: [{ operation: { paths: ['/prefix/*'] } }] },
        { to: [{ operation: { paths: ['*.json'] } }] },
        { to: [{ operation: { paths: ['/files/{**}'] } }] },
        { to: [{ operation: { hosts: ['api.authz'], paths: ['/by-host'] } }] },
        { to: [{ operation: { ports: ['9090'], paths: ['/by-port'] } }] },
        { from: [{ source: { namespaces: ['other'] } }], to: [{ operation: { paths: ['/ns-other'] } }] },
        { from: [{ source: { notPrincipals: [principal('alice')] } }], to: [{ operation: { paths: ['/not-alice'] } }] },
        { from: [{ source: { notNamespaces: ['authz'] } }], to: [{ operation: { paths: ['/not-authz'] } }] },
        { to: [{ operation: { notMethods: ['DELETE'], paths: ['/no-delete'] } }] },
        { to: [{ operation: { paths: ['/team'] } }], when: [{ key: 'request.headers[x-team]', values: ['blue'] }] },
        { to: [{ operation: { paths: ['/token'] } }], when: [{ key: 'request.headers[x-token]', values: ['*'] }] },
        { to: [{ operation: { paths: ['/bob-only'] } }], when: [{ key: 'source.principal', values: [principal('bob')] }] },
        { from: [{ source: { ipBlocks: [`${CAROL}/32`] } }], to: [{ operation: { paths: ['/from-carol-ip'] } }] },
        { from: [{ source: { remoteIpBlocks: [CAROL] } }], to: [{ operation: { paths: ['/remote-carol'] } }] },
        { to: [{ operation: { paths: ['/admin*', '/audited'] } }] },
      ] }),
      policy('api-audit', { ...toApi, action: 'AUDIT', rules: [{ to: [{ operation: { paths: ['/audited'] } }] }] }),

      // examples/l7 as written: the sidecar-style policies, the payment retries, the orders circuit breaker.
      example('40-security.yaml', 'AuthorizationPolicy', 'orders-policy'),
      example('40-security.yaml', 'AuthorizationPolicy', 'payment-auth'),
      example('30-routing.yaml', 'VirtualService', 'payment-service'),
      example('30-routing.yaml', 'DestinationRule', 'orders-circuit-breaker'),
    ));
    mesh = await new TestMesh(dir.path, ['--controller-address', '127.0.205.254']).start();
  });
  after(async () => {
    await mesh?.stop();
    mesh?.cleanup();
    dir.remove();
  });

  const waypoint = (namespace: string) => (mesh.readState() as unknown as { waypoints: Record<string, { admin: string }> }).waypoints[`${namespace}/waypoint`]!;
  const accessLines = (namespace: string) => mesh.logs(`waypoint/${namespace}/waypoint`).filter((l) => l.msg === 'request complete');
  /** One request from a client pod, and its waypoint access-log line. */
  const call = async (from: string, url: string, o: { method?: string; headers?: Record<string, string>; h2?: boolean; ns?: string } = {}) => {
    const id = randomUUID();
    const headers = { 'x-request-id': id, 'x-request-key': id, ...o.headers };
    const r = await mesh.curlJson(from, 'node-a', url, [
      ...(o.method ? ['-X', o.method] : []), ...(o.h2 ? ['--http2-prior-knowledge'] : []),
      ...Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]),
    ]);
    assert.equal(r.exit, 0, `curl ${url}: ${r.stderr}`);
    const wpNs = o.ns ?? new URL(url).hostname.split('.')[1]!;
    const log = await eventually(() => accessLines(wpNs).find((l) => l.request_id === id), 3000, `access-log line of ${url} (answered ${r.status} ${r.text.slice(0, 200)})`);
    return { ...r, log };
  };
  const allowed = async (from: string, url: string, o: Parameters<typeof call>[2] = {}) => {
    const r = await call(from, url, o);
    assert.equal(r.status, 200, `${from} ${o.method ?? 'GET'} ${url} should be allowed: ${r.status} ${r.text}`);
    return r;
  };
  const denied = async (from: string, url: string, o: Parameters<typeof call>[2] = {}) => {
    const r = await call(from, url, o);
    assert.equal(r.status, 403, `${from} ${o.method ?? 'GET'} ${url} should be denied: ${r.status} ${r.text}`);
    assert.equal(r.text, 'RBAC: access denied');
    assert.equal(r.log.attempts, 0, 'a denied request never goes upstream');
    return r;
  };

  describe('policies targeting the waypoint\'s Gateway and a Service', () => {
    it('checks methods and {*} templates against the caller\'s principal', async () => {
      const ok = await allowed(ALICE, 'http://api.authz/items/42');
      assert.equal(ok.body.caller.identity, 'spiffe://cluster.local/ns/authz/sa/waypoint', 'the app sees the waypoint; the waypoint saw alice');
      assert.equal(ok.log['src.identity'], 'spiffe://cluster.local/ns/authz/sa/alice');
      await allowed(ALICE, 'http://api.authz/items/42', { h2: true });
      await denied(ALICE, 'http://api.authz/items/42', { method: 'POST' });
      await denied(ALICE, 'http://api.authz/items/42/more');
      await denied(ALICE, 'http://api.authz/items/');
      await denied(BOB, 'http://api.authz/items/42');
    });

    it('matches exact, prefix, suffix and {**} paths, on the normalised path', async () => {
      await allowed(BOB, 'http://api.authz/exact');
      await denied(BOB, 'http://api.authz/exact/');
      await allowed(BOB, 'http://api.authz/prefix/a/b');
      await denied(BOB, 'http://api.authz/prefixed');
      await allowed(BOB, 'http://api.authz/data/report.json');
      await allowed(BOB, 'http://api.authz/data/report.json?x=1', { h2: true });
      await denied(BOB, 'http://api.authz/data/report.jsonx');
      await allowed(BOB, 'http://api.authz/files/a/b/c');
      await allowed(BOB, 'http://api.authz/files/');
      // Paths are normalised before policies see them: "%65" is "e", "/prefix/%2e%2e/x" is "/x" (not under /prefix/).
      await allowed(BOB, 'http://api.authz/%65xact');
      await denied(BOB, 'http://api.authz/prefix/%2e%2e/secret');
      const up = await allowed(BOB, 'http://api.authz/prefix/%2e%2e/exact');
      assert.equal(up.body.path, '/exact', 'the backend gets the normalised path the policy checked');
    });

    it('matches hosts and ports', async () => {
      await allowed(CAROL, 'http://api.authz/by-host');
      await denied(CAROL, 'http://api.authz/by-host', { headers: { host: 'evil.example' } });
      await allowed(CAROL, 'http://api.authz:9090/by-port');
      await denied(CAROL, 'http://api.authz/by-port');
    });

    it('matches principals, namespaces and their not forms', async () => {
      await allowed(CAROL, 'http://api.authz/ns-other');
      await denied(ALICE, 'http://api.authz/ns-other');
      await allowed(BOB, 'http://api.authz/not-alice');
      await denied(ALICE, 'http://api.authz/not-alice');
      await allowed(CAROL, 'http://api.authz/not-authz');
      await denied(BOB, 'http://api.authz/not-authz');
      await allowed(BOB, 'http://api.authz/no-delete', { method: 'PUT' });
      await denied(BOB, 'http://api.authz/no-delete', { method: 'DELETE' });
    });

    it('matches ipBlocks and remoteIpBlocks on the caller\'s address, which X-Forwarded-For cannot change', async () => {
      await allowed(CAROL, 'http://api.authz/from-carol-ip');
      await denied(ALICE, 'http://api.authz/from-carol-ip', { headers: { 'x-forwarded-for': CAROL } });
      await allowed(CAROL, 'http://api.authz/remote-carol');
      // Istio's default (numTrustedProxies 0): remote.ip is the downstream address, X-Forwarded-For is not trusted.
      await denied(ALICE, 'http://api.authz/remote-carol', { headers: { 'x-forwarded-for': CAROL } });
      await denied(ALICE, 'http://api.authz/remote-carol', { headers: { 'x-forwarded-for': `${CAROL}, ${ALICE}` }, h2: true });
    });

    it('relays a connection that is not HTTP only under the L4 parts of the policies: HTTP fields of an ALLOW never match, of a DENY always do', async () => {
      /**
       * A client that says nothing for 1.5 s (a server-first protocol: the waypoint relays it as TCP), then sends an
       * HTTP request; what comes back before the connection closes.
       */
      const tcp = async (from: string, host: string) => {
        const r = await socks5Connect({ proxy: { host: mesh.state.nodes['node-a'].address, port: 15080 }, localAddress: from, target: { host, port: 80 }, timeoutMs: 5000 });
        assert.ok(r.ok, r.ok ? '' : r.message);
        return new Promise<string>((resolve) => {
          let text = '';
          const t = setTimeout(() => { r.socket.destroy(); resolve(text); }, 4000);
          r.socket.on('data', (d) => { text += d.toString('latin1'); if (text.includes('"app"')) r.socket.destroy(); });
          r.socket.on('close', () => { clearTimeout(t); resolve(text); });
          r.socket.on('error', () => undefined);
          r.socket.resume();
          setTimeout(() => { if (!r.socket.destroyed) r.socket.write(`GET /tcp HTTP/1.1\r\nhost: ${host}\r\n\r\n`); }, 1500);
        });
      };
      const [api, adminBob, adminAlice] = await Promise.all([tcp(ALICE, 'api.authz'), tcp(BOB, 'admin.authz'), tcp(ALICE, 'admin.authz')]);
      assert.equal(api, '', 'api-allow has no rule without HTTP fields');
      assert.equal(adminBob, '', 'deny-bob-admin matches bob on its principal alone');
      assert.match(adminAlice, /^HTTP\/1\.1 200 /, 'nothing denies alice on admin: relayed to the app');
      const refused = mesh.logs('waypoint/authz/waypoint').filter((l) => l.reason === 'policy_denied');
      assert.ok(refused.some((l) => l['src.identity'] === `spiffe://${principal('bob')}` && /deny-bob-admin/.test(l.error)), JSON.stringify(refused));
    });

    it('checks `when` request headers (value and presence) and source.principal', async () => {
      await allowed(ALICE, 'http://api.authz/team', { headers: { 'x-team': 'blue' } });
      await denied(ALICE, 'http://api.authz/team', { headers: { 'x-team': 'red' } });
      await denied(ALICE, 'http://api.authz/team');
      await allowed(ALICE, 'http://api.authz/token', { headers: { 'x-token': 'anything' } });
      await denied(ALICE, 'http://api.authz/token');
      await allowed(BOB, 'http://api.authz/bob-only', { h2: true });
      await denied(ALICE, 'http://api.authz/bob-only');
    });

    it('never takes the principal from a header the client sets', async () => {
      const forged = {
        'x-forwarded-client-cert': `By=spiffe://cluster.local/ns/authz/sa/api;URI=spiffe://${principal('bob')}`,
        'x-spiffe-id': `spiffe://${principal('bob')}`, 'x-forwarded-for': BOB, 'x-envoy-peer-metadata-id': 'sidecar~127.0.205.2~bob.authz~authz.svc.cluster.local',
      };
      const r = await denied(ALICE, 'http://api.authz/bob-only', { headers: forged });
      assert.equal(r.log['src.identity'], `spiffe://${principal('alice')}`);
      await denied(ALICE, 'http://api.authz/not-alice', { headers: forged, h2: true });
      // Nor does the app behind the waypoint get a client's forged certificate details (Envoy's default: sanitised).
      const through = await allowed(ALICE, 'http://api.authz/items/1', { headers: forged });
      assert.equal(through.body.headers['x-forwarded-client-cert'], undefined, 'a forged x-forwarded-client-cert reached the app');
    });

    it('denies with 403 "RBAC: access denied" when ALLOW policies apply and none matches, naming them in the access log', async () => {
      const r = await denied(BOB, 'http://api.authz/nothing-allows-this');
      assert.equal(r.log.policy, 'authz/api-allow');
      assert.equal(r.log.error, 'rbac_access_denied_matched_policy[none]');
      assert.equal(r.log.response_flags, '-', 'an RBAC denial carries no response flag, as in Envoy');
      const h2 = await denied(BOB, 'http://api.authz/nothing-allows-this', { h2: true });
      assert.equal(h2.httpVersion, '2');
    });

    it('authorizes an HTTP/1.1 Upgrade (WebSocket) request like any other before it reaches the backend', async () => {
      const upgrade = { connection: 'Upgrade', upgrade: 'websocket' };
      const r = await denied(BOB, 'http://api.authz/nothing-allows-this', { headers: upgrade });
      assert.equal(r.log.policy, 'authz/api-allow');
      await denied(BOB, 'http://admin.authz/admin/users', { headers: upgrade });
    });

    it('applies DENY before ALLOW, on every service of the Gateway it targets, and names the DENY policy', async () => {
      await allowed(ALICE, 'http://api.authz/admin/panel');
      const r = await denied(BOB, 'http://api.authz/admin/panel');
      assert.equal(r.log.policy, 'authz/deny-bob-admin');
      assert.equal(r.log.error, 'rbac_access_denied_matched_policy[ns[authz]-policy[deny-bob-admin]-rule[0]]');
      // admin: only the Gateway's DENY applies (api-allow targets the api Service), so the rest is allowed.
      await denied(BOB, 'http://admin.authz/admin/users');
      await allowed(BOB, 'http://admin.authz/anything');
      await allowed(ALICE, 'http://admin.authz/admin/users');
    });

    it('logs what an AUDIT policy matches and lets it through', async () => {
      const r = await allowed(CAROL, 'http://api.authz/audited');
      assert.equal(r.log.audit, 'authz/api-audit');
      const plain = await allowed(CAROL, 'http://api.authz/exact');
      assert.equal(plain.log.audit, undefined);
    });
  });

  describe('examples/l7 as written', () => {
    it('enforces the sidecar-style orders-policy whole at the default waypoint: frontend may GET and POST /api/orders*, nothing else', async () => {
      const ok = await allowed(FRONTEND, 'http://orders.default/api/orders/7');
      assert.equal(ok.body.caller.identity, 'spiffe://cluster.local/ns/default/sa/waypoint', 'the destination ztunnel admitted the waypoint');
      await allowed(FRONTEND, 'http://orders.default/api/orders', { method: 'POST', h2: true });
      await denied(FRONTEND, 'http://orders.default/api/orders/7', { method: 'DELETE' });
      await denied(FRONTEND, 'http://orders.default/admin');
      const other = await denied(ALICE, 'http://orders.default/api/orders/7');
      assert.equal(other.log.policy, 'default/orders-policy');
    });

    it('denies at L4 a client that dials the orders pod directly, bypassing the waypoint', async () => {
      const r = await mesh.curlJson(FRONTEND, 'node-a', `http://${ORDERS_POD}:8080/api/orders/7`);
      assert.notEqual(r.exit, 0, `the connection was refused: ${r.status} ${r.text}`);
      assert.equal(r.status, 0);
      const line = await eventually(() => mesh.logs('ztunnel/node-b').find((l) => l.msg === 'connection refused' && l['dst.workload'] === 'orders-1' && l['src.identity'] === 'spiffe://cluster.local/ns/default/sa/frontend'), 3000, 'the destination ztunnel logs the denial');
      assert.equal(line.reason, 'policy_denied');
      assert.match(line.error, /default\/orders-policy is enforced whole by the destination's waypoint/);
    });

    it('enforces payment-auth: only order-service may POST /process-payment', async () => {
      await allowed(ORDER_SERVICE, 'http://payment-service.production/process-payment', { method: 'POST' });
      await denied(ORDER_SERVICE, 'http://payment-service.production/process-payment');
      await denied(FRONTEND, 'http://payment-service.production/process-payment', { method: 'POST' });
    });

    it('retries payments as Istio would: a 409 and a 503 three times (4 tries, URX), a 500 not at all', async () => {
      for (const status of [409, 503]) {
        const r = await call(ORDER_SERVICE, 'http://payment-service.production/process-payment', { method: 'POST', headers: { 'x-demo-status': String(status) } });
        assert.equal(r.status, status);
        assert.equal(r.body.attempt, 4, `${status}: retryOn gateway-error,connect-failure,retriable-4xx with attempts 3`);
        assert.equal(r.log.attempts, 4);
        assert.equal(r.log.response_flags, 'URX');
      }
      const r500 = await call(ORDER_SERVICE, 'http://payment-service.production/process-payment', { method: 'POST', headers: { 'x-demo-status': '500' } });
      assert.equal(r500.status, 500);
      assert.equal(r500.body.attempt, 1);
    });

    it('applies orders-circuit-breaker to the orders cluster of the default waypoint', async () => {
      await allowed(FRONTEND, 'http://orders.default/api/orders');
      const dump = await (await fetch(`http://${waypoint('default').admin}/config_dump`)).json() as { clusters: { name: string; policy: unknown; circuitBreaker: { limits: Record<string, number> } }[] };
      const cl = dump.clusters.find((c) => c.name === 'default/orders:80');
      assert.ok(cl, JSON.stringify(dump.clusters.map((c) => c.name)));
      assert.deepEqual(cl.policy, {
        connectionPool: { maxPendingRequests: 100, maxRequests: 1000 },
        outlierDetection: { consecutive5xxErrors: 5, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 50 },
      });
      assert.equal(cl.circuitBreaker.limits.pending, 100);
      assert.equal(cl.circuitBreaker.limits.requests, 1000);
    });
  });
});
