// The compiled waypoint views reach a waypoint over the real xDS stream: a real `strait controller` on the product's
// L7 examples (examples/l7), a caller speaking gRPC by hand (node:http2) with the waypoint's token, and the ztunnels'
// exemption of the waypoint seen on a node's stream. /debug/configz shows which object routes each service and the
// HTTPRoute status. A change to a VirtualService reaches the waypoint as a delta of that one service.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { WireDeltaResponse } from '../../src/common/xds/index.js';
import { TYPE_AUTHORIZATION, TYPE_POLICY, TYPE_ROUTE, TYPE_SERVICE, TYPE_WORKLOAD } from '../../src/common/xds/resources.js';
import type { AuthorizationResource, RouteAction, ServiceRoutesResource, WaypointPolicyResource } from '../../src/common/xds/resources.js';
import { startController, type ControllerHandle } from '../helpers/controller.js';
import { eventually } from '../helpers/eventually.js';
import { ADS_PATH, RawGrpcCall } from '../helpers/raw-grpc.js';
import { tempDir } from '../helpers/temp-dir.js';
import { bodyOf, wireNode } from '../helpers/xds.js';

const EXAMPLES = fileURLToPath(new URL('../../../examples/l7/', import.meta.url));
/** An HTTPRoute next to the examples: it wins over nothing (frontend has no VirtualService) and names a missing backend. */
const FRONTEND_ROUTE = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: frontend-route, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: frontend, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /beta}}]
    backendRefs: [{name: frontend-beta, port: 80}]
  - backendRefs: [{name: frontend, port: 80}]
`;

/** One ADS stream by hand; responses are read per type and ACKed. */
class Stream {
  readonly call: RawGrpcCall;
  private seen = 0;
  constructor(c: ControllerHandle, metadata: Record<string, string>, private readonly node: ReturnType<typeof wireNode>) {
    this.call = new RawGrpcCall(c.xds, c.rootPem, ADS_PATH, metadata);
  }

  /** Subscribes to `type` (first request of the type carries the node) and returns its first response, ACKed. */
  async subscribe(type: string): Promise<WireDeltaResponse> {
    this.call.writeAds({ node: this.node, type_url: type, resource_names_subscribe: [] });
    return this.next(type);
  }

  /** The next response of `type`, ACKed. */
  async next(type: string, timeoutMs = 5000): Promise<WireDeltaResponse> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const i = this.call.messages.findIndex((m, k) => k >= this.seen && m.type_url === type);
      if (i >= 0) {
        const r = this.call.messages[i]!;
        this.seen = i + 1;
        this.call.writeAds({ type_url: type, response_nonce: r.nonce });
        return r;
      }
      await this.call.waitForMessages(this.call.messages.length + 1, Math.max(1, until - Date.now()));
    }
  }
}

const byName = <T>(r: WireDeltaResponse) => new Map(r.resources.map((x) => [x.name, bodyOf(x) as T]));

describe('compiled waypoint views over xDS', () => {
  const cfg = tempDir('wpv-cfg');
  const data = tempDir('wpv-data');
  let c: ControllerHandle;
  const calls: RawGrpcCall[] = [];

  before(async () => {
    for (const f of readdirSync(EXAMPLES)) copyFileSync(join(EXAMPLES, f), join(cfg.path, f));
    writeFileSync(join(cfg.path, '60-frontend-route.yaml'), FRONTEND_ROUTE);
    c = await startController(cfg.path, data.path, ['--push-debounce', '50ms']);
    await eventually(() => { try { return c.token('waypoint-default-waypoint.token'); } catch { return false; } }, 5000, 'waypoint token');
  });
  after(async () => {
    for (const x of calls) x.close();
    await c?.stop();
    cfg.remove();
    data.remove();
  });

  const waypointStream = () => {
    const s = new Stream(c, { authorization: `Bearer ${c.token('waypoint-default-waypoint.token')}`, 'x-strait-waypoint': 'default/waypoint' },
      wireNode({ id: 'waypoint~default~waypoint', kind: 'waypoint', nodeName: 'node-a', namespace: 'default', name: 'waypoint' }));
    calls.push(s.call);
    return s;
  };

  it('a waypoint receives the route table of each bound service, its policies, workloads and services', async () => {
    const s = waypointStream();
    const routes = byName<ServiceRoutesResource>(await s.subscribe(TYPE_ROUTE));
    assert.deepEqual([...routes.keys()].sort(), ['default/api', 'default/frontend', 'default/orders', 'default/reviews']);
    const api = routes.get('default/api')!;
    assert.deepEqual(api.origin, { kind: 'VirtualService', objects: ['default/api'] });
    assert.deepEqual(api.rules.map((r) => [r.match, (r.action as Extract<RouteAction, { kind: 'forward' }>).backends.map((b) => `${b.subset}:${b.weight}`)]), [
      [{ headers: [{ name: 'x-canary', type: 'exact', value: 'true' }] }, ['v2:1']],
      [{}, ['v1:90', 'v2:10']],
    ]);
    const frontend = routes.get('default/frontend')!;
    assert.deepEqual(frontend.origin, { kind: 'HTTPRoute', objects: ['default/frontend-route'] });
    const beta = frontend.rules[0]!.action;
    assert.deepEqual(beta, { kind: 'fail', status: 500, flag: 'NC', reason: 'backendRef Service default/frontend-beta does not exist' });

    const policies = byName<WaypointPolicyResource>(await s.subscribe(TYPE_POLICY));
    assert.deepEqual([...policies.keys()].sort(), ['authz/default/orders-policy', 'backend/default/api', 'backend/default/orders', 'backend/default/reviews', 'tracing/istio-system/tracing']);
    const orders = policies.get('authz/default/orders-policy')!;
    assert.deepEqual(orders.type === 'authz' && orders.scope, { kind: 'workloads', selector: { app: 'orders' }, namespace: 'default', services: ['default/orders'], workloads: ['default/orders-1'] });
    const tracing = policies.get('tracing/istio-system/tracing')!;
    assert.deepEqual(tracing.type === 'tracing' && [tracing.samplingPercentage, tracing.provider?.host, tracing.provider?.port], [10, '127.0.11.20', 9411]);

    assert.ok((await s.subscribe(TYPE_WORKLOAD)).resources.some((r) => r.name === 'default/orders-1'));
    assert.ok((await s.subscribe(TYPE_SERVICE)).resources.some((r) => r.name === 'default/api'));
  });

  it('the ztunnels receive the selector policy with the waypoint that enforces it', async () => {
    const s = new Stream(c, { authorization: `Bearer ${c.token('node-node-a.token')}`, 'x-strait-node': 'node-a' }, wireNode({ id: 'ztunnel~node-a', kind: 'ztunnel', nodeName: 'node-a' }));
    calls.push(s.call);
    const authz = byName<AuthorizationResource>(await s.subscribe(TYPE_AUTHORIZATION));
    const orders = authz.get('authz/default/orders-policy')!;
    assert.deepEqual(orders.type === 'authz' && [orders.rules, orders.waypointEnforced], [[], ['spiffe://cluster.local/ns/default/sa/waypoint']]);
  });

  it('/debug/configz shows which object routes each service and the HTTPRoute status', async () => {
    const cz = (await c.get('/debug/configz')).body;
    assert.deepEqual(cz.waypoints['default/waypoint'].services['default/reviews'].routedBy, { kind: 'VirtualService', objects: ['default/reviews-route'] });
    assert.deepEqual(cz.waypoints['production/waypoint'].policies.sort(), ['authz/production/payment-auth', 'tracing/istio-system/tracing']);
    const conditions = cz.httpRoutes['default/frontend-route'].parents[0].conditions;
    assert.deepEqual(conditions.map((x: { type: string; status: string; reason: string }) => [x.type, x.status, x.reason]), [['Accepted', 'True', 'Accepted'], ['ResolvedRefs', 'False', 'BackendNotFound']]);
    assert.deepEqual(cz.mesh, { source: 'istio-system/istio', selectorPolicies: 'waypoint' });
    assert.ok(cz.warnings.some((w: { text: string }) => /HTTPRoute default\/frontend-route: warning: spec\.rules\[0\]\.backendRefs\[0\]: backendRef Service default\/frontend-beta does not exist/.test(w.text)));
  });

  it('a changed VirtualService reaches the waypoint as a delta of that one service', async () => {
    const s = waypointStream();
    await s.subscribe(TYPE_ROUTE);
    const file = join(cfg.path, '30-routing.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('weight: 90', 'weight: 80').replace('weight: 10', 'weight: 20'));
    const delta = await s.next(TYPE_ROUTE, 5000);
    assert.deepEqual(delta.resources.map((r) => r.name), ['default/api']);
    assert.deepEqual(delta.removed_resources, []);
    const api = bodyOf(delta.resources[0]!) as ServiceRoutesResource;
    assert.deepEqual((api.rules[1]!.action as Extract<RouteAction, { kind: 'forward' }>).backends.map((b) => b.weight), [80, 20]);
  });
});
