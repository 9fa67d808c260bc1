/**
 * What in the loaded configuration nothing enforces, or enforces otherwise than written, as warnings that name the
 * object, say what happens instead and what to do (DESIGN §3: config is never silently ignored). Pure: objects and
 * their computed views in, Problems out; the same warnings appear in `strait validate`, `/debug/configz` and the
 * controller's log.
 *
 * What counts as enforced:
 * - VirtualService, DestinationRule, Telemetry, HTTPRoute and AuthorizationPolicies with targetRefs are applied by the
 *   waypoints serving their services (views.l7.appliedBy); one that no waypoint applies does nothing at all. The
 *   waypoint compiler's notes say what it could not apply (an unknown host, a shadowed object, an unsupported field).
 * - AuthorizationPolicies with a selector (or none) are enforced by the ztunnels at L4, reduced as Istio's ambient
 *   mode reduces them (views.ts `toZtunnelAuthz`); when the selected workloads are served by a waypoint, that
 *   waypoint enforces the whole policy with the caller's identity (Strait's sidecar compatibility, unless the mesh
 *   config says `strait.selectorPolicies: istio`), and only connections that bypass it get the L4 reduction.
 * - CUSTOM policies, Gateways of other classes than istio-waypoint, ConfigMaps other than the mesh config, and sidecar
 *   injection settings are enforced nowhere.
 */
import type { AuthorizationPolicy, ConfigMap, Gateway, LoadedObject, Namespace, Pod, Problem } from '../common/model/types.js';
import { LABEL_USE_WAYPOINT, WAYPOINT_GATEWAY_CLASS, isEnrolled, l7FieldsOfRule, type MeshViews, type ViewOptions } from './views.js';
import { isMeshConfigMap } from './waypoint/mesh-config.js';
import { targetRefs } from './waypoint/l7-policies.js';

export type EnforcementOptions = ViewOptions;

const BIND_HINT = `bind the service to a waypoint (label ${LABEL_USE_WAYPOINT} on the Service or its namespace, naming a Gateway with gatewayClassName ${WAYPOINT_GATEWAY_CLASS})`;
const SIDECAR_INJECT = 'sidecar.istio.io/inject';
const ENROLL_HINT = 'ambient mode needs no sidecar: a pod joins the mesh through the label istio.io/dataplane-mode=ambient on its namespace (or on the pod)';

export function enforcementWarnings(objects: Iterable<LoadedObject>, views: MeshViews, opts: EnforcementOptions): Problem[] {
  const list = [...objects];
  const byKey = new Map(list.map((o) => [o.key, o]));
  const out: Problem[] = [];
  const unapplied = new Set<string>();
  for (const n of views.l7.notes) {
    if (n.unapplied) unapplied.add(n.object);
    const o = byKey.get(n.object);
    if (o) out.push(warning(o, n.message, n.path));
  }
  const nsLabels = (ns: string) => (byKey.get(`Namespace//${ns}`)?.object as Namespace | undefined)?.metadata.labels ?? {};
  for (const o of list) {
    const say = (message: string, path = '') => out.push(warning(o, message, path));
    const applied = views.l7.appliedBy.get(o.key) ?? [];
    const obj = o.object;
    const generic = applied.length === 0 && !unapplied.has(o.key);
    switch (obj.kind) {
      case 'VirtualService':
        if (generic) say(l7Message('its routes (matches, weights, retries, timeouts, faults)', `connections to ${listText(obj.spec.hosts)} go straight to the service's endpoints, balanced at L4, as if this object did not exist`));
        break;
      case 'DestinationRule':
        if (generic) say(l7Message('its traffic policy (subsets, load balancing, connection pool, outlier detection)', `connections to ${obj.spec.host} go straight to the service's endpoints, balanced at L4, with no limits or ejection from this object`));
        break;
      case 'Telemetry':
        if (generic && obj.spec.tracing) {
          say(l7Message('its tracing settings', 'no spans are sent for the requests it names',
            `create a waypoint (a Gateway with gatewayClassName ${WAYPOINT_GATEWAY_CLASS}) ${obj.metadata.namespace === opts.rootNamespace ? 'in any namespace' : `in namespace ${obj.metadata.namespace}`} and bind services to it (label ${LABEL_USE_WAYPOINT})`));
        }
        break;
      case 'HTTPRoute':
        if (generic) {
          const services = obj.spec.parentRefs.filter((pr) => pr.kind === 'Service').map((pr) => `${pr.namespace ?? obj.metadata.namespace}/${pr.name}`);
          say(l7Message('its rules (matches, filters, weighted backendRefs, timeouts)', `connections to ${listText(services)} go straight to the service's endpoints, balanced at L4, as if this route did not exist`));
        }
        break;
      case 'AuthorizationPolicy':
        policyWarnings(obj, applied, views, opts, say);
        break;
      case 'Gateway':
        if (obj.spec.gatewayClassName !== WAYPOINT_GATEWAY_CLASS) gatewayWarning(obj, say);
        break;
      case 'ConfigMap':
        configMapWarning(obj, opts, say);
        break;
      case 'Pod':
        podSidecarNote(obj, nsLabels(obj.metadata.namespace!), say);
        break;
      case 'Namespace':
        namespaceSidecarNote(obj, say);
        break;
      default:
        break;
    }
  }
  // In input order (file, then document), as the other problems are; stable within a document.
  return out.map((p, i) => ({ p, i }))
    .sort((a, b) => (a.p.file < b.p.file ? -1 : a.p.file > b.p.file ? 1 : a.p.doc - b.p.doc || a.i - b.i))
    .map(({ p }) => p);
}

type Say = (message: string, path?: string) => void;

function warning(o: LoadedObject, message: string, path: string): Problem {
  const m = o.object.metadata;
  return {
    severity: 'warning', file: o.source.file, doc: o.source.doc, kind: o.object.kind, ...(m.namespace !== undefined ? { namespace: m.namespace } : {}),
    name: m.name, path, message, code: 'STRAIT_ERR_CONFIG_NOT_ENFORCED',
  };
}

function listText(items: readonly string[]): string {
  return items.length === 0 ? '(none)' : items.join(', ');
}

/** The message for an L7 object that no waypoint applies. */
function l7Message(what: string, instead: string, hint = BIND_HINT): string {
  return `not enforced: no waypoint serves it, and only a waypoint applies ${what}; ${instead}. To have it applied, ${hint}`;
}

function policyWarnings(p: AuthorizationPolicy, applied: readonly string[], views: MeshViews, opts: EnforcementOptions, say: Say): void {
  const ns = p.metadata.namespace!;
  if (p.spec.action === 'CUSTOM') {
    say(`not enforced: action CUSTOM (external authorization${p.spec.provider ? ` by ${p.spec.provider.name}` : ''}) is not supported by Strait; nothing asks the provider and this policy denies nothing. Express the rule as an ALLOW or DENY policy`, 'spec.action');
    return;
  }
  const targets = targetRefs(p);
  if (targets.length > 0) {
    if (applied.length > 0) return;
    const named = listText(targets.map((t) => `${t.kind} ${t.namespace ?? ns}/${t.name}`));
    say(`not enforced anywhere: it targets ${named}, which no waypoint serves, and ztunnels apply only policies with a selector (or none), as in Istio; ${p.spec.action === 'DENY' ? 'nothing it denies is denied' : p.spec.action === 'AUDIT' ? 'nothing is audited' : 'it restricts nothing'}. Use a selector to have the ztunnel enforce it at L4, or ${BIND_HINT}`, 'spec.targetRefs');
    return;
  }
  const l7Rules = p.spec.rules.map((rule, i) => ({ i, fields: shortFields(l7FieldsOfRule(rule)) })).filter((r) => r.fields.length > 0);
  if (l7Rules.length === 0) return;
  const which = l7Rules.map((r) => `rules[${r.i}] (${r.fields.join(', ')})`).join(', ');
  const one = l7Rules.length === 1;
  const uses = `${which} ${one ? 'uses' : 'use'} HTTP attributes, which the ztunnel cannot check at L4`;
  const selected = scopeText(p, opts);
  const noneLeft = l7Rules.length === p.spec.rules.length;
  if (applied.length > 0) {
    const scope = [...views.waypoints.values()].flatMap((w) => [...w.policies.values()])
      .find((r) => r.type === 'authz' && r.policy === `${ns}/${p.metadata.name}` && r.scope.kind === 'workloads');
    const services = scope?.type === 'authz' && scope.scope.kind === 'workloads' && scope.scope.services.length > 0 ? ` for requests to ${scope.scope.services.join(', ')}` : '';
    say(`${uses}: waypoint ${listText(applied)} enforces this whole policy${services}, with the caller's identity (Strait's sidecar compatibility; strait.selectorPolicies: istio in the mesh config restores Istio's behaviour). ` +
      `Connections that reach ${selected} without that waypoint (to a pod address directly) are checked at L4 by the ztunnel, which ${bypassEffect(p, one, noneLeft)}`, 'spec.rules');
    return;
  }
  const istioMode = views.l7.mesh.selectorPolicies === 'istio';
  const fix = istioMode
    ? `To enforce the HTTP attributes, attach the policy by targetRefs to a waypoint serving the workloads' service (the mesh config sets strait.selectorPolicies: istio, so selector policies stay at the ztunnel), or remove the HTTP attributes from the rule${one ? '' : 's'}`
    : `To enforce the HTTP attributes, deploy a waypoint (a Gateway with gatewayClassName ${WAYPOINT_GATEWAY_CLASS}) and bind the workloads' service to it (label ${LABEL_USE_WAYPOINT}): it then enforces this whole policy with the caller's identity. Or remove the HTTP attributes from the rule${one ? '' : 's'}`;
  say(`${uses}; as in Istio's ambient mode the ztunnel ${l4Effect(p, one, noneLeft, selected)}. ${fix}`, 'spec.rules');
}

/** What the ztunnel's L4 reduction does to connections that bypass the waypoint enforcing the whole policy. */
function bypassEffect(p: AuthorizationPolicy, one: boolean, noneLeft: boolean): string {
  const them = one ? 'that rule' : 'those rules';
  if (p.spec.action === 'DENY') return `enforces ${them} without the HTTP attributes: it denies every such connection matching the rest of the rule`;
  if (p.spec.action === 'AUDIT') return `leaves ${them} out: such connections are not audited by ${one ? 'it' : 'them'}`;
  return `leaves ${one ? 'that ALLOW rule' : 'those ALLOW rules'} out: ${noneLeft ? 'such connections are DENIED unless another ALLOW policy admits them' : 'only the policy\'s other rules can allow such connections'}`;
}

/** What the ztunnel's L4 reduction does to the rules with HTTP attributes. */
function l4Effect(p: AuthorizationPolicy, one: boolean, noneLeft: boolean, selected: string): string {
  if (p.spec.action === 'DENY') {
    return `enforces ${one ? 'that rule' : 'those rules'} without them, so it denies every connection to ${selected} that matches the rest of the rule, whatever the request: more than written`;
  }
  if (p.spec.action === 'AUDIT') return `leaves ${one ? 'that rule' : 'those rules'} out, so no connection is audited by ${one ? 'it' : 'them'}`;
  return `leaves ${one ? 'that ALLOW rule' : 'those ALLOW rules'} out (${one ? 'it matches' : 'they match'} no connection), so ` +
    (noneLeft
      ? `this policy allows nothing: every connection to ${selected} is DENIED unless another ALLOW policy admits it`
      : `connections to ${selected} that only ${one ? 'it' : 'they'} would allow are DENIED; the policy's other rules still allow`);
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

function gatewayWarning(gw: Gateway, say: Say): void {
  say(`gatewayClassName ${gw.spec.gatewayClassName}: Strait runs only waypoints (class ${WAYPOINT_GATEWAY_CLASS}) and has no ingress gateways, so nothing listens for this Gateway (ignored)`, 'spec.gatewayClassName');
}

function configMapWarning(cm: ConfigMap, opts: ViewOptions, say: Say): void {
  if (isMeshConfigMap(cm, opts.rootNamespace)) return;
  const why = cm.metadata.name === 'istio'
    ? `the mesh config is read from the ConfigMap istio in the root namespace ${opts.rootNamespace}, not ${cm.metadata.namespace}`
    : `Strait reads only the ConfigMap istio in the root namespace ${opts.rootNamespace} (its mesh key, Istio's mesh config)`;
  say(`not read: ${why}; this ConfigMap is ignored`);
}

function podSidecarNote(pod: Pod, nsLabels: Record<string, string>, say: Say): void {
  const v = pod.metadata.annotations[SIDECAR_INJECT] ?? pod.metadata.labels[SIDECAR_INJECT];
  if (v === undefined) return;
  const where = pod.metadata.annotations[SIDECAR_INJECT] !== undefined ? `metadata.annotations[${SIDECAR_INJECT}]` : `metadata.labels[${SIDECAR_INJECT}]`;
  say(`has no effect: ${ENROLL_HINT}; this pod is ${isEnrolled(pod, nsLabels) ? 'enrolled' : 'not enrolled'}`, where);
}

function namespaceSidecarNote(ns: Namespace, say: Say): void {
  for (const label of ['istio-injection', 'istio.io/rev']) {
    if (ns.metadata.labels[label] !== undefined) say(`has no effect: it asks for sidecar injection, and ${ENROLL_HINT}`, `metadata.labels[${label}]`);
  }
}
