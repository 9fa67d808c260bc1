/**
 * Every object Strait installs validates against the Kubernetes object schemas, checked with a maintained schema
 * library (kubernetes-models: the Kubernetes OpenAPI schemas compiled to validators): daemonset.yaml as `kubectl apply`
 * takes it, what `strait install --image` renders, and the clean-up DaemonSet of `strait uninstall`. The OpenAPI
 * schemas allow unknown fields (the API server drops them, or refuses them under --validate=strict), so a misspelt
 * field is found with the field tables of @kubernetes/client-node's models instead.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import { installObjects, uninstallCleanupObjects, type ManifestObject } from '../helpers/install-manifest.js';

interface Model { validate(): void }
type ModelClass = new (data: unknown) => Model;

/** The kubernetes-models class of an apiVersion/kind ("apps/v1" Deployment → kubernetes-models/apps/v1/Deployment). */
async function modelOf(apiVersion: string, kind: string): Promise<ModelClass> {
  const mod = (await import(`kubernetes-models/${apiVersion}/${kind}`)) as Record<string, ModelClass>;
  const cls = mod[kind];
  assert.ok(cls, `kubernetes-models has no schema for ${apiVersion} ${kind}`);
  return cls;
}

/** Schema errors of one object, as "Kind name: message" (empty when it validates). */
async function schemaErrors(o: ManifestObject): Promise<string[]> {
  const Cls = await modelOf(o.apiVersion, o.kind);
  try {
    new Cls(o).validate();
    return [];
  } catch (err) {
    return [`${o.kind} ${o.metadata.name}: ${(err as Error).message}`];
  }
}

async function allErrors(objects: readonly ManifestObject[]): Promise<string[]> {
  return (await Promise.all(objects.map(schemaErrors))).flat();
}

test('every object of daemonset.yaml validates against the Kubernetes schema of its kind', async () => {
  const objects = installObjects();
  assert.ok(objects.length >= 10, `daemonset.yaml holds ${objects.length} objects`);
  assert.deepEqual(await allErrors(objects), []);
});

test('the objects strait install renders with another image still validate, and so does the clean-up DaemonSet', async () => {
  const image = 'registry.example:5000/mesh/strait@sha256:' + 'a'.repeat(64);
  assert.deepEqual(await allErrors(installObjects({ image })), []);
  assert.deepEqual(await allErrors(uninstallCleanupObjects({ image })), []);
});

test('the schema check rejects what the API server would reject (ports that are not numbers, a missing selector)', async () => {
  // The same objects, each broken in one place: the validator must see every one of them.
  const objects = installObjects();
  const deployment = structuredClone(objects.find((o) => o.kind === 'Deployment')!) as ManifestObject & { spec: { template: { spec: { containers: { ports: { containerPort: unknown }[] }[] } } } };
  deployment.spec.template.spec.containers[0]!.ports[0]!.containerPort = 'grpc';
  const daemonSet = structuredClone(objects.find((o) => o.kind === 'DaemonSet')!) as ManifestObject & { spec: Record<string, unknown> };
  delete daemonSet.spec['selector'];
  const service = structuredClone(objects.find((o) => o.kind === 'Service')!) as ManifestObject & { spec: { ports: { port: unknown }[] } };
  service.spec.ports[0]!.port = '15012';
  const errors = await allErrors([deployment, daemonSet, service]);
  assert.equal(errors.length, 3, errors.join('\n'));
  assert.match(errors[0]!, /containerPort must be integer/);
  assert.match(errors[1]!, /selector/);
  assert.match(errors[2]!, /ports\/0\/port must be integer/);
});

type AttributeMap = { name: string; baseName: string; type: string }[];
const models = k8s as unknown as Record<string, { getAttributeTypeMap?: () => AttributeMap } | undefined>;

/** Fields of `value` that its client-node model (`type`) does not define, as paths; recursing into known fields. */
function unknownFields(value: unknown, type: string, path: string): string[] {
  if (value === null || value === undefined) return [];
  const array = /^Array<(.+)>$/.exec(type);
  if (array) return Array.isArray(value) ? value.flatMap((v, i) => unknownFields(v, array[1]!, `${path}[${i}]`)) : [];
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) return typeof value === 'object' ? Object.entries(value as object).flatMap(([k, v]) => unknownFields(v, map[1]!, `${path}.${k}`)) : [];
  const attributes = models[type]?.getAttributeTypeMap?.();
  if (!attributes || typeof value !== 'object') return []; // a scalar, IntOrString, Quantity, or free-form object
  const known = new Map(attributes.map((a) => [a.baseName, a.type]));
  return Object.entries(value as object).flatMap(([k, v]) => (known.has(k) ? unknownFields(v, known.get(k)!, path ? `${path}.${k}` : k) : [`${path ? `${path}.` : ''}${k}`]));
}

function strictErrors(objects: readonly ManifestObject[]): string[] {
  return objects.flatMap((o) => {
    const version = o.apiVersion.slice(o.apiVersion.lastIndexOf('/') + 1);
    const type = `${version.charAt(0).toUpperCase()}${version.slice(1)}${o.kind}`;
    assert.ok(models[type]?.getAttributeTypeMap, `@kubernetes/client-node has no model ${type}`);
    return unknownFields(o, type, '').map((f) => `${o.kind} ${o.metadata.name}: unknown field ${f}`);
  });
}

test('no object carries a field Kubernetes does not define (what kubectl apply --validate=strict refuses)', () => {
  assert.deepEqual(strictErrors([...installObjects(), ...uninstallCleanupObjects()]), []);
});

test('the strict field check finds a misspelt field at any depth', () => {
  const ds = structuredClone(installObjects().find((o) => o.kind === 'DaemonSet')!) as ManifestObject & { spec: { template: { spec: Record<string, unknown> & { containers: Record<string, unknown>[] } } } };
  ds.spec.template.spec['terminationGracePeriodSecond'] = 30;
  ds.spec.template.spec.containers[0]!['livenesProbe'] = {};
  assert.deepEqual(strictErrors([ds]), [
    'DaemonSet strait-ztunnel: unknown field spec.template.spec.containers[0].livenesProbe',
    'DaemonSet strait-ztunnel: unknown field spec.template.spec.terminationGracePeriodSecond',
  ]);
});
