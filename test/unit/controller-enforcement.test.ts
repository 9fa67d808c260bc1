import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseManifests } from '../../src/common/model/parse.js';
import { formatProblem, type AuthorizationPolicy } from '../../src/common/model/types.js';
import { enforcementWarnings, type EnforcementOptions } from '../../src/controller/enforcement.js';
import { computeViews, toZtunnelAuthz } from '../../src/controller/views.js';
import { docs, namespace, pod, service, waypoint } from '../helpers/manifests.js';

const opts: EnforcementOptions = { trustDomain: 'cluster.local', rootNamespace: 'istio-system' };

/** The warning lines for a set of objects, as validate, configz and the log print them. */
function warningsFor(objs: unknown[], o: EnforcementOptions = opts): string[] {
  const parsed = parseManifests(docs(...objs), 'mesh.yaml');
  assert.deepEqual(parsed.problems.filter((p) => p.severity === 'error'), [], 'test manifests must be valid');
  const views = computeViews(parsed.objects.map((l) => l.object), o);
  const ws = enforcementWarnings(parsed.objects, views, o);
  for (const w of ws) assert.equal(w.code, 'STRAIT_ERR_CONFIG_NOT_ENFORCED');
  return ws.map(formatProblem);
}

const ap = (name: string, spec: Record<string, unknown>, ns = 'default') => ({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name, namespace: ns }, spec });
const vs = (name: string, hosts: string[], ns = 'default') => ({
  apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name, namespace: ns },
  spec: { hosts, http: [{ match: [{ headers: { 'x-canary': { exact: 'true' } } }], route: [{ destination: { host: hosts[0], subset: 'v2' } }] }, { route: [{ destination: { host: hosts[0], subset: 'v1' }, weight: 90 }, { destination: { host: hosts[0], subset: 'v2' }, weight: 10 }] }] },
});
const dr = (name: string, host: string, ns = 'default') => ({
  apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name, namespace: ns },
  spec: { host, trafficPolicy: { outlierDetection: { consecutive5xxErrors: 5, interval: '10s', baseEjectionTime: '30s', maxEjectionPercent: 50 } } },
});
const telemetry = (name: string, ns: string) => ({
  apiVersion: 'telemetry.istio.io/v1alpha1', kind: 'Telemetry', metadata: { name, namespace: ns },
  spec: { tracing: [{ providers: [{ name: 'jaeger' }], randomSamplingPercentage: 10.0 }] },
});
const httpRoute = (name: string, parentRefs: unknown[], ns = 'default') => ({
  apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name, namespace: ns },
  spec: { parentRefs, rules: [{ backendRefs: [{ name: 'reviews', port: 9080 }] }] },
});
/** The issue's sidecar-style policy: a selector, methods and paths. */
const ordersPolicy = ap('orders-policy', {
  selector: { matchLabels: { app: 'orders' } }, action: 'ALLOW',
  rules: [{ from: [{ source: { principals: ['cluster.local/ns/default/sa/frontend'] } }], to: [{ operation: { methods: ['GET', 'POST'], paths: ['/api/orders*'] } }] }],
});

describe('what nothing enforces: L7 objects', () => {
  it('a VirtualService no waypoint serves: says routing is not applied, what happens instead, and what to do', () => {
    assert.deepEqual(warningsFor([service('default', 'api'), vs('api', ['api'])]), [
      'mesh.yaml doc 2 VirtualService default/api: warning: not enforced: no waypoint serves it, and only a waypoint applies its routes (matches, weights, retries, timeouts, faults); ' +
        'connections to api go straight to the service\'s endpoints, balanced at L4, as if this object did not exist. To have it applied, bind the service to a waypoint ' +
        '(label istio.io/use-waypoint on the Service or its namespace, naming a Gateway with gatewayClassName istio-waypoint)',
    ]);
  });

  it('a VirtualService of a waypoint-bound service is enforced by the waypoint; what it cannot apply is named (subsets no DestinationRule defines)', () => {
    const lines = warningsFor([
      namespace('shop', { 'istio.io/use-waypoint': 'waypoint' }), waypoint('shop', 'waypoint', { address: '10.0.9.9' }), service('shop', 'api'), vs('api', ['api'], 'shop'),
    ]);
    assert.deepEqual(lines, [
      'mesh.yaml doc 4 VirtualService shop/api: warning: spec.http[0].route[0].destination: subset v2 of shop/api is not defined: no DestinationRule applies to shop/api; the requests its weight would get are answered 503 (flag NC)',
      'mesh.yaml doc 4 VirtualService shop/api: warning: spec.http[1].route[0].destination: subset v1 of shop/api is not defined: no DestinationRule applies to shop/api; the requests its weight would get are answered 503 (flag NC)',
      'mesh.yaml doc 4 VirtualService shop/api: warning: spec.http[1].route[1].destination: subset v2 of shop/api is not defined: no DestinationRule applies to shop/api; the requests its weight would get are answered 503 (flag NC)',
    ]);
  });

  it('a DestinationRule, a Telemetry and a GAMMA HTTPRoute each get their own warning', () => {
    const lines = warningsFor([
      service('default', 'orders'), dr('orders-circuit-breaker', 'orders'), telemetry('tracing', 'istio-system'),
      httpRoute('reviews', [{ group: '', kind: 'Service', name: 'reviews', port: 9080 }]),
    ]);
    assert.equal(lines.length, 3);
    assert.match(lines[0]!, /^mesh\.yaml doc 2 DestinationRule default\/orders-circuit-breaker: warning: not enforced: no waypoint serves it, and only a waypoint applies its traffic policy \(subsets, load balancing, connection pool, outlier detection\); connections to orders go straight to the service's endpoints, balanced at L4, with no limits or ejection from this object\./);
    assert.match(lines[1]!, /^mesh\.yaml doc 3 Telemetry istio-system\/tracing: warning: not enforced: no waypoint serves it, and only a waypoint applies its tracing settings; no spans are sent for the requests it names\./);
    assert.match(lines[2]!, /^mesh\.yaml doc 4 HTTPRoute default\/reviews: warning: spec\.parentRefs\[0\]: not accepted \(NoMatchingParent\): Service default\/reviews does not exist/);
  });

  it('an HTTPRoute attached to an ingress Gateway, and that Gateway, are reported as ignored', () => {
    const ingress = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'public', namespace: 'default' }, spec: { gatewayClassName: 'istio', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] } };
    assert.deepEqual(warningsFor([ingress, httpRoute('web', [{ name: 'public' }])]), [
      'mesh.yaml doc 1 Gateway default/public: warning: spec.gatewayClassName: gatewayClassName istio: Strait runs only waypoints (class istio-waypoint) and has no ingress gateways, so nothing listens for this Gateway (ignored)',
      'mesh.yaml doc 2 HTTPRoute default/web: warning: spec.parentRefs[0]: not accepted (NoMatchingParent): Gateway default/public is not a waypoint (gatewayClassName istio-waypoint) Strait runs, and Strait has no ingress gateways',
    ]);
  });

  it('an object a waypoint applies has no warning, and an unbound one keeps its advice', () => {
    const plain = (name: string, ns = 'default') => ({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name, namespace: ns }, spec: { hosts: [name], http: [{ timeout: '5s', route: [{ destination: { host: name } }] }] } });
    const lines = warningsFor([
      namespace('shop', { 'istio.io/use-waypoint': 'waypoint' }), waypoint('shop', 'waypoint', { address: '10.0.9.9' }), service('shop', 'api'), plain('api', 'shop'),
      service('default', 'web'), plain('web'),
    ]);
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /^mesh\.yaml doc 6 VirtualService default\/web: warning: not enforced: no waypoint serves it, .*naming a Gateway with gatewayClassName istio-waypoint\)$/);
  });

  it('plain L4 objects get no warning', () => {
    assert.deepEqual(warningsFor([
      namespace('shop', { 'istio.io/dataplane-mode': 'ambient' }), pod('shop', 'web-1'), service('shop', 'web'),
      ap('l4', { action: 'ALLOW', rules: [{ from: [{ source: { namespaces: ['shop'] } }], to: [{ operation: { ports: ['8080'] } }], when: [{ key: 'source.ip', values: ['10.0.0.0/8'] }] }] }, 'shop'),
      { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'default', namespace: 'istio-system' }, spec: { mtls: { mode: 'STRICT' } } },
    ]), []);
  });
});

describe('what nothing enforces: AuthorizationPolicy', () => {
  it('an ALLOW policy whose only rule has HTTP attributes: the ztunnel drops the rule, so the policy allows nothing and connections are denied', () => {
    assert.deepEqual(warningsFor([ordersPolicy]), [
      'mesh.yaml doc 1 AuthorizationPolicy default/orders-policy: warning: spec.rules: rules[0] (methods, paths) uses HTTP attributes, which the ztunnel cannot check at L4; ' +
        'as in Istio\'s ambient mode the ztunnel leaves that ALLOW rule out (it matches no connection), so this policy allows nothing: every connection to the workloads labelled app=orders ' +
        'in namespace default is DENIED unless another ALLOW policy admits it. To enforce the HTTP attributes, deploy a waypoint (a Gateway with gatewayClassName istio-waypoint) ' +
        'and bind the workloads\' service to it (label istio.io/use-waypoint): it then enforces this whole policy with the caller\'s identity. Or remove the HTTP attributes from the rule',
    ]);
    // What the warning says is what the ztunnels receive: an ALLOW policy with no rule left.
    const p = parseManifests(docs(ordersPolicy), 'x.yaml').objects[0]!.object as AuthorizationPolicy;
    const l4 = toZtunnelAuthz(p, opts)!;
    assert.equal(l4.type === 'authz' && l4.action, 'ALLOW');
    assert.deepEqual(l4.type === 'authz' && l4.rules, []);
  });

  it('an ALLOW policy with an L4 rule beside the HTTP one: only what the HTTP rule would allow is denied', () => {
    const [line] = warningsFor([ap('mixed', {
      action: 'ALLOW',
      rules: [{ from: [{ source: { namespaces: ['ops'] } }] }, { to: [{ operation: { hosts: ['api.example.com'] } }], when: [{ key: 'request.headers[x-user]', values: ['jason'] }] }],
    }, 'shop')]);
    assert.match(line!, /rules\[1\] \(hosts, when request\.headers\[x-user\]\) uses HTTP attributes, .*connections to every workload in namespace shop that only it would allow are DENIED; the policy's other rules still allow\./);
  });

  it('a DENY rule with HTTP attributes: enforced without them, so it denies more than written', () => {
    const [line] = warningsFor([ap('no-delete', { selector: { matchLabels: { app: 'db' } }, action: 'DENY', rules: [{ from: [{ source: { notNamespaces: ['shop'] } }], to: [{ operation: { methods: ['DELETE'] } }] }] }, 'istio-system')]);
    assert.equal(line, 'mesh.yaml doc 1 AuthorizationPolicy istio-system/no-delete: warning: spec.rules: rules[0] (methods) uses HTTP attributes, which the ztunnel cannot check at L4; ' +
      'as in Istio\'s ambient mode the ztunnel enforces that rule without them, so it denies every connection to the workloads labelled app=db in every namespace (root namespace policy) ' +
      'that matches the rest of the rule, whatever the request: more than written. To enforce the HTTP attributes, deploy a waypoint (a Gateway with gatewayClassName istio-waypoint) ' +
      'and bind the workloads\' service to it (label istio.io/use-waypoint): it then enforces this whole policy with the caller\'s identity. Or remove the HTTP attributes from the rule');
  });

  it('a policy with targetRefs to a service no waypoint serves is enforced nowhere, and says so', () => {
    const [line] = warningsFor([service('default', 'reviews'), ap('deny-reviews', { targetRefs: [{ kind: 'Service', group: '', name: 'reviews' }], action: 'DENY', rules: [{}] })]);
    assert.match(line!, /^mesh\.yaml doc 2 AuthorizationPolicy default\/deny-reviews: warning: spec\.targetRefs: not enforced anywhere: it targets Service default\/reviews, which no waypoint serves, and ztunnels apply only policies with a selector \(or none\), as in Istio; nothing it denies is denied\./);
  });

  it('a CUSTOM policy is enforced nowhere', () => {
    const [line] = warningsFor([ap('ext', { action: 'CUSTOM', provider: { name: 'opa' }, rules: [{}] })]);
    assert.match(line!, /^mesh\.yaml doc 1 AuthorizationPolicy default\/ext: warning: spec\.action: not enforced: action CUSTOM \(external authorization by opa\) is not supported by Strait/);
  });
});

describe('what nothing reads: sidecar injection and ConfigMaps', () => {
  it('a pod asking for a sidecar, and a namespace asking for injection, get a note that ambient needs none', () => {
    const sidecarPod = { ...(pod('shop', 'web-1') as Record<string, unknown>), metadata: { name: 'web-1', namespace: 'shop', annotations: { 'sidecar.istio.io/inject': 'true' } } };
    assert.deepEqual(warningsFor([namespace('shop', { 'istio-injection': 'enabled' }), sidecarPod]), [
      'mesh.yaml doc 1 Namespace shop: warning: metadata.labels[istio-injection]: has no effect: it asks for sidecar injection, and ambient mode needs no sidecar: a pod joins the mesh through the label istio.io/dataplane-mode=ambient on its namespace (or on the pod)',
      'mesh.yaml doc 2 Pod shop/web-1: warning: metadata.annotations[sidecar.istio.io/inject]: has no effect: ambient mode needs no sidecar: a pod joins the mesh through the label istio.io/dataplane-mode=ambient on its namespace (or on the pod); this pod is not enrolled',
    ]);
  });

  it('a ConfigMap other than istio in the root namespace is accepted and reported as not read', () => {
    const cm = (name: string, ns: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: ns }, data: { key: 'value' } });
    assert.deepEqual(warningsFor([cm('app-settings', 'shop'), cm('istio', 'istio-system')]), [
      'mesh.yaml doc 1 ConfigMap shop/app-settings: warning: not read: Strait reads only the ConfigMap istio in the root namespace istio-system (its mesh key, Istio\'s mesh config); this ConfigMap is ignored',
    ]);
  });
});
