import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  formatProblem,
  parseManifests,
  validateObject,
  type HTTPRoute,
  type MeshObject,
  type Pod,
  type Problem,
  type Service,
} from '../../src/common/model/index.js';

const SRC = { file: 'policies.yaml', doc: 3 };

function check(raw: unknown): { object?: MeshObject; lines: string[]; problems: Problem[] } {
  const r = validateObject(raw, SRC);
  return { object: r.object, lines: r.problems.map(formatProblem), problems: r.problems };
}

/** The problem lines a single invalid field produces; asserts the object was rejected. */
function rejected(raw: unknown): string[] {
  const r = check(raw);
  assert.equal(r.object, undefined, 'expected the object to be rejected');
  return r.lines;
}

const meta = (name: string, namespace?: string): Record<string, unknown> => (namespace ? { name, namespace } : { name });
const authz = (spec: unknown, name = 'deny-get'): unknown => ({
  apiVersion: 'security.istio.io/v1',
  kind: 'AuthorizationPolicy',
  metadata: meta(name, 'foo'),
  spec,
});
const service = (spec: unknown, name = 'reviews'): unknown => ({ apiVersion: 'v1', kind: 'Service', metadata: meta(name), spec });
const pod = (extra: Record<string, unknown> = {}, name = 'p1'): unknown => ({ apiVersion: 'v1', kind: 'Pod', metadata: meta(name), ...extra });
const route = (spec: unknown): unknown => ({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: meta('r'), spec });
const parent = [{ group: '', kind: 'Service', name: 'reviews', port: 9080 }];
const dr = (spec: unknown): unknown => ({ apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: meta('d'), spec });

// ---------- messages, in full ----------

test('an unknown action names the accepted values', () => {
  assert.deepEqual(rejected(authz({ action: 'BLOCK' })), [
    'policies.yaml doc 3 AuthorizationPolicy foo/deny-get: spec.action: "BLOCK" is not one of ALLOW, DENY, AUDIT, CUSTOM',
  ]);
});

test('a lower-case enum value gets a did-you-mean', () => {
  assert.deepEqual(rejected(authz({ action: 'deny' })), [
    'policies.yaml doc 3 AuthorizationPolicy foo/deny-get: spec.action: "deny" is not one of ALLOW, DENY, AUDIT, CUSTOM (did you mean "DENY"?)',
  ]);
});

test('a principal with "*" in the middle is reported at its exact path', () => {
  const lines = rejected(authz({ rules: [{ from: [{ source: { principals: ['cluster.local/ns/a/sa/b', 'cluster.local/*/sa/b'] } }] }] }));
  assert.deepEqual(lines, [
    'policies.yaml doc 3 AuthorizationPolicy foo/deny-get: spec.rules[0].from[0].source.principals[1]: "cluster.local/*/sa/b" has "*" in the wrong place; use one "*" as the whole value, a prefix ("*.example.com") or a suffix ("cluster.local/ns/foo/*")',
  ]);
});

test('a number where a label value belongs suggests quoting it', () => {
  const lines = rejected({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { version: 2, canary: true } } });
  assert.deepEqual(lines, [
    'policies.yaml doc 3 Namespace shop: metadata.labels[version]: expected a string, got the number 2; quote the value in YAML',
    'policies.yaml doc 3 Namespace shop: metadata.labels[canary]: expected a string, got the boolean true; quote the value in YAML',
  ]);
});

test('an unsupported kind lists the supported apiVersions and kinds', () => {
  assert.deepEqual(rejected({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' } }), [
    'policies.yaml doc 3 Deployment web: kind: "Deployment" is not supported; supported kinds: Namespace, Node, Pod, Service, ConfigMap (v1); EndpointSlice (discovery.k8s.io/v1); ' +
      'AuthorizationPolicy, PeerAuthentication (security.istio.io/v1, v1beta1); VirtualService, DestinationRule (networking.istio.io/v1, v1beta1, v1alpha3); ' +
      'Telemetry (telemetry.istio.io/v1, v1alpha1); Gateway, HTTPRoute (gateway.networking.k8s.io/v1, v1beta1)',
  ]);
});

test('Istio and Gateway API kinds Strait does not implement are warnings that say so, not errors', () => {
  const cases: [string, string, string][] = [
    ['networking.istio.io/v1', 'ServiceEntry', 'Strait\'s registry holds only Services, Pods and EndpointSlices (give a Service without a selector a slice to name outside addresses); connections to destinations outside the mesh pass through as plain TCP'],
    ['networking.istio.io/v1', 'Gateway', 'Istio ingress and egress gateways do not exist in Strait (a waypoint is a gateway.networking.k8s.io Gateway with gatewayClassName istio-waypoint)'],
    ['networking.istio.io/v1beta1', 'Sidecar', 'it configures sidecar proxies, and ambient mode has none'],
    ['networking.istio.io/v1alpha3', 'EnvoyFilter', 'it patches Envoy configuration, and Strait\'s proxies are not Envoy'],
    ['networking.istio.io/v1', 'WorkloadEntry', 'workloads outside Kubernetes (VMs) are not part of a Strait mesh; only Pods are'],
    ['networking.istio.io/v1', 'WorkloadGroup', 'workloads outside Kubernetes (VMs) are not part of a Strait mesh; only Pods are'],
    ['networking.istio.io/v1beta1', 'ProxyConfig', 'Strait\'s proxies take their settings from their command-line flags'],
    ['extensions.istio.io/v1alpha1', 'WasmPlugin', 'Strait\'s proxies run no Wasm modules'],
    ['security.istio.io/v1', 'RequestAuthentication', 'Strait does not validate JWTs: requests carry no request principal, so rules naming requestPrincipals never match'],
    ['gateway.networking.k8s.io/v1', 'GRPCRoute', 'Strait routes with HTTPRoute only; gRPC services get no routing from it'],
    ['gateway.networking.k8s.io/v1alpha2', 'TCPRoute', 'Strait has no TCP routing beyond a Service\'s own endpoints'],
    ['gateway.networking.k8s.io/v1beta1', 'ReferenceGrant', 'Strait reads no ReferenceGrants: an HTTPRoute backendRef or mirror to another namespace is refused (status ResolvedRefs False, RefNotPermitted)'],
  ];
  for (const [apiVersion, kind, why] of cases) {
    const r = check({ apiVersion, kind, metadata: meta('x', 'shop'), spec: { anything: ['goes'] } });
    assert.equal(r.object, undefined);
    const group = apiVersion.slice(0, apiVersion.indexOf('/'));
    assert.deepEqual(r.lines, [`policies.yaml doc 3 ${kind} shop/x: warning: ${group} ${kind} is not supported by Strait (ignored): ${why}`]);
    assert.equal(r.problems[0]!.code, 'STRAIT_ERR_MANIFEST_IGNORED');
  }
  // Cluster-scoped GatewayClass, no namespace given.
  assert.deepEqual(check({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: meta('istio') }).lines, [
    'policies.yaml doc 3 GatewayClass istio: warning: gateway.networking.k8s.io GatewayClass is not supported by Strait (ignored): Strait knows the class istio-waypoint by name and reads no GatewayClass objects',
  ]);
});

test('a misspelt kind in an Istio or Gateway API group is an error listing that group\'s kinds, never a quiet ignore', () => {
  assert.deepEqual(rejected({ apiVersion: 'security.istio.io/v1', kind: 'AuthorisationPolicy', metadata: meta('p', 'foo') }), [
    'policies.yaml doc 3 AuthorisationPolicy foo/p: kind: "AuthorisationPolicy" is not a security.istio.io kind Strait knows (misspelt?); security.istio.io kinds: AuthorizationPolicy, PeerAuthentication (read); RequestAuthentication (ignored)',
  ]);
  assert.deepEqual(rejected({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualServices', metadata: meta('v', 'foo') }), [
    'policies.yaml doc 3 VirtualServices foo/v: kind: "VirtualServices" is not a networking.istio.io kind Strait knows (misspelt?); networking.istio.io kinds: VirtualService, DestinationRule (read); ServiceEntry, Gateway, Sidecar, EnvoyFilter, WorkloadEntry, WorkloadGroup, ProxyConfig (ignored)',
  ]);
});

test('a known kind under the wrong apiVersion names the right ones', () => {
  assert.deepEqual(rejected({ apiVersion: 'networking.istio.io/v1', kind: 'AuthorizationPolicy', metadata: meta('a', 'foo') }), [
    'policies.yaml doc 3 AuthorizationPolicy foo/a: apiVersion: "networking.istio.io/v1" does not serve AuthorizationPolicy; use security.istio.io/v1 or security.istio.io/v1beta1',
  ]);
});

test('a missing apiVersion or kind is reported, and a non-mapping document too', () => {
  assert.deepEqual(rejected({ metadata: { name: 'x' } }), [
    'policies.yaml doc 3: apiVersion: required field is missing; e.g. "v1" or "security.istio.io/v1"',
    'policies.yaml doc 3: kind: required field is missing; supported: Namespace, Node, Pod, Service, ConfigMap (v1); EndpointSlice (discovery.k8s.io/v1); AuthorizationPolicy, PeerAuthentication (security.istio.io/v1, v1beta1); VirtualService, DestinationRule (networking.istio.io/v1, v1beta1, v1alpha3); Telemetry (telemetry.istio.io/v1, v1alpha1); Gateway, HTTPRoute (gateway.networking.k8s.io/v1, v1beta1)',
  ]);
  assert.deepEqual(rejected(['a', 'b']), ['policies.yaml doc 3: expected a mapping with apiVersion, kind and metadata, got a list']);
});

test('a Service port out of range says the accepted range', () => {
  assert.deepEqual(rejected(service({ ports: [{ port: 70000 }] })), [
    'policies.yaml doc 3 Service default/reviews: spec.ports[0].port: 70000 is out of range; expected an integer from 1 to 65535',
  ]);
  assert.deepEqual(rejected(service({ ports: [{ port: '80' }] })), [
    'policies.yaml doc 3 Service default/reviews: spec.ports[0].port: expected an integer from 1 to 65535, got "80"; remove the quotes',
  ]);
});

test('an unknown field is a warning with its path, and the object still loads', () => {
  const r = check(authz({ action: 'DENY', rules: [{ from: [{ source: { namespaces: ['bar'], principal: ['x'] } }] }], colour: 'red' }));
  assert.ok(r.object);
  assert.deepEqual(r.lines, [
    'policies.yaml doc 3 AuthorizationPolicy foo/deny-get: warning: spec.colour: unknown field, ignored',
    'policies.yaml doc 3 AuthorizationPolicy foo/deny-get: warning: spec.rules[0].from[0].source.principal: unknown field, ignored',
  ]);
  assert.equal(r.problems[0]?.severity, 'warning');
});

test('an upstream field Strait does not implement is a warning that says so', () => {
  const r = check(dr({ host: 'reviews', trafficPolicy: { tls: { mode: 'ISTIO_MUTUAL' } } }));
  assert.ok(r.object);
  assert.deepEqual(r.lines, ['policies.yaml doc 3 DestinationRule default/d: warning: spec.trafficPolicy.tls: not supported by Strait, ignored']);
});

test('Kubernetes bookkeeping in metadata and an unused status are accepted silently', () => {
  const r = check({
    ...(authz({ action: 'ALLOW' }) as object),
    metadata: {
      name: 'a',
      namespace: 'foo',
      uid: 'u',
      resourceVersion: '1',
      creationTimestamp: '2024-01-01T00:00:00Z',
      generation: 2,
      managedFields: [{ manager: 'kubectl' }],
      ownerReferences: [],
      finalizers: ['x'],
    },
    status: { conditions: [] },
  });
  assert.ok(r.object);
  assert.deepEqual(r.lines, []);
});

test('every problem carries file, doc, kind, namespace, name and field path', () => {
  const r = check(authz({ rules: [{ from: [{ source: { ipBlocks: ['10.0.0.0/8', '300.1.1.1'] } }] }] }));
  assert.deepEqual(r.problems, [
    {
      severity: 'error',
      file: 'policies.yaml',
      doc: 3,
      kind: 'AuthorizationPolicy',
      namespace: 'foo',
      name: 'deny-get',
      path: 'spec.rules[0].from[0].source.ipBlocks[1]',
      message: '"300.1.1.1" is not a valid IP address or CIDR block (e.g. "10.0.0.1" or "10.0.0.0/16")',
      code: 'STRAIT_ERR_MANIFEST_INVALID',
    },
  ]);
});

// ---------- metadata ----------

test('names follow the Kubernetes format of each kind', () => {
  assert.deepEqual(rejected(service({ ports: [{ port: 80 }] }, '9lives')), [
    'policies.yaml doc 3 Service default/9lives: metadata.name: "9lives" is not a valid DNS-1035 label (at most 63 lowercase letters, digits or \'-\', starting with a letter and ending with a letter or digit)',
  ]);
  assert.ok(check(pod({}, '9lives.v1')).object, 'pod names are DNS subdomains');
  assert.deepEqual(rejected({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'a.b' } }), [
    'policies.yaml doc 3 Namespace a.b: metadata.name: "a.b" is not a valid DNS-1123 label (at most 63 lowercase letters, digits or \'-\', starting and ending with a letter or digit)',
  ]);
  assert.deepEqual(rejected(pod({}, 'Web_1')), [
    'policies.yaml doc 3 Pod default/Web_1: metadata.name: "Web_1" is not a valid DNS-1123 subdomain (lowercase letters, digits, \'-\' and \'.\', each part starting and ending with a letter or digit, at most 253 characters)',
  ]);
});

test('a missing name or metadata is an error', () => {
  assert.deepEqual(rejected({ apiVersion: 'v1', kind: 'Pod', metadata: {} }), ['policies.yaml doc 3 Pod default/<unnamed>: metadata.name: required field is missing']);
  assert.deepEqual(rejected({ apiVersion: 'v1', kind: 'Pod' }), ['policies.yaml doc 3 Pod default/<unnamed>: metadata: required field is missing']);
});

test('namespaced kinds default to namespace "default"; cluster-scoped kinds have none', () => {
  assert.equal(check(pod()).object?.metadata.namespace, 'default');
  const ns = check({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', namespace: 'x' } });
  assert.equal(ns.object?.metadata.namespace, undefined);
  assert.deepEqual(ns.lines, ['policies.yaml doc 3 Namespace shop: warning: metadata.namespace: ignored: Namespace is cluster-scoped']);
});

test('label keys and values follow Kubernetes rules', () => {
  assert.deepEqual(rejected({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', labels: { 'bad key!': 'x', app: 'a b' } } }), [
    'policies.yaml doc 3 Pod default/p: metadata.labels[bad key!]: is not a valid label key (an optional DNS subdomain prefix and "/", then at most 63 letters, digits, \'-\', \'_\' or \'.\', starting and ending with a letter or digit)',
    'policies.yaml doc 3 Pod default/p: metadata.labels[app]: "a b" is not a valid label value (at most 63 letters, digits, \'-\', \'_\' or \'.\', starting and ending with a letter or digit, or empty)',
  ]);
});

test('a misspelt dataplane mode is a warning', () => {
  const r = check({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { 'istio.io/dataplane-mode': 'ambiet' } } });
  assert.ok(r.object);
  assert.deepEqual(r.lines, [
    'policies.yaml doc 3 Namespace shop: warning: metadata.labels[istio.io/dataplane-mode]: "ambiet" is not one of ambient, none; the namespace is not enrolled in the mesh',
  ]);
});

// ---------- Pod ----------

test('a Pod gets the Kubernetes defaults', () => {
  const p = check(pod({ status: { podIP: '10.0.0.5' } })).object as Pod;
  assert.deepEqual(p.spec, { serviceAccountName: 'default', containers: [] });
  assert.deepEqual(p.status, { podIP: '10.0.0.5', podIPs: ['10.0.0.5'], ready: true });
  const bare = check(pod()).object as Pod;
  assert.deepEqual(bare.status, { podIPs: [], ready: true });
});

test('a Pod is not ready only when its Ready condition is "False"', () => {
  const ready = (status: string): boolean => (check(pod({ status: { conditions: [{ type: 'Ready', status }] } })).object as Pod).status.ready;
  assert.equal(ready('False'), false);
  assert.equal(ready('True'), true);
  assert.equal(ready('Unknown'), true);
});

test('pod IPs must be IPv4 or IPv6 addresses and agree with each other', () => {
  assert.deepEqual(rejected(pod({ status: { podIP: '10.0.0.256' } })), [
    'policies.yaml doc 3 Pod default/p1: status.podIP: "10.0.0.256" is not a valid IPv4 or IPv6 address',
  ]);
  const dual = check(pod({ status: { podIP: '10.0.0.5', podIPs: [{ ip: '10.0.0.5' }, { ip: 'fd00::5' }] } })).object as Pod;
  assert.deepEqual(dual.status.podIPs, ['10.0.0.5', 'fd00::5']);
  assert.deepEqual(rejected(pod({ status: { podIP: '10.0.0.5', podIPs: [{ ip: '10.0.0.6' }] } })), [
    'policies.yaml doc 3 Pod default/p1: status.podIPs[0].ip: "10.0.0.6" must equal status.podIP "10.0.0.5"',
  ]);
});

// ---------- Service ----------

test('a Service port defaults targetPort to port and protocol to TCP', () => {
  const s = check(service({ clusterIP: '10.96.0.10', ports: [{ port: 9080 }] })).object as Service;
  assert.deepEqual(s.spec, { clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10'], ports: [{ port: 9080, targetPort: 9080, protocol: 'TCP' }] });
});

test('headless Services may say clusterIP None and need no ports; IPv6 cluster IPs are fine', () => {
  assert.ok(check(service({ clusterIP: 'None', selector: { app: 'db' } })).object);
  assert.ok(check(service({ clusterIP: 'fd00:10:96::a', ports: [{ port: 80 }] })).object);
  assert.deepEqual(rejected(service({ clusterIP: '10.96.0.300', ports: [{ port: 80 }] })), [
    'policies.yaml doc 3 Service default/reviews: spec.clusterIP: "10.96.0.300" is not a valid IPv4 or IPv6 address, "None" (headless) or ""',
  ]);
  assert.deepEqual(rejected(service({ selector: { app: 'x' } })), [
    'policies.yaml doc 3 Service default/reviews: spec.ports: required field is missing; a Service needs at least one port unless it is headless (clusterIP: None)',
  ]);
});

test('Service ports need unique names when there are several', () => {
  assert.deepEqual(rejected(service({ ports: [{ name: 'http', port: 80 }, { name: 'http', port: 81 }, { port: 82 }] })), [
    'policies.yaml doc 3 Service default/reviews: spec.ports[2].name: required field is missing; every port needs a unique name when a Service has more than one',
    'policies.yaml doc 3 Service default/reviews: spec.ports[1].name: duplicate "http", already used by spec.ports[0]',
  ]);
  assert.ok(check(service({ ports: [{ port: 80 }] })).object, 'a single port needs no name');
});

test('targetPort is a port number or an IANA port name, not a quoted number', () => {
  const named = check(service({ ports: [{ port: 80, targetPort: 'http-web' }] })).object as Service;
  assert.equal(named.spec.ports[0]?.targetPort, 'http-web');
  assert.deepEqual(rejected(service({ ports: [{ port: 80, targetPort: '8080' }] })), [
    'policies.yaml doc 3 Service default/reviews: spec.ports[0].targetPort: "8080" is a quoted number; write 8080 without quotes, or use a named container port',
  ]);
  assert.deepEqual(rejected(service({ ports: [{ port: 80, targetPort: 'a-very-long-port-name' }] })), [
    'policies.yaml doc 3 Service default/reviews: spec.ports[0].targetPort: "a-very-long-port-name" is not a valid port name (at most 15 lowercase letters, digits or \'-\', with at least one letter, no leading, trailing or double \'-\')',
  ]);
  assert.deepEqual(rejected(service({ ports: [{ port: 80, targetPort: 0 }] })), [
    'policies.yaml doc 3 Service default/reviews: spec.ports[0].targetPort: 0 is out of range; expected an integer from 1 to 65535',
  ]);
});

// ---------- AuthorizationPolicy ----------

test('an AuthorizationPolicy defaults to ALLOW with no rules', () => {
  const o = check(authz(undefined)).object;
  assert.deepEqual(o?.kind === 'AuthorizationPolicy' && o.spec, { action: 'ALLOW', rules: [] });
});

test('CUSTOM needs a provider, and only CUSTOM may have one', () => {
  assert.deepEqual(rejected(authz({ action: 'CUSTOM' })), [
    'policies.yaml doc 3 AuthorizationPolicy foo/deny-get: spec.provider: required field is missing; action CUSTOM needs the name of an extension provider from the mesh config',
  ]);
  assert.deepEqual(rejected(authz({ action: 'DENY', provider: { name: 'ext' } })), [
    'policies.yaml doc 3 AuthorizationPolicy foo/deny-get: spec.provider: is only allowed with action: CUSTOM',
  ]);
  assert.ok(check(authz({ action: 'CUSTOM', provider: { name: 'ext-authz' }, rules: [{ to: [{ operation: { paths: ['/admin/*'] } }] }] })).object);
});

test('selector and targetRefs are mutually exclusive', () => {
  assert.deepEqual(rejected(authz({ selector: { matchLabels: { app: 'a' } }, targetRefs: [{ kind: 'Service', group: '', name: 'a' }] })), [
    'policies.yaml doc 3 AuthorizationPolicy foo/deny-get: spec.targetRefs: cannot be combined with spec.selector; set only one of selector, targetRef, targetRefs',
  ]);
});

test('targetRefs name a supported kind in the policy namespace', () => {
  assert.deepEqual(rejected(authz({ targetRefs: [{ kind: 'Deployment', name: 'a' }, { kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'w', namespace: 'bar' }] })), [
    'policies.yaml doc 3 AuthorizationPolicy foo/deny-get: spec.targetRefs[0].kind: "Deployment" is not one of Service, ServiceEntry, Gateway, GatewayClass',
    'policies.yaml doc 3 AuthorizationPolicy foo/deny-get: spec.targetRefs[1].namespace: "bar" differs from the policy\'s namespace; policies can only target objects in their own namespace',
  ]);
});

test('ports are numeric strings; numbers are accepted and converted', () => {
  const o = check(authz({ rules: [{ to: [{ operation: { ports: [8080, '9090'], notPorts: ['15008'] } }] }] })).object;
  assert.ok(o && o.kind === 'AuthorizationPolicy');
  assert.deepEqual(o.spec.rules[0]?.to, [{ operation: { ports: ['8080', '9090'], notPorts: ['15008'] } }]);
  assert.deepEqual(rejected(authz({ rules: [{ to: [{ operation: { ports: ['http', 0] } }] }] })), [
    'policies.yaml doc 3 AuthorizationPolicy foo/deny-get: spec.rules[0].to[0].operation.ports[0]: "http" is not a port number from 1 to 65535',
    'policies.yaml doc 3 AuthorizationPolicy foo/deny-get: spec.rules[0].to[0].operation.ports[1]: 0 is not a port number from 1 to 65535',
  ]);
});

test('principals and namespaces are strings; ipBlocks take addresses or CIDRs', () => {
  assert.deepEqual(rejected(authz({ rules: [{ from: [{ source: { principals: [42], namespaces: 'foo' } }] }] })), [
    'policies.yaml doc 3 AuthorizationPolicy foo/deny-get: spec.rules[0].from[0].source.principals[0]: expected a string, got 42',
    'policies.yaml doc 3 AuthorizationPolicy foo/deny-get: spec.rules[0].from[0].source.namespaces: expected a list, got "foo"',
  ]);
  assert.ok(check(authz({ rules: [{ from: [{ source: { ipBlocks: ['10.0.0.1', '10.0.0.0/16', 'fd00::/64'], notIpBlocks: ['::1'] } }] }] })).object);
});

test('wildcards are fine as whole value, prefix or suffix', () => {
  assert.ok(check(authz({ rules: [{ from: [{ source: { principals: ['*', '*/sa/sleep', 'cluster.local/ns/foo/*'], namespaces: ['prod-*'] } }] }] })).object);
  assert.equal(rejected(authz({ rules: [{ from: [{ source: { namespaces: ['*a*'] } }] }] })).length, 1);
});

test('conditions need a supported key and values or notValues', () => {
  assert.deepEqual(rejected(authz({ rules: [{ when: [{ key: '', values: ['a'] }, { key: 'request.headers[x-user]' }, { key: 'source.ip', values: ['nope'] }] }] })), [
    'policies.yaml doc 3 AuthorizationPolicy foo/deny-get: spec.rules[0].when[0].key: required field is missing',
    'policies.yaml doc 3 AuthorizationPolicy foo/deny-get: spec.rules[0].when[1]: needs at least one entry in values or notValues',
    'policies.yaml doc 3 AuthorizationPolicy foo/deny-get: spec.rules[0].when[2].values[0]: "nope" is not a valid IP address or CIDR block (e.g. "10.0.0.1" or "10.0.0.0/16")',
  ]);
  assert.ok(check(authz({ rules: [{ when: [{ key: 'destination.port', notValues: ['9090'] }, { key: 'source.namespace', values: ['a'] }] }] })).object);
});

test('empty from, to and source are rejected as Istio does', () => {
  assert.deepEqual(rejected(authz({ rules: [{ from: [], to: [{ operation: {} }] }] })), [
    'policies.yaml doc 3 AuthorizationPolicy foo/deny-get: spec.rules[0].from: must not be empty; remove the field or add an entry',
    'policies.yaml doc 3 AuthorizationPolicy foo/deny-get: spec.rules[0].to[0].operation: must not be empty; set at least one of hosts, notHosts, ports, notPorts, methods, notMethods, paths, notPaths',
  ]);
});

// ---------- PeerAuthentication ----------

const peer = (spec: unknown): unknown => ({ apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: meta('default', 'foo'), spec });

test('PeerAuthentication modes are checked and portLevelMtls needs a selector', () => {
  assert.deepEqual(rejected(peer({ mtls: { mode: 'ON' } })), [
    'policies.yaml doc 3 PeerAuthentication foo/default: spec.mtls.mode: "ON" is not one of UNSET, DISABLE, PERMISSIVE, STRICT',
  ]);
  assert.deepEqual(rejected(peer({ mtls: { mode: 'STRICT' }, portLevelMtls: { 8080: { mode: 'DISABLE' } } })), [
    'policies.yaml doc 3 PeerAuthentication foo/default: spec.portLevelMtls: requires spec.selector with matchLabels: port-level settings apply only to selected workloads',
  ]);
  assert.deepEqual(rejected(peer({ selector: { matchLabels: { app: 'a' } }, portLevelMtls: { http: { mode: 'DISABLE' } } })), [
    'policies.yaml doc 3 PeerAuthentication foo/default: spec.portLevelMtls[http]: "http" is not a port number from 1 to 65535',
  ]);
});

// ---------- DestinationRule ----------

test('a DestinationRule needs a host and non-negative limits (0 is unset, as Istio reads it)', () => {
  assert.deepEqual(rejected(dr({ trafficPolicy: { connectionPool: { tcp: { maxConnections: -1 }, http: { maxRetries: -1, http2MaxRequests: 0 } } } })), [
    'policies.yaml doc 3 DestinationRule default/d: spec.host: required field is missing; the service this rule applies to, e.g. "reviews.default.svc.cluster.local"',
    'policies.yaml doc 3 DestinationRule default/d: spec.trafficPolicy.connectionPool.tcp.maxConnections: -1 is out of range; expected an integer (0 or more)',
    'policies.yaml doc 3 DestinationRule default/d: spec.trafficPolicy.connectionPool.http.maxRetries: -1 is out of range; expected an integer (0 or more)',
  ]);
});

test('durations use Istio\'s format', () => {
  assert.deepEqual(rejected(dr({ host: 'a', trafficPolicy: { outlierDetection: { interval: '1 second', baseEjectionTime: 30, maxEjectionPercent: 101 } } })), [
    'policies.yaml doc 3 DestinationRule default/d: spec.trafficPolicy.outlierDetection.interval: "1 second" is not a duration; write a number with a unit, e.g. "100ms", "1s", "1m" or "1h"',
    'policies.yaml doc 3 DestinationRule default/d: spec.trafficPolicy.outlierDetection.baseEjectionTime: expected a duration string, got 30; write a number with a unit, e.g. "100ms", "1s", "1m" or "1h"',
    'policies.yaml doc 3 DestinationRule default/d: spec.trafficPolicy.outlierDetection.maxEjectionPercent: 101 is out of range; expected an integer from 0 to 100',
  ]);
  assert.ok(check(dr({ host: 'a', trafficPolicy: { connectionPool: { tcp: { connectTimeout: '100ms' }, http: { idleTimeout: '1h' } } } })).object);
});

test('subset names are unique DNS labels', () => {
  assert.deepEqual(rejected(dr({ host: 'a', subsets: [{ name: 'v1' }, { name: 'v1' }, { name: 'V2' }] })), [
    'policies.yaml doc 3 DestinationRule default/d: spec.subsets[2].name: "V2" is not a valid DNS-1123 label (at most 63 lowercase letters, digits or \'-\', starting and ending with a letter or digit)',
    'policies.yaml doc 3 DestinationRule default/d: spec.subsets[1].name: duplicate "v1", already used by spec.subsets[0]',
  ]);
});

// ---------- VirtualService ----------

const vs = (spec: unknown): unknown => ({ apiVersion: 'networking.istio.io/v1beta1', kind: 'VirtualService', metadata: meta('v'), spec });

test('a VirtualService needs hosts; weights are 0..100; attempts are not negative', () => {
  assert.deepEqual(rejected(vs({ http: [{ route: [{ destination: { host: 'a' }, weight: 101 }], retries: { attempts: -1 } }] })), [
    'policies.yaml doc 3 VirtualService default/v: spec.hosts: required field is missing; the hosts this VirtualService routes, e.g. ["reviews"]',
    'policies.yaml doc 3 VirtualService default/v: spec.http[0].route[0].weight: 101 is out of range; expected an integer from 0 to 100',
    'policies.yaml doc 3 VirtualService default/v: spec.http[0].retries.attempts: -1 is out of range; expected an integer (0 or more)',
  ]);
});

test('a VirtualService string match takes exactly one of exact, prefix, regex', () => {
  assert.deepEqual(rejected(vs({ hosts: ['a'], http: [{ match: [{ uri: { prefix: '/a', exact: '/a' } }, { uri: { regex: '[' } }], route: [{ destination: { host: 'a' } }] }] })), [
    'policies.yaml doc 3 VirtualService default/v: spec.http[0].match[0].uri: set exactly one of exact, prefix or regex (found exact and prefix)',
    'policies.yaml doc 3 VirtualService default/v: spec.http[0].match[1].uri.regex: "[" is not a valid regular expression: Unterminated character class',
  ]);
});

// ---------- Gateway ----------

const gw = (spec: unknown): unknown => ({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: meta('waypoint'), spec });

test('a Gateway needs a class and listeners with name, port and protocol', () => {
  assert.deepEqual(rejected(gw({ listeners: [{ name: 'mesh', port: 0 }] })), [
    'policies.yaml doc 3 Gateway default/waypoint: spec.gatewayClassName: required field is missing; e.g. "istio-waypoint" for a waypoint',
    'policies.yaml doc 3 Gateway default/waypoint: spec.listeners[0].port: 0 is out of range; expected an integer from 1 to 65535',
    'policies.yaml doc 3 Gateway default/waypoint: spec.listeners[0].protocol: required field is missing; e.g. HBONE or HTTP',
  ]);
  assert.deepEqual(rejected(gw({ gatewayClassName: 'istio-waypoint', listeners: [] })), [
    'policies.yaml doc 3 Gateway default/waypoint: spec.listeners: must not be empty',
  ]);
});

// ---------- HTTPRoute ----------

test('an HTTPRoute needs parentRefs', () => {
  assert.deepEqual(rejected(route({ rules: [] })), [
    'policies.yaml doc 3 HTTPRoute default/r: spec.parentRefs: required field is missing; name the Service (mesh routing: {group: "", kind: Service, name: ...}) or Gateway this route attaches to',
  ]);
});

test('rules default their matches to a "/" prefix, and a route without rules gets one rule', () => {
  const o = check(route({ parentRefs: parent, rules: [{ backendRefs: [{ name: 'a', port: 80 }] }, { matches: [{ method: 'GET' }] }] })).object as HTTPRoute;
  assert.deepEqual(o.spec.rules[0]?.matches, [{ path: { type: 'PathPrefix', value: '/' } }]);
  assert.deepEqual(o.spec.rules[1]?.matches, [{ path: { type: 'PathPrefix', value: '/' }, method: 'GET' }]);
  const bare = check(route({ parentRefs: parent })).object as HTTPRoute;
  assert.deepEqual(bare.spec.rules, [{ matches: [{ path: { type: 'PathPrefix', value: '/' } }] }]);
});

test('path matches: known types, values starting with "/", regexes that compile', () => {
  const m = (path: unknown): unknown => route({ parentRefs: parent, rules: [{ matches: [{ path }] }] });
  assert.deepEqual(rejected(m({ type: 'Prefix', value: '/a' })), [
    'policies.yaml doc 3 HTTPRoute default/r: spec.rules[0].matches[0].path.type: "Prefix" is not one of Exact, PathPrefix, RegularExpression',
  ]);
  assert.deepEqual(rejected(m({ type: 'PathPrefix', value: 'api' })), [
    'policies.yaml doc 3 HTTPRoute default/r: spec.rules[0].matches[0].path.value: "api" must start with "/" when type is PathPrefix',
  ]);
  assert.deepEqual(rejected(m({ type: 'RegularExpression', value: '/a(' })), [
    'policies.yaml doc 3 HTTPRoute default/r: spec.rules[0].matches[0].path.value: "/a(" is not a valid regular expression: Unterminated group',
  ]);
  assert.ok(check(m({ type: 'RegularExpression', value: '^/v[0-9]+/.*' })).object);
  assert.deepEqual(rejected(m({ type: 'RegularExpression', value: '/(?!admin).*' })), [
    'policies.yaml doc 3 HTTPRoute default/r: spec.rules[0].matches[0].path.value: "/(?!admin).*" is not a valid regular expression: lookahead and lookbehind are not supported (RE2 syntax)',
  ]);
  assert.ok(check(m({ type: 'Exact', value: '/healthz' })).object);
});

test('header matches take Exact or RegularExpression with a valid header name', () => {
  assert.deepEqual(rejected(route({ parentRefs: parent, rules: [{ matches: [{ headers: [{ type: 'Prefix', name: 'x-a', value: 'b' }, { name: 'bad header', value: 'c' }] }] }] })), [
    'policies.yaml doc 3 HTTPRoute default/r: spec.rules[0].matches[0].headers[0].type: "Prefix" is not one of Exact, RegularExpression',
    'policies.yaml doc 3 HTTPRoute default/r: spec.rules[0].matches[0].headers[1].name: "bad header" is not a valid header name',
  ]);
});

test('a filter needs the field matching its type and no other', () => {
  assert.deepEqual(rejected(route({ parentRefs: parent, rules: [{ filters: [{ type: 'URLRewrite', requestHeaderModifier: { set: [{ name: 'a', value: 'b' }] } }, { type: 'Rewrite' }] }] })), [
    'policies.yaml doc 3 HTTPRoute default/r: spec.rules[0].filters[0].requestHeaderModifier: must not be set when type is URLRewrite; use urlRewrite',
    'policies.yaml doc 3 HTTPRoute default/r: spec.rules[0].filters[0].urlRewrite: required field is missing; type URLRewrite needs urlRewrite',
    'policies.yaml doc 3 HTTPRoute default/r: spec.rules[0].filters[1].type: "Rewrite" is not one of RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect, URLRewrite, RequestMirror, ExtensionRef',
  ]);
});

test('a redirect cannot be combined with backendRefs, and replacePrefixMatch needs a PathPrefix match', () => {
  const lines = rejected(
    route({
      parentRefs: parent,
      rules: [
        {
          matches: [{ path: { type: 'Exact', value: '/old' } }],
          filters: [{ type: 'RequestRedirect', requestRedirect: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/new' }, statusCode: 301 } }],
          backendRefs: [{ name: 'a', port: 80 }],
        },
      ],
    }),
  );
  assert.deepEqual(lines, [
    'policies.yaml doc 3 HTTPRoute default/r: spec.rules[0].backendRefs: must not be set together with a RequestRedirect filter; a redirect answers without a backend',
    'policies.yaml doc 3 HTTPRoute default/r: spec.rules[0].filters[0].type: path.replacePrefixMatch needs the rule to have exactly one match, with a PathPrefix path',
  ]);
});

test('backendRefs to a Service need a port; weights are 0..1,000,000', () => {
  assert.deepEqual(rejected(route({ parentRefs: parent, rules: [{ backendRefs: [{ name: 'a' }, { name: 'b', port: 80, weight: 1_000_001 }] }] })), [
    'policies.yaml doc 3 HTTPRoute default/r: spec.rules[0].backendRefs[0].port: required field is missing; a Service backend needs the Service port to send to',
    'policies.yaml doc 3 HTTPRoute default/r: spec.rules[0].backendRefs[1].weight: 1000001 is out of range; expected an integer from 0 to 1000000',
  ]);
  assert.ok(check(route({ parentRefs: parent, rules: [{ backendRefs: [{ group: 'networking.istio.io', kind: 'Hostname', name: 'example.com' }] }] })).object);
  assert.ok(check(route({ parentRefs: parent, rules: [{ backendRefs: [{ name: 'a', port: 80, weight: 0 }] }] })).object);
});

test('HTTPRoute timeouts use Gateway API durations and backendRequest fits in request', () => {
  assert.deepEqual(rejected(route({ parentRefs: parent, rules: [{ timeouts: { request: '5s', backendRequest: '10s' } }] })), [
    'policies.yaml doc 3 HTTPRoute default/r: spec.rules[0].timeouts.backendRequest: "10s" must not be longer than request ("5s")',
  ]);
});

// ---------- through YAML ----------

test('YAML numbers in labels and quoted ports are reported from real YAML', () => {
  const r = parseManifests(
    `apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    version: 1.0
spec:
  containers:
  - name: web
    ports:
    - containerPort: "8080"
`,
    'pods.yaml',
  );
  assert.deepEqual(r.objects, []);
  assert.deepEqual(r.problems.map(formatProblem), [
    'pods.yaml doc 1 Pod default/web: metadata.labels[version]: expected a string, got the number 1; quote the value in YAML',
    'pods.yaml doc 1 Pod default/web: spec.containers[0].ports[0].containerPort: expected an integer from 1 to 65535, got "8080"; remove the quotes',
  ]);
});

// ---------- Node and Telemetry ----------

test('Node addresses of IP types must be IPs; Node names are subdomains and have no namespace', () => {
  const node = (addresses: unknown): unknown => ({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'worker-1.lab' }, status: { addresses, capacity: { cpu: '4' } } });
  const ok = check(node([{ type: 'InternalIP', address: '198.18.0.1' }, { type: 'Hostname', address: 'worker-1' }]));
  assert.deepEqual(ok.lines, []);
  assert.deepEqual(ok.object, {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: 'worker-1.lab', labels: {}, annotations: {} },
    status: { addresses: [{ type: 'InternalIP', address: '198.18.0.1' }, { type: 'Hostname', address: 'worker-1' }] },
  });
  assert.deepEqual(rejected(node([{ type: 'InternalIP', address: 'worker-1' }])), [
    'policies.yaml doc 3 Node worker-1.lab: status.addresses[0].address: "worker-1" is not a valid IPv4 or IPv6 address',
  ]);
});

test('Telemetry checks sampling percentages and target exclusivity', () => {
  const tel = (spec: unknown): unknown => ({ apiVersion: 'telemetry.istio.io/v1alpha1', kind: 'Telemetry', metadata: meta('t', 'foo'), spec });
  assert.deepEqual(rejected(tel({ selector: { matchLabels: { app: 'a' } }, targetRef: { kind: 'Service', name: 'a' }, tracing: [{ randomSamplingPercentage: 150 }] })), [
    'policies.yaml doc 3 Telemetry foo/t: spec.targetRef: cannot be combined with spec.selector; set only one of selector, targetRef, targetRefs',
    'policies.yaml doc 3 Telemetry foo/t: spec.tracing[0].randomSamplingPercentage: 150 is out of range; expected a number from 0 to 100',
  ]);
  assert.ok(check(tel({ tracing: [{ randomSamplingPercentage: 12.5, providers: [{ name: 'otel' }] }] })).object);
});

test('v1beta1 Gateway API objects load and keep their apiVersion', () => {
  const o = check({
    apiVersion: 'gateway.networking.k8s.io/v1beta1',
    kind: 'Gateway',
    metadata: meta('waypoint', 'shop'),
    spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] },
  }).object;
  assert.equal(o?.apiVersion, 'gateway.networking.k8s.io/v1beta1');
});

test('a waypoint Gateway without an HBONE listener gets a warning', () => {
  const r = check(gw({ gatewayClassName: 'istio-waypoint', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] }));
  assert.ok(r.object);
  assert.deepEqual(r.lines, [
    'policies.yaml doc 3 Gateway default/waypoint: warning: spec.listeners: a waypoint needs an HBONE listener, usually {name: mesh, port: 15008, protocol: HBONE}',
  ]);
});
