/**
 * AuthorizationPolicies a waypoint enforces, as L7PolicyResources ("authz/<ns>/<name>"):
 * - targetRefs to the waypoint's Gateway (kind Gateway, group gateway.networking.k8s.io) → every request through it;
 * - targetRefs to Services bound to it → the requests for those Services;
 * - targetRefs to the GatewayClass istio-waypoint, from the root namespace → every waypoint;
 * - Strait's sidecar compatibility (mesh config `strait.selectorPolicies: waypoint`, the default): a policy attached
 *   by selector (or namespace-wide, or mesh-wide from the root namespace) whose workloads are endpoints of Services
 *   bound to the waypoint (or bound to it directly) is enforced whole by that waypoint, with the caller's identity;
 *   the ztunnels then let that waypoint's own connections to those workloads through that policy
 *   (`waypointEnforced` on the ztunnel's copy), and still apply it at L4 to every other peer.
 *   `selectorPolicies: istio` restores Istio's behaviour: such policies go to the ztunnels only.
 * A policy cannot have both targetRefs and a selector (validation rejects it, as Istio does). CUSTOM is not supported.
 * Pure.
 */
import type { AuthorizationPolicy, AuthzRule, PolicyTargetRef } from '../../common/model/types.js';
import type { L7PolicyResource, L7Rule } from '../../common/xds/waypoint-resources.js';
import type { ServiceResource, WorkloadResource } from '../../common/xds/resources.js';
import { GATEWAY_GROUP } from './http-routes.js';
import { keyOf, selectorMatches, type Notes, type Registry } from './registry.js';

export const WAYPOINT_GATEWAY_CLASS = 'istio-waypoint';

export interface WaypointInfo {
  /** "ns/name" */
  key: string;
  namespace: string;
  name: string;
  /** SPIFFE id it presents. */
  identity: string;
  /** Services bound to it (keys). */
  services: readonly string[];
  /** Workloads bound to it directly (uids). */
  workloads: readonly string[];
}

export interface L7PolicyResult {
  /** By waypoint key, by resource name. */
  perWaypoint: Map<string, Map<string, L7PolicyResource>>;
  /** "ns/name" of a selector policy → SPIFFE ids of the waypoints that enforce it whole. */
  waypointEnforced: Map<string, string[]>;
  /** "AuthorizationPolicy/ns/name" → waypoint keys. */
  appliedBy: Map<string, string[]>;
}

export function compileL7Policies(
  policies: readonly AuthorizationPolicy[],
  waypoints: readonly WaypointInfo[],
  registry: Registry,
  rootNamespace: string,
  selectorPolicies: 'waypoint' | 'istio',
  notes: Notes,
): L7PolicyResult {
  const result: L7PolicyResult = { perWaypoint: new Map(), waypointEnforced: new Map(), appliedBy: new Map() };
  const put = (wp: WaypointInfo, p: AuthorizationPolicy, scope: L7PolicyResource['scope'], binding: string) => {
    const name = `authz/${p.metadata.namespace}/${p.metadata.name}`;
    const m = result.perWaypoint.get(wp.key) ?? result.perWaypoint.set(wp.key, new Map()).get(wp.key)!;
    m.set(name, { type: 'authz', policy: `${p.metadata.namespace}/${p.metadata.name}`, action: p.spec.action as L7PolicyResource['action'], scope, rules: p.spec.rules.map(l7Rule), binding });
    const k = keyOf('AuthorizationPolicy', p.metadata);
    const by = result.appliedBy.get(k) ?? result.appliedBy.set(k, []).get(k)!;
    if (!by.includes(wp.key)) by.push(wp.key);
  };
  for (const p of policies) {
    if (p.spec.action === 'CUSTOM') continue; // reported by the enforcement report
    const ns = p.metadata.namespace!;
    const refs = targetRefs(p);
    if (refs.length > 0) {
      const services = new Map<WaypointInfo, string[]>();
      refs.forEach((t, i) => {
        const path = p.spec.targetRef ? (i === 0 ? 'spec.targetRef' : `spec.targetRefs[${i - 1}]`) : `spec.targetRefs[${i}]`;
        if (t.kind === 'Gateway' && (t.group ?? GATEWAY_GROUP) === GATEWAY_GROUP) {
          const wp = waypoints.find((w) => w.namespace === (t.namespace ?? ns) && w.name === t.name);
          if (wp) put(wp, p, { kind: 'waypoint' }, `targetRef Gateway ${wp.key}`);
          else notes.unapplied(keyOf('AuthorizationPolicy', p.metadata), path, `Gateway ${t.namespace ?? ns}/${t.name} is not a waypoint (gatewayClassName ${WAYPOINT_GATEWAY_CLASS}) Strait runs, so nothing enforces this policy for it`);
        } else if (t.kind === 'GatewayClass') {
          if (t.name !== WAYPOINT_GATEWAY_CLASS || ns !== rootNamespace) {
            notes.unapplied(keyOf('AuthorizationPolicy', p.metadata), path, `a GatewayClass target applies only to ${WAYPOINT_GATEWAY_CLASS}, from the root namespace ${rootNamespace}; nothing enforces this one`);
          } else {
            for (const wp of waypoints) put(wp, p, { kind: 'waypoint' }, `targetRef GatewayClass ${WAYPOINT_GATEWAY_CLASS}`);
          }
        } else if (t.kind === 'Service') {
          const key = `${t.namespace ?? ns}/${t.name}`;
          const wp = waypoints.find((w) => w.services.includes(key));
          if (wp) (services.get(wp) ?? services.set(wp, []).get(wp)!).push(key);
          // A Service no waypoint serves is reported by the enforcement report.
        } else {
          notes.unapplied(keyOf('AuthorizationPolicy', p.metadata), path, `targetRef kind ${t.kind} is not supported by Strait (Services, waypoint Gateways and the ${WAYPOINT_GATEWAY_CLASS} GatewayClass are)`);
        }
      });
      for (const [wp, svcs] of services) put(wp, p, { kind: 'services', services: [...new Set(svcs)].sort() }, `targetRef Service ${[...new Set(svcs)].sort().join(', ')}`);
      continue;
    }
    if (selectorPolicies === 'istio') continue;
    const selector = p.spec.selector?.matchLabels ?? {};
    const global = ns === rootNamespace;
    const selected = (w: WorkloadResource) => (global || w.namespace === ns) && selectorMatches(selector, w.labels);
    for (const wp of waypoints) {
      const svcs: string[] = [];
      const wls = new Set<string>();
      for (const key of wp.services) {
        const svc: ServiceResource | undefined = registry.service(key);
        const hits = (svc?.endpoints ?? []).map((e) => registry.workloads.get(e.workload)).filter((w): w is WorkloadResource => !!w && selected(w));
        if (hits.length > 0) {
          svcs.push(key);
          for (const w of hits) wls.add(w.uid);
        }
      }
      for (const uid of wp.workloads) {
        const w = registry.workloads.get(uid);
        if (w && selected(w)) wls.add(uid);
      }
      if (wls.size === 0) continue;
      const binding = Object.keys(selector).length > 0
        ? `selector ${Object.entries(selector).map(([k, v]) => `${k}=${v}`).join(',')} in ${global ? 'every namespace' : `namespace ${ns}`}`
        : global ? 'mesh-wide (root namespace)' : `namespace ${ns}`;
      put(wp, p, { kind: 'workloads', selector, namespace: ns, services: svcs.sort(), workloads: [...wls].sort() }, `${binding} (sidecar compatibility: enforced whole by the waypoint)`);
      const k = `${ns}/${p.metadata.name}`;
      const ids = result.waypointEnforced.get(k) ?? result.waypointEnforced.set(k, []).get(k)!;
      if (!ids.includes(wp.identity)) ids.push(wp.identity);
    }
  }
  for (const ids of result.waypointEnforced.values()) ids.sort();
  return result;
}

export function targetRefs(p: { spec: { targetRef?: PolicyTargetRef; targetRefs?: PolicyTargetRef[] } }): PolicyTargetRef[] {
  return [...(p.spec.targetRef ? [p.spec.targetRef] : []), ...(p.spec.targetRefs ?? [])];
}

function l7Rule(r: AuthzRule): L7Rule {
  const out: L7Rule = {};
  if (r.from) out.from = r.from.map(({ source }) => ({ ...source }));
  if (r.to) out.to = r.to.map(({ operation }) => ({ ...operation }));
  if (r.when) out.when = r.when.map((c) => ({ ...c }));
  return out;
}
