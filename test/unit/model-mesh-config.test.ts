// The parts of the config model the waypoint compiler reads: the istio ConfigMap (mesh config), creation
// timestamps, and the route fields added for the waypoint (HTTPRoute retry and mirror percentages, VirtualService
// mirrors, withoutHeaders, header presence, retries.backoff, redirect scheme/port).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatProblem, parseManifests, type ConfigMap, type HTTPRoute, type VirtualService } from '../../src/common/model/index.js';

function load(yaml: string): { object?: unknown; lines: string[] } {
  const r = parseManifests(yaml, 'mesh.yaml');
  return { object: r.objects[0]?.object, lines: r.problems.map(formatProblem) };
}

const MESH_CONFIGMAP = `
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    defaultProviders:
      tracing: [jaeger]
    extensionProviders:
    - name: jaeger
      zipkin:
        service: jaeger-collector.istio-system.svc.cluster.local
        port: 9411
        maxTagLength: 256
    - name: otel
      opentelemetry:
        service: observability/otel-collector
        port: 4318
        http: {path: /v1/traces, timeout: 5s}
    - name: ext-authz
      envoyExtAuthzHttp:
        service: authz.foo.svc.cluster.local
        port: 8000
    strait:
      selectorPolicies: istio
    enableTracing: true
    outboundTrafficPolicy: {mode: REGISTRY_ONLY}
`;

test('the istio ConfigMap: its mesh key is parsed into providers, defaults and the strait section; fields Strait does not read are warnings', () => {
  const { object, lines } = load(MESH_CONFIGMAP);
  const cm = object as ConfigMap;
  assert.equal(cm.kind, 'ConfigMap');
  assert.deepEqual(cm.mesh, {
    extensionProviders: [
      { name: 'jaeger', kind: 'zipkin', zipkin: { service: 'jaeger-collector.istio-system.svc.cluster.local', port: 9411, maxTagLength: 256 } },
      { name: 'otel', kind: 'opentelemetry', opentelemetry: { service: 'observability/otel-collector', port: 4318, http: { path: '/v1/traces', timeout: '5s' } } },
      { name: 'ext-authz', kind: 'unsupported', type: 'envoyExtAuthzHttp' },
    ],
    defaultProviders: { tracing: ['jaeger'] },
    strait: { selectorPolicies: 'istio' },
  });
  assert.deepEqual(lines, [
    'mesh.yaml doc 1 ConfigMap istio-system/istio: warning: data[mesh].enableTracing: not read by Strait (ignored): tracing is on wherever a Telemetry object or defaultProviders.tracing names a provider',
    'mesh.yaml doc 1 ConfigMap istio-system/istio: warning: data[mesh].outboundTrafficPolicy: not read by Strait (ignored): Strait reads only extensionProviders, defaultProviders, strait from the mesh config',
    'mesh.yaml doc 1 ConfigMap istio-system/istio: warning: data[mesh].extensionProviders[2].envoyExtAuthzHttp: provider type envoyExtAuthzHttp is not supported by Strait; Telemetry or AuthorizationPolicy objects naming "ext-authz" get no provider',
  ]);
});

test('a bad mesh config rejects the ConfigMap with the field inside the mesh key', () => {
  const bad = (mesh: string) => load(`apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |-\n${mesh.split('\n').map((l) => `    ${l}`).join('\n')}\n`);
  const port = bad('extensionProviders:\n- name: z\n  zipkin: {service: zipkin.istio-system.svc.cluster.local, port: "9411"}');
  assert.equal(port.object, undefined);
  assert.deepEqual(port.lines, ['mesh.yaml doc 1 ConfigMap istio-system/istio: data[mesh].extensionProviders[0].zipkin.port: expected an integer from 1 to 65535, got "9411"; remove the quotes']);
  const mode = bad('strait: {selectorPolicies: sidecar}');
  assert.deepEqual(mode.lines, ['mesh.yaml doc 1 ConfigMap istio-system/istio: data[mesh].strait.selectorPolicies: "sidecar" is not one of waypoint, istio']);
  const two = bad('extensionProviders:\n- name: z\n  zipkin: {service: a.b.svc.cluster.local, port: 1}\n  opentelemetry: {service: a.b.svc.cluster.local, port: 2}');
  assert.deepEqual(two.lines, ['mesh.yaml doc 1 ConfigMap istio-system/istio: data[mesh].extensionProviders[0]: sets zipkin and opentelemetry; a provider has exactly one type']);
  const yaml = bad('extensionProviders: [');
  assert.equal(yaml.object, undefined);
  assert.match(yaml.lines[0]!, /^mesh\.yaml doc 1 ConfigMap istio-system\/istio: data\[mesh\]: is not valid YAML: /);
});

test('any other ConfigMap loads with its data and no parsed mesh config', () => {
  const { object, lines } = load('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app-settings, namespace: shop}\ndata: {mesh: "not: [yaml", color: blue}\n');
  assert.deepEqual(lines, []);
  assert.deepEqual(object, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'app-settings', namespace: 'shop', labels: {}, annotations: {} }, data: { mesh: 'not: [yaml', color: 'blue' } });
  assert.deepEqual(load('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {port: 80}\n').lines, ['mesh.yaml doc 1 ConfigMap default/c: data[port]: expected a string, got 80; quote the value in YAML']);
});

test('creationTimestamp is kept in UTC ISO form (so that it orders), and a malformed one is an error', () => {
  const ok = load('apiVersion: v1\nkind: Namespace\nmetadata: {name: a, creationTimestamp: "2024-05-01T12:00:00+02:00"}\n');
  assert.equal((ok.object as { metadata: { creationTimestamp: string } }).metadata.creationTimestamp, '2024-05-01T10:00:00.000Z');
  assert.deepEqual(load('apiVersion: v1\nkind: Namespace\nmetadata: {name: a, creationTimestamp: yesterday}\n').lines, [
    'mesh.yaml doc 1 Namespace a: metadata.creationTimestamp: "yesterday" is not an RFC 3339 time such as "2024-05-01T10:00:00Z"',
  ]);
});

test('HTTPRoute retry and RequestMirror percent/fraction are read', () => {
  const { object, lines } = load(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 80}]
  rules:
  - retry: {codes: [500, 503], attempts: 3, backoff: 100ms}
    filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: web-shadow, port: 80}, fraction: {numerator: 1, denominator: 4}}
    backendRefs: [{name: web, port: 80}]
`);
  assert.deepEqual(lines, []);
  const rule = (object as HTTPRoute).spec.rules[0]!;
  assert.deepEqual(rule.retry, { codes: [500, 503], attempts: 3, backoff: '100ms' });
  assert.deepEqual(rule.filters?.[0]?.requestMirror, { backendRef: { name: 'web-shadow', port: 80 }, percent: 25 });
  const both = load(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{kind: Service, group: "", name: web}]
  rules:
  - retry: {codes: [302]}
    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: s, port: 80}, percent: 5, fraction: {numerator: 1}}}]
`);
  assert.deepEqual(both.lines, [
    'mesh.yaml doc 1 HTTPRoute default/r: spec.rules[0].filters[0].requestMirror.fraction: cannot be combined with percent; set only one',
    'mesh.yaml doc 1 HTTPRoute default/r: spec.rules[0].retry.codes[0]: 302 is out of range; expected an integer from 400 to 599',
  ]);
});

test('VirtualService mirrors, withoutHeaders, header presence, retries.backoff and redirect scheme/port are read', () => {
  const { object, lines } = load(`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: v, namespace: shop}
spec:
  hosts: [web]
  http:
  - match:
    - headers: {x-debug: {}}
      withoutHeaders: {x-skip: {exact: "1"}}
    mirror: {host: web-shadow}
    mirrorPercentage: {value: 12.5}
    retries: {attempts: 2, backoff: 50ms}
    route: [{destination: {host: web}}]
  - redirect: {uri: /new, scheme: https, port: 8443}
`);
  assert.deepEqual(lines, []);
  const http = (object as VirtualService).spec.http!;
  assert.deepEqual(http[0]!.match, [{ headers: { 'x-debug': {} }, withoutHeaders: { 'x-skip': { exact: '1' } } }]);
  assert.deepEqual(http[0]!.mirror, { host: 'web-shadow' });
  assert.deepEqual(http[0]!.mirrorPercentage, { value: 12.5 });
  assert.deepEqual(http[0]!.retries, { attempts: 2, backoff: '50ms' });
  assert.deepEqual(http[1]!.redirect, { uri: '/new', scheme: 'https', port: 8443 });
});

test('VirtualService weights that do not add up to 100 are a warning; the deprecated mirrorPercent is read with a warning', () => {
  const { object, lines } = load(`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: v}
spec:
  hosts: [web]
  http:
  - mirror: {host: shadow}
    mirrorPercent: 20
    route:
    - destination: {host: web, subset: v1}
      weight: 60
    - destination: {host: web, subset: v2}
      weight: 60
`);
  assert.deepEqual(lines, [
    'mesh.yaml doc 1 VirtualService default/v: warning: spec.http[0].route: weights add up to 120, not 100; Istio rejects this, Strait splits traffic in proportion to the weights',
    'mesh.yaml doc 1 VirtualService default/v: warning: spec.http[0].mirrorPercent: deprecated in Istio; use mirrorPercentage: {value: N}',
  ]);
  assert.deepEqual((object as VirtualService).spec.http![0]!.mirrorPercentage, { value: 20 });
});
