/**
 * The waypoint compiler (DESIGN §6): every L7 object compiled into the model each waypoint receives
 * (src/common/xds/waypoint-resources.ts) — per bound Service a route table (TYPE_ROUTE "<ns>/<svc>"), and the
 * backend, L7 authorization and tracing policies (TYPE_POLICY "backend/…", "authz/…", "tracing/…") — plus what the
 * controller reports: HTTPRoute status, which waypoint applies which object, the ztunnel exemptions of policies a
 * waypoint enforces, and notes about what could not be applied. Pure: objects and computed services in, views out.
 */
import type { AuthorizationPolicy, ConfigMap, DestinationRule, HTTPRoute, Telemetry, VirtualService } from '../../common/model/types.js';
import type { ServiceResource, WaypointRef, WorkloadResource } from '../../common/xds/resources.js';
import type { ServiceRoutesResource, WaypointPolicyResource } from '../../common/xds/waypoint-resources.js';
import { compileDestinationRules } from './backends.js';
import { compileHTTPRoutes, type HTTPRouteStatus, type ServiceBinding } from './http-routes.js';
import { compileL7Policies, type WaypointInfo } from './l7-policies.js';
import { meshSettings, type MeshSettings } from './mesh-config.js';
import { Notes, Registry, serviceKey, type CompileNote } from './registry.js';
import { serviceRoutes } from './routes.js';
import { compileTracing, telemetryNotes } from './tracing.js';
import { compileVirtualServices } from './virtual-services.js';

export type { CompileNote } from './registry.js';
export type { HTTPRouteStatus, RouteCondition, RouteParentStatus } from './http-routes.js';

export interface L7Objects {
  httpRoutes: readonly HTTPRoute[];
  virtualServices: readonly VirtualService[];
  destinationRules: readonly DestinationRule[];
  authz: readonly AuthorizationPolicy[];
  telemetry: readonly Telemetry[];
  configMaps: readonly ConfigMap[];
}

/** What one waypoint receives. */
export interface WaypointCompilation {
  /** Services bound to it ("ns/name"). */
  services: string[];
  /** TYPE_ROUTE, by service key. */
  routes: Map<string, ServiceRoutesResource>;
  /** TYPE_POLICY, by resource name. */
  policies: Map<string, WaypointPolicyResource>;
}

export interface L7Report {
  /** HTTPRoute status by "ns/name". */
  routeStatus: Map<string, HTTPRouteStatus>;
  /** "Kind/ns/name" → the waypoints ("ns/name") that apply the object. */
  appliedBy: Map<string, string[]>;
  /** AuthorizationPolicy "ns/name" → SPIFFE ids of the waypoints that enforce it whole (ztunnels exempt their connections). */
  waypointEnforced: Map<string, string[]>;
  notes: CompileNote[];
  mesh: Omit<MeshSettings, 'config'>;
}

export function compileWaypoints(
  objects: L7Objects,
  waypoints: ReadonlyMap<string, WaypointRef>,
  services: ReadonlyMap<string, ServiceResource>,
  workloads: ReadonlyMap<string, WorkloadResource>,
  rootNamespace: string,
): { perWaypoint: Map<string, WaypointCompilation>; report: L7Report } {
  const notes = new Notes();
  const registry = new Registry(services, workloads);
  const mesh = meshSettings(objects.configMaps, rootNamespace);
  const appliedBy = new Map<string, string[]>();
  const applied = (object: string, wp: string) => {
    const by = appliedBy.get(object) ?? appliedBy.set(object, []).get(object)!;
    if (!by.includes(wp)) by.push(wp);
  };

  // Bound services and workloads by waypoint, in one pass over each.
  const boundServices = new Map<string, string[]>();
  for (const s of services.values()) if (s.waypoint) push(boundServices, `${s.waypoint.namespace}/${s.waypoint.name}`, serviceKey(s));
  const boundWorkloads = new Map<string, string[]>();
  for (const w of workloads.values()) if (w.waypoint) push(boundWorkloads, `${w.waypoint.namespace}/${w.waypoint.name}`, w.uid);
  const infos: WaypointInfo[] = [...waypoints].map(([key, ref]) => ({
    key, namespace: ref.namespace, name: ref.name, identity: ref.identity,
    services: (boundServices.get(key) ?? []).sort(),
    workloads: (boundWorkloads.get(key) ?? []).sort(),
  }));
  const servedBy = new Map<string, string>();
  for (const wp of infos) for (const s of wp.services) servedBy.set(s, wp.key);

  const bindingOf = (svc: ServiceResource): ServiceBinding => {
    const key = serviceKey(svc);
    const wp = servedBy.get(key);
    if (wp) return { waypoint: wp };
    if (svc.waypoint) return { notServed: `Service ${key} is bound to waypoint ${svc.waypoint.namespace}/${svc.waypoint.name}, which does not exist (no Gateway with gatewayClassName istio-waypoint of that name)` };
    return { notServed: `Service ${key} is not bound to a waypoint (label istio.io/use-waypoint on the Service or its namespace), and only a waypoint applies HTTPRoutes` };
  };

  const backends = compileDestinationRules(objects.destinationRules, registry, notes);
  const subsetsOf = (svc: string) => {
    const b = backends.get(svc);
    return b ? new Set(Object.keys(b.subsets)) : undefined;
  };
  const http = compileHTTPRoutes(objects.httpRoutes, registry, bindingOf, new Set(waypoints.keys()), notes);
  const vs = compileVirtualServices(objects.virtualServices, registry, new Set(servedBy.keys()), subsetsOf, notes);
  const l7 = compileL7Policies(objects.authz, infos, registry, rootNamespace, mesh.selectorPolicies, notes);
  telemetryNotes(objects.telemetry, rootNamespace, notes);

  const perWaypoint = new Map<string, WaypointCompilation>();
  for (const wp of infos) {
    const routes = new Map<string, ServiceRoutesResource>();
    const policies = new Map<string, WaypointPolicyResource>();
    const backendServices = new Set<string>(wp.services);
    for (const key of wp.services) {
      const table = serviceRoutes(registry.service(key)!, http.perService.get(key), vs.get(key), notes);
      routes.set(key, table);
      if (table.origin.kind !== 'default') for (const o of table.origin.objects) applied(`${table.origin.kind}/${o}`, wp.key);
      for (const rule of table.rules) {
        if (rule.action.kind !== 'forward') continue;
        for (const b of rule.action.backends) if (!b.fail) backendServices.add(b.service);
        for (const m of rule.action.mirrors ?? []) backendServices.add(m.backend.service);
      }
    }
    for (const svc of [...backendServices].sort()) {
      const b = backends.get(svc);
      if (!b) continue;
      policies.set(`backend/${svc}`, b);
      applied(`DestinationRule/${b.origin}`, wp.key);
    }
    for (const [name, p] of l7.perWaypoint.get(wp.key) ?? []) policies.set(name, p);
    const tracing = compileTracing(objects.telemetry, wp, mesh, registry, rootNamespace, notes);
    for (const [name, t] of tracing.resources) policies.set(name, t);
    for (const t of tracing.used) applied(t, wp.key);
    perWaypoint.set(wp.key, { services: [...wp.services], routes, policies });
  }
  for (const [object, wps] of l7.appliedBy) for (const wp of wps) applied(object, wp);
  for (const wps of appliedBy.values()) wps.sort();

  return {
    perWaypoint,
    report: {
      routeStatus: http.status,
      appliedBy,
      waypointEnforced: l7.waypointEnforced,
      notes: notes.list,
      mesh: { ...(mesh.source ? { source: mesh.source } : {}), selectorPolicies: mesh.selectorPolicies },
    },
  };
}

function push(m: Map<string, string[]>, key: string, value: string): void {
  const list = m.get(key);
  if (list) list.push(value);
  else m.set(key, [value]);
}
