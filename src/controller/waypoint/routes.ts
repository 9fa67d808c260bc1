/**
 * The route table of one Service bound to a waypoint: HTTPRoutes when any is attached (they win over a
 * VirtualService for the same Service, as Istio's sidecars select Gateway API routes first; Istio calls mixing both
 * for one workload undefined in ambient mode), else the VirtualService for its host, else one rule sending
 * everything to the Service itself. Ports that no HTTPRoute attachment covers keep that default. Pure.
 */
import type { ServiceResource } from '../../common/xds/resources.js';
import type { RouteRule, ServiceRoutesResource } from '../../common/xds/waypoint-resources.js';
import type { AttachedRoutes } from './http-routes.js';
import { istioDefaultRetry } from './route-common.js';
import { serviceKey, type Notes } from './registry.js';
import type { ServiceVirtualService } from './virtual-services.js';

export const HTTPROUTE_WINS_REASON = 'an HTTPRoute is attached to this Service, and HTTPRoutes win over VirtualServices (Istio selects Gateway API routes first; mixing both for one service is undefined in Istio\'s ambient mode) — move the rules into the HTTPRoute, or delete it';

export function serviceRoutes(svc: ServiceResource, http: AttachedRoutes | undefined, vs: ServiceVirtualService | undefined, notes: Notes): ServiceRoutesResource {
  const key = serviceKey(svc);
  const base = { service: key, hostname: svc.hostname };
  if (http) {
    const shadowed = [...(vs ? [{ object: vs.object, reason: HTTPROUTE_WINS_REASON }, ...vs.shadowed] : [])];
    if (vs) notes.unapplied(`VirtualService/${vs.object}`, 'spec.hosts', `shadowed for Service ${key}: ${HTTPROUTE_WINS_REASON}`);
    // Ports no attachment covers: no route is attached there, so the Service's own endpoints answer.
    const uncovered = http.ports ? svc.ports.map((p) => p.port).filter((p) => !http.ports!.has(p)) : [];
    return {
      ...base,
      origin: { kind: 'HTTPRoute', objects: http.routes, ...(shadowed.length > 0 ? { shadowed } : {}) },
      rules: [...http.rules, ...uncovered.map((port) => defaultRule(svc, port))],
    };
  }
  if (vs) {
    return { ...base, origin: { kind: 'VirtualService', objects: [vs.object], ...(vs.shadowed.length > 0 ? { shadowed: vs.shadowed } : {}) }, rules: vs.rules };
  }
  return { ...base, origin: { kind: 'default', objects: [] }, rules: [defaultRule(svc)] };
}

/** Everything (or everything on one port) to the Service's own endpoints, with Istio's default retries. */
function defaultRule(svc: ServiceResource, port?: number): RouteRule {
  const key = serviceKey(svc);
  return {
    name: `Service/${key}${port !== undefined ? `/port[${port}]` : ''}`,
    match: port !== undefined ? { port } : {},
    action: { kind: 'forward', backends: [{ service: key, weight: 1 }], retry: istioDefaultRetry() },
  };
}
