// Telemetry tracing and the mesh config's providers, compiled for a waypoint: Istio's hierarchy (each level overriding
// the fields it sets), provider resolution through the mesh's registry, and what happens when that fails.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { baseMesh, compile, meshConfig, telemetry } from '../helpers/waypoint-mesh.js';
import { pod, service } from '../helpers/manifests.js';

const PROVIDERS = `
extensionProviders:
- name: zipkin
  zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411, maxTagLength: 64}
- name: otel
  opentelemetry: {service: istio-system/otel, port: 4318, http: {path: /otlp/v1/traces}}
- name: otel-grpc
  opentelemetry: {service: otel.istio-system.svc.cluster.local, port: 4317}
- name: ext
  envoyExtAuthzGrpc: {service: authz.istio-system.svc.cluster.local, port: 9000}
`;
const collectors = [
  service('istio-system', 'zipkin', { ip: '10.96.9.1', ports: [{ port: 9411, targetPort: 9411, name: 'zipkin' }] }),
  service('istio-system', 'otel', { ip: 'None', selector: { app: 'otel' }, ports: [{ port: 4318, targetPort: 14318, name: 'http' }, { port: 4317, targetPort: 14317, name: 'grpc' }] }),
  pod('istio-system', 'otel-1', { ip: '10.0.9.2', labels: { app: 'otel' } }),
];
const tracing = (spec: Record<string, unknown>) => ({ tracing: [spec] });

describe('tracing for a waypoint', () => {
  it('a root-namespace Telemetry: its provider resolved to the collector\'s cluster IP, its sampling', () => {
    const c = compile([...baseMesh(), ...collectors, meshConfig(PROVIDERS), telemetry('mesh', 'istio-system', tracing({ providers: [{ name: 'zipkin' }], randomSamplingPercentage: 25 }))]);
    assert.deepEqual(c.policy('tracing/istio-system/mesh'), {
      type: 'tracing', origin: 'istio-system/mesh', origins: ['istio-system/mesh'], samplingPercentage: 25,
      provider: { name: 'zipkin', kind: 'zipkin', service: 'istio-system/zipkin', host: '10.96.9.1', port: 9411, address: 'vip', path: '/api/v2/spans', maxTagLength: 64 },
    });
    assert.deepEqual(c.views.l7.appliedBy.get('Telemetry/istio-system/mesh'), ['shop/waypoint']);
  });

  it('an OpenTelemetry collector without a cluster IP is reached at its first ready endpoint and target port', () => {
    const c = compile([...baseMesh(), ...collectors, meshConfig(PROVIDERS),
      telemetry('mesh', 'istio-system', tracing({ providers: [{ name: 'otel' }] })),
      telemetry('grpc', 'shop', tracing({ providers: [{ name: 'otel-grpc' }] })),
    ]);
    const t = c.policy('tracing/shop/grpc');
    assert.deepEqual(t?.type === 'tracing' && t.provider, { name: 'otel-grpc', kind: 'opentelemetry', service: 'istio-system/otel', host: '10.0.9.2', port: 14317, address: 'endpoint', path: '', protocol: 'grpc' });
    // The namespace's Telemetry overrides the root one for this waypoint: one resource, the most specific.
    assert.deepEqual(c.policyNames().filter((n) => n.startsWith('tracing/')), ['tracing/shop/grpc']);
    assert.deepEqual(t?.type === 'tracing' && t.origins, ['istio-system/mesh', 'shop/grpc']);
  });

  it('merges field by field, least specific first: defaultProviders, root, namespace, the Gateway; a Service target gets its own resource', () => {
    const c = compile([...baseMesh(), ...collectors,
      meshConfig(`${PROVIDERS}defaultProviders:\n  tracing: [zipkin]\n`),
      telemetry('mesh', 'istio-system', tracing({ randomSamplingPercentage: 5 })),
      telemetry('ns', 'shop', tracing({ providers: [{ name: 'otel' }] })),
      telemetry('gw', 'shop', { targetRefs: [{ kind: 'Gateway', group: 'gateway.networking.k8s.io', name: 'waypoint' }], ...tracing({ randomSamplingPercentage: 50 }) }),
      telemetry('quiet', 'shop', { targetRefs: [{ kind: 'Service', group: '', name: 'orders' }], ...tracing({ disableSpanReporting: true }) }),
    ]);
    const base = c.policy('tracing/shop/gw');
    assert.ok(base?.type === 'tracing');
    assert.deepEqual([base.samplingPercentage, base.provider?.name, base.services, base.origins], [50, 'otel', undefined, ['meshConfig', 'istio-system/mesh', 'shop/ns', 'shop/gw']]);
    const quiet = c.policy('tracing/shop/quiet');
    assert.ok(quiet?.type === 'tracing');
    assert.deepEqual([quiet.samplingPercentage, quiet.provider?.name, quiet.services, quiet.disableSpanReporting], [50, 'otel', ['shop/orders'], true]);
  });

  it('defaultProviders alone enable tracing at Istio\'s default 1 %', () => {
    const c = compile([...baseMesh(), ...collectors, meshConfig(`${PROVIDERS}defaultProviders:\n  tracing: [zipkin]\n`)]);
    const t = c.policy('tracing/istio-system/meshConfig');
    assert.deepEqual(t?.type === 'tracing' && [t.origin, t.samplingPercentage, t.provider?.host], ['meshConfig', 1, '10.96.9.1']);
  });

  it('a provider that cannot be resolved gives a problem in the model and a warning saying what to do', () => {
    const cases: [string, RegExp][] = [
      ['jaeger', /provider "jaeger" is not among the extensionProviders of the mesh config \(ConfigMap istio-system\/istio, key mesh\)/],
      ['ext', /provider "ext" is of type envoyExtAuthzGrpc, which Strait does not support; use zipkin or opentelemetry/],
    ];
    for (const [name, why] of cases) {
      const c = compile([...baseMesh(), ...collectors, meshConfig(PROVIDERS), telemetry('mesh', 'istio-system', tracing({ providers: [{ name }] }))]);
      const t = c.policy('tracing/istio-system/mesh');
      assert.ok(t?.type === 'tracing' && t.provider === undefined);
      assert.match(t.problem!, why);
      assert.ok(c.warnings.some((w) => w.includes('Telemetry istio-system/mesh: warning: spec.tracing[0].providers: waypoint shop/waypoint sends no spans: ') && why.test(w)), c.warnings.join('\n'));
    }
    const none = compile([...baseMesh(), telemetry('mesh', 'istio-system', tracing({ providers: [{ name: 'zipkin' }] }))]);
    const t = none.policy('tracing/istio-system/mesh');
    assert.match(t?.type === 'tracing' ? t.problem! : '', /and there is none: create the ConfigMap istio in istio-system with extensionProviders in its mesh key/);
    const missingService = compile([...baseMesh(), meshConfig(PROVIDERS), telemetry('mesh', 'istio-system', tracing({ providers: [{ name: 'zipkin' }] }))]);
    const m = missingService.policy('tracing/istio-system/mesh');
    assert.match(m?.type === 'tracing' ? m.problem! : '', /the service "zipkin\.istio-system\.svc\.cluster\.local" of provider "zipkin" is not a Service of the mesh/);
  });

  it('a Telemetry with a selector applies to no waypoint, and fields Strait does not apply are named', () => {
    const c = compile([...baseMesh(), telemetry('sel', 'shop', { selector: { matchLabels: { app: 'web' } }, ...tracing({ randomSamplingPercentage: 100 }), accessLogging: [{ disabled: true }] })]);
    assert.deepEqual(c.policyNames(), []);
    assert.deepEqual(c.warnings, [
      'mesh.yaml doc 15 Telemetry shop/sel: warning: spec.accessLogging: not applied by Strait: the ztunnels and waypoints always write their own access log to standard output',
      'mesh.yaml doc 15 Telemetry shop/sel: warning: spec.selector: picks workloads, whose ztunnels apply no Telemetry; configure a waypoint with targetRefs (kind Gateway or Service) instead',
    ]);
  });
});
