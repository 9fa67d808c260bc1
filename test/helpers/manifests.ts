import assert from 'node:assert/strict';
import { parseManifests } from '../../src/common/model/parse.js';
import type { MeshObject } from '../../src/common/model/types.js';

/** Parses YAML into objects, failing the test on any error (warnings allowed). */
export function objectsOf(yamlText: string, file = 'test.yaml'): MeshObject[] {
  const r = parseManifests(yamlText, file);
  const errors = r.problems.filter((p) => p.severity === 'error');
  assert.deepEqual(errors, [], 'test manifests must be valid');
  return r.objects.map((o) => o.object);
}

/** YAML is a superset of JSON: documents from plain objects, separated by ---. */
export function docs(...objs: unknown[]): string {
  return objs.map((o) => JSON.stringify(o)).join('\n---\n') + '\n';
}

export interface PodOpts { node?: string; ip?: string; sa?: string; labels?: Record<string, string>; ports?: Record<string, number>; ready?: boolean }

export function pod(ns: string, name: string, o: PodOpts = {}): unknown {
  return {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name, namespace: ns, labels: o.labels ?? {} },
    spec: {
      nodeName: o.node ?? 'node-a', serviceAccountName: o.sa ?? 'default',
      containers: [{ name: 'app', image: 'demo', ports: Object.entries(o.ports ?? {}).map(([n, p]) => ({ name: n, containerPort: p })) }],
    },
    status: { podIP: o.ip ?? '10.0.0.1', ...(o.ready === false ? { conditions: [{ type: 'Ready', status: 'False' }] } : {}) },
  };
}

export function namespace(name: string, labels: Record<string, string> = {}): unknown {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } };
}

export function service(ns: string, name: string, o: { ip?: string; selector?: Record<string, string>; ports?: { port: number; targetPort?: number | string; name?: string }[]; labels?: Record<string, string> } = {}): unknown {
  return {
    apiVersion: 'v1', kind: 'Service',
    metadata: { name, namespace: ns, labels: o.labels ?? {} },
    spec: { clusterIP: o.ip ?? '10.96.0.10', selector: o.selector ?? { app: name }, ports: o.ports ?? [{ port: 80, targetPort: 8080, name: 'http' }] },
  };
}

export function waypoint(ns: string, name: string, o: { for?: string; address?: string } = {}): unknown {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway',
    metadata: { name, namespace: ns, labels: o.for ? { 'istio.io/waypoint-for': o.for } : {} },
    spec: {
      gatewayClassName: 'istio-waypoint',
      listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }],
      ...(o.address ? { addresses: [{ type: 'IPAddress', value: o.address }] } : {}),
    },
  };
}
