import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatProblem, validateObject, type EndpointSlice } from '../../src/common/model/index.js';
import { computeViews } from '../../src/controller/views.js';
import { docs, namespace, objectsOf, pod, service } from '../helpers/manifests.js';

const SRC = { file: 'external.yaml', doc: 1 };
const slice = (o: Record<string, unknown> = {}, labels: Record<string, string> = { 'kubernetes.io/service-name': 'db' }): Record<string, unknown> => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name: 'db-1', namespace: 'shop', labels },
  addressType: 'IPv4',
  endpoints: [{ addresses: ['10.1.0.7'] }],
  ports: [{ name: 'sql', port: 5432, protocol: 'TCP' }],
  ...o,
});
const check = (raw: unknown) => {
  const r = validateObject(raw, SRC);
  return { object: r.object as EndpointSlice | undefined, lines: r.problems.map(formatProblem), errors: r.problems.filter((p) => p.severity === 'error').map(formatProblem) };
};

describe('EndpointSlice validation', () => {
  it('reads a slice as Kubernetes writes it, keeping the fields Strait uses and accepting the others silently', () => {
    const r = check(slice({
      endpoints: [{ addresses: ['10.1.0.7'], conditions: { ready: true, serving: true, terminating: false }, targetRef: { kind: 'Pod', name: 'db-0', namespace: 'shop', uid: 'u1' }, nodeName: 'n1', zone: 'z1', hints: { forZones: [{ name: 'z1' }] } }],
    }));
    assert.deepEqual(r.lines, []);
    assert.deepEqual(r.object!.endpoints, [{ addresses: ['10.1.0.7'], conditions: { ready: true, serving: true, terminating: false }, targetRef: { kind: 'Pod', name: 'db-0', namespace: 'shop' }, nodeName: 'n1' }]);
    assert.deepEqual(r.object!.ports, [{ name: 'sql', port: 5432, protocol: 'TCP' }]);
  });

  it('rejects an address of the wrong family, an empty address list and a missing addressType, saying what to write', () => {
    const wrong = check(slice({ endpoints: [{ addresses: ['fd00::7'] }] }));
    assert.equal(wrong.object, undefined);
    assert.match(wrong.errors.join('\n'), /endpoints\[0\]\.addresses\[0\].*"fd00::7" is not an IPv4 address \(the slice's addressType\); put IPv6 addresses in a slice of that addressType/);
    const empty = check(slice({ endpoints: [{ addresses: [] }] }));
    assert.match(empty.errors.join('\n'), /endpoints\[0\]\.addresses.*must hold 1 to 100 addresses, has 0/);
    const noType = check({ ...slice(), addressType: undefined });
    assert.match(noType.errors.join('\n'), /addressType.*required/);
    const dupPorts = check(slice({ ports: [{ name: 'sql', port: 1 }, { name: 'sql', port: 2 }] }));
    assert.match(dupPorts.errors.join('\n'), /ports\[1\]\.name.*duplicate "sql"/);
  });

  it('warns about what it cannot use: FQDN slices, a port without a number, a slice that names no Service', () => {
    const fqdn = check(slice({ addressType: 'FQDN', endpoints: [{ addresses: ['db.example.com'] }] }));
    assert.ok(fqdn.object, 'an FQDN slice is valid Kubernetes');
    assert.match(fqdn.lines.join('\n'), /warning.*addressType.*FQDN endpoints are not resolved by Strait/);
    const allPorts = check(slice({ ports: [{ name: '' }] }));
    assert.match(allPorts.lines.join('\n'), /warning.*ports\[0\]\.port.*"all ports"/);
    const orphan = check(slice({}, {}));
    assert.match(orphan.lines.join('\n'), /warning.*kubernetes\.io\/service-name.*belongs to no Service and is not used/);
  });
});

const views = (...o: unknown[]) => computeViews(objectsOf(docs(...o)), { trustDomain: 'cluster.local', rootNamespace: 'istio-system' });
const selectorless = (ports = [{ name: 'sql', port: 5432, targetPort: 5432 }]) =>
  ({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'db', namespace: 'shop' }, spec: { clusterIP: '10.96.0.20', ports } });

describe('endpoints of a Service without a selector', () => {
  it('come from its EndpointSlices: a pod by targetRef or by address is that workload, anything else plain TCP', () => {
    const v = views(
      namespace('shop', { 'istio.io/dataplane-mode': 'ambient' }),
      selectorless(),
      pod('shop', 'db-0', { ip: '10.0.0.7', labels: { app: 'db' } }),
      pod('shop', 'db-1', { ip: '10.0.0.8', labels: { app: 'db' } }),
      slice({ endpoints: [
        { addresses: ['10.0.0.7'], targetRef: { kind: 'Pod', name: 'db-0' } },
        { addresses: ['10.0.0.8'], conditions: { ready: false } },
        { addresses: ['192.0.2.10'], conditions: { ready: true } },
      ] }),
    );
    assert.deepEqual(v.services.get('shop/db')!.endpoints, [
      { workload: 'shop/db-0', address: '10.0.0.7', ports: { '5432': 5432 }, healthy: true },
      { workload: 'shop/db-1', address: '10.0.0.8', ports: { '5432': 5432 }, healthy: false },
      { workload: '', address: '192.0.2.10', ports: { '5432': 5432 }, healthy: true },
    ]);
    assert.deepEqual(v.workloads.get('shop/db-0')!.services, ['shop/db']);
    assert.deepEqual(v.workloads.get('shop/db-1')!.services, ['shop/db']);
  });

  it('maps each Service port to the slice port of the same name, merges slices and counts a repeated address once', () => {
    const v = views(
      selectorless([{ name: 'sql', port: 5432, targetPort: 5432 }, { name: 'admin', port: 8080, targetPort: 8080 }]),
      slice({ ports: [{ name: 'sql', port: 15432 }, { name: 'admin', port: 18080 }, { name: 'other', port: 9 }], endpoints: [{ addresses: ['192.0.2.1'] }] }),
      { ...slice({ ports: [{ name: 'sql', port: 25432 }], endpoints: [{ addresses: ['192.0.2.1'] }, { addresses: ['192.0.2.2'] }] }), metadata: { name: 'db-2', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'db' } } },
      { ...slice(), metadata: { name: 'elsewhere', namespace: 'other', labels: { 'kubernetes.io/service-name': 'db' } } },
    );
    assert.deepEqual(v.services.get('shop/db')!.endpoints, [
      { workload: '', address: '192.0.2.1', ports: { '5432': 15432, '8080': 18080 }, healthy: true },
      { workload: '', address: '192.0.2.2', ports: { '5432': 25432 }, healthy: true },
    ]);
  });

  it('ignores FQDN slices and, for a Service with a selector, any slice but Kubernetes\' own mirror, with a problem naming it', () => {
    const v = views(
      namespace('shop', { 'istio.io/dataplane-mode': 'ambient' }),
      service('shop', 'web'),
      pod('shop', 'web-1', { labels: { app: 'web' }, ip: '10.0.0.1' }),
      { ...slice({ endpoints: [{ addresses: ['192.0.2.9'] }], ports: [{ name: 'http', port: 8080 }] }), metadata: { name: 'web-hand', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } } },
      { ...slice({ endpoints: [{ addresses: ['10.0.0.1'] }], ports: [{ name: 'http', port: 8080 }] }), metadata: { name: 'web-abcde', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web', 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' } } },
      selectorless(),
      slice({ addressType: 'FQDN', endpoints: [{ addresses: ['db.example.com'] }] }),
    );
    assert.deepEqual(v.services.get('shop/web')!.endpoints.map((e) => e.address), ['10.0.0.1']);
    assert.deepEqual(v.services.get('shop/db')!.endpoints, []);
    assert.deepEqual(v.problems.filter((p) => p.object.startsWith('EndpointSlice/')).map((p) => p.object), ['EndpointSlice/shop/web-hand']);
    assert.match(v.problems.find((p) => p.object === 'EndpointSlice/shop/web-hand')!.message, /Service shop\/web, which has a selector.*not used/);
  });
});
