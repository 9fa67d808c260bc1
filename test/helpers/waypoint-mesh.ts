/**
 * A small mesh for the waypoint compiler's tests: namespace `shop` enrolled and bound to the waypoint `shop/waypoint`,
 * with Services and pods; the objects under test are added to it and run through the real pipeline (YAML →
 * validation → computeViews → enforcement report).
 */
import assert from 'node:assert/strict';
import { parseManifests } from '../../src/common/model/parse.js';
import { formatProblem } from '../../src/common/model/types.js';
import type { ServiceRoutesResource, WaypointPolicyResource } from '../../src/common/xds/waypoint-resources.js';
import { enforcementWarnings } from '../../src/controller/enforcement.js';
import { computeViews, type MeshViews } from '../../src/controller/views.js';
import { docs, namespace, pod, service, waypoint } from './manifests.js';

export const OPTS = { trustDomain: 'cluster.local', rootNamespace: 'istio-system' };

/** shop (bound to shop/waypoint): web :80, api :80, reviews :9080 (v1, v2), orders :80, db :5432 (two ports); other (not bound): ext :80. */
export function baseMesh(): unknown[] {
  return [
    namespace('shop', { 'istio.io/dataplane-mode': 'ambient', 'istio.io/use-waypoint': 'waypoint' }),
    namespace('other', { 'istio.io/dataplane-mode': 'ambient' }),
    waypoint('shop', 'waypoint'),
    service('shop', 'web', { ip: '10.96.0.1' }),
    service('shop', 'api', { ip: '10.96.0.2' }),
    service('shop', 'reviews', { ip: '10.96.0.3', ports: [{ port: 9080, targetPort: 9080, name: 'http' }] }),
    service('shop', 'orders', { ip: '10.96.0.4' }),
    service('shop', 'db', { ip: '10.96.0.5', ports: [{ port: 5432, targetPort: 5432, name: 'pg' }, { port: 8080, targetPort: 8080, name: 'admin' }] }),
    service('other', 'ext', { ip: '10.96.1.1' }),
    pod('shop', 'web-1', { ip: '10.0.0.1', labels: { app: 'web' }, sa: 'web' }),
    pod('shop', 'reviews-v1', { ip: '10.0.0.2', labels: { app: 'reviews', version: 'v1' } }),
    pod('shop', 'reviews-v2', { ip: '10.0.0.3', labels: { app: 'reviews', version: 'v2' } }),
    pod('shop', 'orders-1', { ip: '10.0.0.4', labels: { app: 'orders' }, sa: 'orders' }),
    pod('other', 'ext-1', { ip: '10.0.1.1', labels: { app: 'ext' } }),
  ];
}

export interface Compiled {
  views: MeshViews;
  /** Enforcement warnings as `strait validate` prints them. */
  warnings: string[];
  routes(svc: string, wp?: string): ServiceRoutesResource;
  policy(name: string, wp?: string): WaypointPolicyResource | undefined;
  policyNames(wp?: string): string[];
}

/** Parses the objects (failing on any error), computes the views and the warnings. */
export function compile(objects: unknown[], opts = OPTS): Compiled {
  const parsed = parseManifests(docs(...objects), 'mesh.yaml');
  assert.deepEqual(parsed.problems.filter((p) => p.severity === 'error').map(formatProblem), [], 'test manifests must be valid');
  const views = computeViews(parsed.objects.map((o) => o.object), opts);
  const warnings = enforcementWarnings(parsed.objects, views, opts).map(formatProblem);
  const wpOf = (wp = 'shop/waypoint') => {
    const w = views.waypoints.get(wp);
    assert.ok(w, `waypoint ${wp} has a view`);
    return w;
  };
  return {
    views,
    warnings,
    routes: (svc, wp) => {
      const r = wpOf(wp).routes.get(svc);
      assert.ok(r, `waypoint ${wp ?? 'shop/waypoint'} has a route table for ${svc}`);
      return r;
    },
    policy: (name, wp) => wpOf(wp).policies.get(name),
    policyNames: (wp) => [...wpOf(wp).policies.keys()].sort(),
  };
}

/** The rule names of a route table, in order. */
export function ruleNames(r: ServiceRoutesResource): string[] {
  return r.rules.map((x) => x.name);
}

export const httpRoute = (name: string, spec: Record<string, unknown>, meta: Record<string, unknown> = {}) => ({
  apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name, namespace: 'shop', ...meta }, spec,
});
export const virtualService = (name: string, spec: Record<string, unknown>, meta: Record<string, unknown> = {}) => ({
  apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name, namespace: 'shop', ...meta }, spec,
});
export const destinationRule = (name: string, spec: Record<string, unknown>, meta: Record<string, unknown> = {}) => ({
  apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name, namespace: 'shop', ...meta }, spec,
});
export const authorizationPolicy = (name: string, spec: Record<string, unknown>, ns = 'shop') => ({
  apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name, namespace: ns }, spec,
});
export const telemetry = (name: string, ns: string, spec: Record<string, unknown>) => ({
  apiVersion: 'telemetry.istio.io/v1', kind: 'Telemetry', metadata: { name, namespace: ns }, spec,
});
/** The istio ConfigMap with `mesh` written as YAML text. */
export const meshConfig = (mesh: string, ns = 'istio-system', name = 'istio') => ({
  apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: ns }, data: { mesh },
});
/** A parentRef to a Service of shop. */
export const svcParent = (name: string, port?: number) => ({ group: '', kind: 'Service', name, ...(port !== undefined ? { port } : {}) });
