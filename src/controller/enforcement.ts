/**
 * What in the loaded configuration nothing enforces, as warnings that name the object, say what happens instead and
 * what to do (DESIGN §3: config is never silently ignored). Pure: objects and their computed views in, Problems out;
 * the same warnings appear in `strait validate`, `/debug/configz` and the controller's log.
 *
 * What counts as enforced:
 * - VirtualService, DestinationRule, Telemetry, HTTPRoute and AuthorizationPolicies with targetRefs are applied
 *   only by a waypoint; one that no waypoint serves does nothing at all, and while Strait has no waypoint proxy
 *   (`waypointsEnforce: false`) one bound to a waypoint does nothing either.
 * - AuthorizationPolicies with a selector (or none) are enforced by the ztunnels at L4, reduced as Istio's ambient
 *   mode reduces them (views.ts `toZtunnelAuthz`): an ALLOW or AUDIT rule with HTTP attributes is left out (it
 *   matches no connection), a DENY rule is enforced without its HTTP attributes (it denies more than written).
 * - CUSTOM policies, Gateways of other classes than istio-waypoint, and HTTPRoutes attached to such Gateways are
 *   enforced nowhere.
 */
import type { AuthorizationPolicy, Gateway, HTTPRoute, LoadedObject, PolicyTargetRef, Problem } from '../common/model/types.js';
import { LABEL_USE_WAYPOINT, WAYPOINT_GATEWAY_CLASS, l7FieldsOfRule, type MeshViews, type ViewOptions } from './views.js';

export interface EnforcementOptions extends ViewOptions {
  /** Whether waypoint proxies run and apply what is bound to them. This version of Strait has none: false. */
  waypointsEnforce?: boolean;
}

const NO_WAYPOINT_PROXY = 'this version of Strait has no waypoint proxy';
const BIND_HINT = `bind the service to a waypoint (label ${LABEL_USE_WAYPOINT} on the Service or its namespace, naming a Gateway with gatewayClassName ${WAYPOINT_GATEWAY_CLASS})`;

/** views.ts's per-waypoint resource names ("virtualservice/ns/name") → the object's key. */
const VIEW_KIND: Record<string, string> = {
  httproute: 'HTTPRoute', virtualservice: 'VirtualService', authorizationpolicy: 'AuthorizationPolicy',
  destinationrule: 'DestinationRule', telemetry: 'Telemetry',
};

export function enforcementWarnings(objects: Iterable<LoadedObject>, views: MeshViews, opts: EnforcementOptions): Problem[] {
  const attached = new Map<string, string[]>(); // object key → waypoints ("ns/name") that receive it
  for (const [wp, view] of views.waypoints) {
    for (const name of [...view.routes.keys(), ...view.policies.keys()]) {
      const [type, ns, n] = name.split('/');
      const key = `${VIEW_KIND[type!]}/${ns}/${n}`;
      (attached.get(key) ?? attached.set(key, []).get(key)!).push(wp);
    }
  }
  const enforcedBy = (key: string) => (opts.waypointsEnforce ? attached.get(key) ?? [] : []);
  const out: Problem[] = [];
  for (const o of objects) {
    const say = (message: string, path = '') => out.push(warning(o, message, path));
    const waypoints = attached.get(o.key) ?? [];
    if (enforcedBy(o.key).length > 0) continue;
    const obj = o.object;
    switch (obj.kind) {
      case 'VirtualService':
        say(l7Message('its routes (matches, weights, retries, timeouts, faults)', waypoints, `connections to ${list(obj.spec.hosts)} go straight to the service's endpoints, balanced at L4, as if this object did not exist`, opts));
        break;
      case 'DestinationRule':
        say(l7Message('its traffic policy (subsets, load balancing, connection pool, outlier detection)', waypoints, `connections to ${obj.spec.host} go straight to the service's endpoints, balanced at L4, with no limits or ejection from this object`, opts));
        break;
      case 'Telemetry':
        say(l7Message('its tracing, access-log and metric settings', waypoints, 'the ztunnels\' access log and TCP metrics stay as they are, and no spans are sent', opts,
          `create a waypoint (a Gateway with gatewayClassName ${WAYPOINT_GATEWAY_CLASS}) ${obj.metadata.namespace === opts.rootNamespace ? 'in any namespace' : `in namespace ${obj.metadata.namespace}`} and bind services to it (label ${LABEL_USE_WAYPOINT})`));
        break;
      case 'HTTPRoute':
        httpRouteWarnings(obj, waypoints, opts, say);
        break;
      case 'AuthorizationPolicy':
        policyWarnings(obj, waypoints, opts, say);
        break;
      case 'Gateway':
        if (!opts.waypointsEnforce || obj.spec.gatewayClassName !== WAYPOINT_GATEWAY_CLASS) gatewayWarnings(obj, views, say);
        break;
      default:
        break;
    }
  }
  return out;
}

type Say = (message: string, path?: string) => void;

function warning(o: LoadedObject, message: string, path: string): Problem {
  const m = o.object.metadata;
  return {
    severity: 'warning', file: o.source.file, doc: o.source.doc, kind: o.object.kind, ...(m.namespace !== undefined ? { namespace: m.namespace } : {}),
    name: m.name, path, message, code: 'STRAIT_ERR_CONFIG_NOT_ENFORCED',
  };
}

function list(items: readonly string[]): string {
  return items.length === 0 ? '(none)' : items.join(', ');
}

/** The message for an L7 object a waypoint would apply: bound to one that does not run, or to none. */
function l7Message(what: string, waypoints: readonly string[], instead: string, opts: EnforcementOptions, hint = BIND_HINT): string {
  if (waypoints.length > 0) {
    return `not enforced: ${what} are applied by waypoint ${list(waypoints)}, and ${NO_WAYPOINT_PROXY}, so connections to the services bound to it fail until one runs; remove their ${LABEL_USE_WAYPOINT} label to reach them directly, without this object`;
  }
  return `not enforced: no waypoint serves it, and only a waypoint applies ${what}; ${instead}. To have it applied, ${hint}${opts.waypointsEnforce ? '' : ` — but ${NO_WAYPOINT_PROXY} yet, so until it has one nothing applies this object`}`;
}

function httpRouteWarnings(r: HTTPRoute, waypoints: readonly string[], opts: EnforcementOptions, say: Say): void {
  r.spec.parentRefs.forEach((pr, i) => {
    if ((pr.kind ?? 'Gateway') === 'Gateway' && (pr.group ?? 'gateway.networking.k8s.io') === 'gateway.networking.k8s.io' && !waypoints.includes(`${pr.namespace ?? r.metadata.namespace}/${pr.name}`)) {
      say(`Gateway ${pr.namespace ?? r.metadata.namespace}/${pr.name} is not a waypoint Strait knows (gatewayClassName ${WAYPOINT_GATEWAY_CLASS}); Strait has no ingress gateways, so this parent is ignored`, `spec.parentRefs[${i}]`);
    }
  });
  const services = r.spec.parentRefs.filter((pr) => pr.kind === 'Service').map((pr) => `${pr.namespace ?? r.metadata.namespace}/${pr.name}`);
  if (services.length > 0 || waypoints.length > 0) {
    say(l7Message('its rules (matches, filters, weighted backendRefs, timeouts)', waypoints, `connections to ${list(services)} go straight to the service's endpoints, balanced at L4, as if this route did not exist`, opts));
  }
}

function targetRefsOf(p: AuthorizationPolicy): PolicyTargetRef[] {
  return [...(p.spec.targetRef ? [p.spec.targetRef] : []), ...(p.spec.targetRefs ?? [])];
}

function policyWarnings(p: AuthorizationPolicy, waypoints: readonly string[], opts: EnforcementOptions, say: Say): void {
  const ns = p.metadata.namespace!;
  if (p.spec.action === 'CUSTOM') {
    say(`not enforced: action CUSTOM (external authorization${p.spec.provider ? ` by ${p.spec.provider.name}` : ''}) is not supported by Strait; nothing asks the provider and this policy denies nothing. Express the rule as an ALLOW or DENY policy`, 'spec.action');
    return;
  }
  const targets = targetRefsOf(p);
  if (targets.length > 0) {
    const named = list(targets.map((t) => `${t.kind} ${t.namespace ?? ns}/${t.name}`));
    if (waypoints.length > 0) {
      say(`not enforced: a policy with targetRefs is enforced by the waypoint it is attached to (${list(waypoints)}), and ${NO_WAYPOINT_PROXY}, so connections to the services bound to it fail until one runs; remove their ${LABEL_USE_WAYPOINT} label and use a selector instead to have the ztunnel enforce it at L4`, 'spec.targetRefs');
    } else {
      say(`not enforced anywhere: it targets ${named}, which no waypoint serves, and ztunnels apply only policies with a selector (or none), as in Istio; ${p.spec.action === 'DENY' ? 'nothing it denies is denied' : p.spec.action === 'AUDIT' ? 'nothing is audited' : 'it restricts nothing'}. Use a selector to have the ztunnel enforce it at L4, or ${BIND_HINT}${opts.waypointsEnforce ? '' : ` — ${NO_WAYPOINT_PROXY} yet`}`, 'spec.targetRefs');
    }
    return;
  }
  const l7Rules = p.spec.rules.map((rule, i) => ({ i, fields: shortFields(l7FieldsOfRule(rule)) })).filter((r) => r.fields.length > 0);
  if (l7Rules.length === 0) return;
  const which = l7Rules.map((r) => `rules[${r.i}] (${r.fields.join(', ')})`).join(', ');
  const uses = `${which} ${l7Rules.length === 1 ? 'uses' : 'use'} HTTP attributes, which the ztunnel cannot check at L4`;
  const fix = `To enforce the HTTP attributes, the workloads' service must be served by a waypoint with the policy attached to it by targetRefs${opts.waypointsEnforce ? '' : ` — ${NO_WAYPOINT_PROXY} yet`}`;
  const selected = scopeText(p, opts);
  if (p.spec.action === 'DENY') {
    say(`${uses}; as in Istio's ambient mode the ztunnel enforces ${l7Rules.length === 1 ? 'that rule' : 'those rules'} without them, so it denies every connection to ${selected} that matches the rest of the rule, whatever the request: more than written. ${fix}`, 'spec.rules');
    return;
  }
  if (p.spec.action === 'AUDIT') {
    say(`${uses}; the ztunnel leaves ${l7Rules.length === 1 ? 'that rule' : 'those rules'} out, so no connection is audited by ${l7Rules.length === 1 ? 'it' : 'them'}. ${fix}`, 'spec.rules');
    return;
  }
  const noneLeft = l7Rules.length === p.spec.rules.length;
  say(`${uses}; as in Istio's ambient mode the ztunnel leaves ${l7Rules.length === 1 ? 'that ALLOW rule' : 'those ALLOW rules'} out (${l7Rules.length === 1 ? 'it matches' : 'they match'} no connection), so ` +
    (noneLeft
      ? `this policy allows nothing: every connection to ${selected} is DENIED unless another ALLOW policy admits it. `
      : `connections to ${selected} that only ${l7Rules.length === 1 ? 'it' : 'they'} would allow are DENIED; the policy's other rules still allow. `) +
    `${fix}; to allow at L4 now, remove the HTTP attributes from the rule${l7Rules.length === 1 ? '' : 's'}`, 'spec.rules');
}

/** "the workloads labelled app=orders in namespace shop", as the policy's scope selects them. */
function scopeText(p: AuthorizationPolicy, opts: ViewOptions): string {
  const ns = p.metadata.namespace!;
  const sel = Object.entries(p.spec.selector?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`).join(',');
  const where = ns === opts.rootNamespace ? 'in every namespace (root namespace policy)' : `in namespace ${ns}`;
  return sel ? `the workloads labelled ${sel} ${where}` : `every workload ${where}`;
}

/** "to[0].operation.methods" → "methods"; "when[1].key request.headers[x]" → "when request.headers[x]". */
function shortFields(paths: readonly string[]): string[] {
  const out = paths.map((f) => {
    const when = /^when\[\d+\]\.key (.*)$/.exec(f);
    return when ? `when ${when[1]}` : f.slice(f.lastIndexOf('.') + 1);
  });
  return [...new Set(out)];
}

function gatewayWarnings(gw: Gateway, views: MeshViews, say: Say): void {
  const key = `${gw.metadata.namespace}/${gw.metadata.name}`;
  if (gw.spec.gatewayClassName !== WAYPOINT_GATEWAY_CLASS) {
    say(`gatewayClassName ${gw.spec.gatewayClassName}: Strait runs only waypoints (class ${WAYPOINT_GATEWAY_CLASS}) and has no ingress gateways, so nothing listens for this Gateway (ignored)`, 'spec.gatewayClassName');
    return;
  }
  const view = views.waypoints.get(key);
  const services = view?.services ?? [];
  const workloads = [...views.workloads.values()].filter((w) => w.waypoint && `${w.waypoint.namespace}/${w.waypoint.name}` === key).map((w) => w.uid);
  const bound = [...(services.length > 0 ? [`services ${list(services)}`] : []), ...(workloads.length > 0 ? [`workloads ${list(workloads)}`] : [])];
  say(bound.length > 0
    ? `not served: ${NO_WAYPOINT_PROXY}, so connections to what is bound to this waypoint (${bound.join('; ')}) fail; remove their ${LABEL_USE_WAYPOINT} label to reach them directly`
    : `not served: ${NO_WAYPOINT_PROXY}; nothing is bound to this waypoint yet, and connections to what is bound later will fail until one runs`);
}
