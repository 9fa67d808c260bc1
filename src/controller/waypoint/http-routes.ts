/**
 * Gateway API HTTPRoutes attached to Services (GAMMA) → route rules per Service, with their status.
 *
 * - A parentRef {group: "", kind: Service} attaches the route to that Service, to one port (`port`, or `sectionName`
 *   naming a port) or to all of them. Only producer routes (in the Service's namespace) are supported; a route in
 *   another namespace (a consumer route) is not accepted. `hostnames` is ignored, as GAMMA asks.
 * - Each (rule, match) becomes one RouteRule; a rule without matches has the default PathPrefix "/". The rules of
 *   every route attached to a Service are ordered by the Gateway API precedence: Exact path, then the longest prefix
 *   (RegularExpression last, as Istio orders it), then a method match, then more header matches, then more query
 *   parameter matches; ties go to the oldest route, then "namespace/name", then rule order, then match order.
 * - backendRefs: weight default 1, weight 0 gets nothing; a backend that cannot be used (missing Service, other kind,
 *   another namespace: ReferenceGrant is not supported, so cross-namespace references are refused) answers 500 for its
 *   share; no usable weight at all → the rule answers 500 (the spec's behaviour).
 * - Retries: the rule's `retry` as Istio converts it; no `retry` → Istio's default policy.
 * Pure.
 */
import type { BackendRef as GwBackendRef, HTTPHeaderFilter, HTTPRoute, HTTPRouteMatch, HTTPRouteRule, ParentReference } from '../../common/model/types.js';
import type { BackendRef, HeaderOps, MirrorPolicy, RequestMatch, RetryPolicy, RouteAction, RouteRule } from '../../common/xds/waypoint-resources.js';
import type { ServiceResource } from '../../common/xds/resources.js';
import { ISTIO_DEFAULT_RETRY_ON, failedBackend, istioDefaultRetry, timeoutMs, FLAG_NO_CLUSTER } from './route-common.js';
import { byAge, headerOps, keyOf, Notes, serviceKey, type Registry } from './registry.js';

export const GATEWAY_GROUP = 'gateway.networking.k8s.io';

export interface RouteCondition {
  type: 'Accepted' | 'ResolvedRefs';
  status: 'True' | 'False';
  reason: string;
  message: string;
}
export interface RouteParentStatus {
  parentRef: ParentReference;
  conditions: RouteCondition[];
}
/** An HTTPRoute's status as Gateway API writes it (status.parents), for /debug/configz. */
export interface HTTPRouteStatus {
  parents: RouteParentStatus[];
}

/** Where a bound service is served, or why it is not. */
export type ServiceBinding = { waypoint: string } | { notServed: string };

/** The rules attached to one Service, in precedence order, with the routes they came from. */
export interface AttachedRoutes {
  rules: RouteRule[];
  /** "ns/name" of each route with rules here, in precedence order of their first rule. */
  routes: string[];
  /** Ports every attachment is restricted to; undefined when some route attaches to every port. */
  ports?: Set<number>;
}

export interface HTTPRouteResult {
  /** By service key, for services served by a waypoint. */
  perService: Map<string, AttachedRoutes>;
  /** By "ns/name". */
  status: Map<string, HTTPRouteStatus>;
}

interface Sortable {
  key: number[];
  route: HTTPRoute;
  rule: RouteRule;
}

type Refs = { reason: string; message: string }[];

export function compileHTTPRoutes(
  routes: readonly HTTPRoute[],
  registry: Registry,
  bindingOf: (svc: ServiceResource) => ServiceBinding,
  waypoints: ReadonlySet<string>,
  notes: Notes,
): HTTPRouteResult {
  const sortable = new Map<string, Sortable[]>();
  const ports = new Map<string, Set<number> | 'all'>();
  const status = new Map<string, HTTPRouteStatus>();
  for (const route of [...routes].sort(byAge)) {
    const ns = route.metadata.namespace!;
    const objKey = keyOf('HTTPRoute', route.metadata);
    const refs: Refs = [];
    // Notes about rules matter only where the route is applied; a route attached nowhere gets its parents' notes.
    const ruleNotes = new Notes();
    const actions = route.spec.rules.map((rule, i) => ruleAction(route, rule, i, registry, refs, ruleNotes));
    const resolved: RouteCondition = refs.length === 0
      ? { type: 'ResolvedRefs', status: 'True', reason: 'ResolvedRefs', message: 'every reference resolved' }
      : { type: 'ResolvedRefs', status: 'False', reason: refs[0]!.reason, message: refs.map((r) => r.message).join('; ') };
    const parents: RouteParentStatus[] = [];
    // Ports per attached service, across this route's parentRefs.
    const attach = new Map<string, Set<number> | 'all'>();
    route.spec.parentRefs.forEach((pr, i) => {
      const accepted = acceptParent(route, pr, registry, bindingOf, waypoints);
      parents.push({ parentRef: pr, conditions: [accepted.condition, resolved] });
      if (accepted.condition.status === 'False') {
        notes.unapplied(objKey, `spec.parentRefs[${i}]`, `not accepted (${accepted.condition.reason}): ${accepted.condition.message}`);
        return;
      }
      const svc = accepted.service!;
      const prev = attach.get(svc);
      if (accepted.port === undefined || prev === 'all') attach.set(svc, 'all');
      else attach.set(svc, new Set([...(prev ?? []), accepted.port]));
    });
    status.set(`${ns}/${route.metadata.name}`, { parents });
    if (attach.size > 0) for (const n of ruleNotes.list) notes.add(n.object, n.path, n.message);
    if (attach.size > 0 && route.spec.hostnames && route.spec.hostnames.length > 0) {
      notes.add(objKey, 'spec.hostnames', 'ignored: a route attached to a Service applies to every request for that Service (GAMMA implementations must not infer behaviour from hostnames); to match a host, match the request with a header match instead');
    }
    for (const [svc, p] of attach) {
      const svcPorts = p === 'all' ? [undefined] : [...p].sort((a, b) => a - b);
      const prevPorts = ports.get(svc);
      ports.set(svc, p === 'all' || prevPorts === 'all' ? 'all' : new Set([...(prevPorts ?? []), ...p]));
      const list = sortable.get(svc) ?? sortable.set(svc, []).get(svc)!;
      route.spec.rules.forEach((rule, i) => {
        rule.matches.forEach((m, j) => {
          for (const port of svcPorts) {
            const name = `HTTPRoute/${ns}/${route.metadata.name}/rules[${i}]/matches[${j}]${svcPorts.length > 1 ? `/port[${port}]` : ''}`;
            const match = requestMatch(m, port);
            list.push({ key: precedence(m), route, rule: { name, match, action: actions[i]! } });
          }
        });
      });
    }
  }
  const perService = new Map<string, AttachedRoutes>();
  for (const [svc, list] of sortable) {
    // Stable sort: equal keys keep route age order (routes were visited oldest first), then rule and match order.
    list.sort((a, b) => compareKeys(b.key, a.key));
    const p = ports.get(svc);
    perService.set(svc, {
      rules: list.map((s) => s.rule),
      routes: [...new Set(list.map((s) => `${s.route.metadata.namespace}/${s.route.metadata.name}`))],
      ...(p && p !== 'all' ? { ports: p } : {}),
    });
  }
  return { perService, status };
}

function compareKeys(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

/**
 * Larger is earlier: path kind (Exact 3, PathPrefix 2, RegularExpression 1), path length, method, headers, query params.
 * A PathPrefix counts without its trailing "/" (ignored when matching, so "/foo/" is no longer than "/foo"), as Istio.
 */
function precedence(m: HTTPRouteMatch): number[] {
  const rank = m.path?.type === 'Exact' ? 3 : m.path?.type === 'PathPrefix' ? 2 : m.path ? 1 : 0;
  const length = !m.path ? 0 : m.path.type === 'PathPrefix' ? prefixValue(m.path.value).length : m.path.value.length;
  return [rank, length, m.method ? 1 : 0, firstByName(m.headers ?? [], true).length, firstByName(m.queryParams ?? [], false).length];
}

/** Gateway API: with repeated names only the first entry counts (header names case-insensitively). */
function firstByName<T extends { name: string }>(list: readonly T[], caseInsensitive: boolean): T[] {
  const seen = new Set<string>();
  return list.filter((x) => {
    const k = caseInsensitive ? x.name.toLowerCase() : x.name;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function requestMatch(m: HTTPRouteMatch, port: number | undefined): RequestMatch {
  const out: RequestMatch = {};
  if (m.path) {
    if (m.path.type === 'Exact') out.path = { type: 'exact', value: m.path.value };
    else if (m.path.type === 'RegularExpression') out.path = { type: 'regex', value: m.path.value };
    // PathPrefix matches whole segments and ignores a trailing "/" ("/foo/" is "/foo").
    else out.path = { type: 'prefix', value: prefixValue(m.path.value), segments: true };
  }
  if (m.method) out.method = { type: 'exact', value: m.method };
  const headers = firstByName(m.headers ?? [], true);
  if (headers.length > 0) out.headers = headers.map((h) => ({ name: h.name.toLowerCase(), type: h.type === 'Exact' ? 'exact' : 'regex', value: h.value }));
  const query = firstByName(m.queryParams ?? [], false);
  if (query.length > 0) out.queryParams = query.map((q) => ({ name: q.name, type: q.type === 'Exact' ? 'exact' : 'regex', value: q.value }));
  if (port !== undefined) out.port = port;
  return out;
}

/** A PathPrefix value without its trailing "/" ("/" stays "/"). */
function prefixValue(value: string): string {
  return value.length > 1 ? value.replace(/\/+$/, '') : value;
}

// ---------- parents ----------

function acceptParent(
  route: HTTPRoute, pr: ParentReference, registry: Registry, bindingOf: (svc: ServiceResource) => ServiceBinding, waypoints: ReadonlySet<string>,
): { condition: RouteCondition; service?: string; port?: number } {
  const ns = route.metadata.namespace!;
  const kind = pr.kind ?? 'Gateway';
  const group = pr.group ?? GATEWAY_GROUP;
  const refused = (reason: string, message: string) => ({ condition: { type: 'Accepted' as const, status: 'False' as const, reason, message } });
  if (kind === 'Gateway' && group === GATEWAY_GROUP) {
    const gw = `${pr.namespace ?? ns}/${pr.name}`;
    return waypoints.has(gw)
      ? refused('NotAllowedByListeners', `Gateway ${gw} is a waypoint: a waypoint applies the routes attached to the Services bound to it, not routes attached to itself; use parentRefs [{group: "", kind: Service, name: <service>}]`)
      : refused('NoMatchingParent', `Gateway ${gw} is not a waypoint (gatewayClassName istio-waypoint) Strait runs, and Strait has no ingress gateways`);
  }
  if (kind !== 'Service' || group !== '') {
    return refused('NoMatchingParent', `parentRefs of kind ${group ? `${group}/` : ''}${kind} are not supported by Strait; attach the route to a Service (group "", kind Service)`);
  }
  const svcNs = pr.namespace ?? ns;
  const svc = registry.service(`${svcNs}/${pr.name}`);
  if (!svc) return refused('NoMatchingParent', `Service ${svcNs}/${pr.name} does not exist`);
  if (svcNs !== ns) {
    return refused('UnsupportedValue', `a route in namespace ${ns} for Service ${svcNs}/${pr.name} is a consumer route, which Strait's waypoints do not support; put the route in namespace ${svcNs} (a producer route, applied to every caller)`);
  }
  let port = pr.port;
  if (pr.sectionName !== undefined) {
    const named = svc.ports.find((p) => p.name === pr.sectionName);
    if (!named || (port !== undefined && named.port !== port)) {
      return refused('NoMatchingParent', `Service ${svcNs}/${pr.name} has no port named ${JSON.stringify(pr.sectionName)}${port !== undefined ? ` with number ${port}` : ''}`);
    }
    port = named.port;
  }
  if (port !== undefined && !svc.ports.some((p) => p.port === port)) {
    return refused('NoMatchingParent', `Service ${svcNs}/${pr.name} has no port ${port} (ports: ${svc.ports.map((p) => p.port).join(', ')})`);
  }
  const binding = bindingOf(svc);
  if ('notServed' in binding) return refused('NoMatchingParent', binding.notServed);
  return {
    condition: { type: 'Accepted', status: 'True', reason: 'Accepted', message: `applied by waypoint ${binding.waypoint}${port !== undefined ? ` to port ${port}` : ''}` },
    service: serviceKey(svc),
    ...(port !== undefined ? { port } : {}),
  };
}

// ---------- actions ----------

function ruleAction(route: HTTPRoute, rule: HTTPRouteRule, i: number, registry: Registry, refs: Refs, notes: Notes): RouteAction {
  const ns = route.metadata.namespace!;
  const objKey = keyOf('HTTPRoute', route.metadata);
  const path = `spec.rules[${i}]`;
  let requestHeaders: HeaderOps | undefined;
  let responseHeaders: HeaderOps | undefined;
  let redirect: Extract<RouteAction, { kind: 'redirect' }>['redirect'] | undefined;
  let rewrite: Extract<RouteAction, { kind: 'forward' }>['rewrite'];
  const mirrors: MirrorPolicy[] = [];
  let unresolvable: string | undefined;
  const prefixOf = (): string | undefined => {
    const p = rule.matches[0]?.path;
    return p?.type === 'PathPrefix' ? p.value : undefined;
  };
  (rule.filters ?? []).forEach((f, j) => {
    const fPath = `${path}.filters[${j}]`;
    switch (f.type) {
      case 'RequestHeaderModifier': requestHeaders = fromHeaderFilter(f.requestHeaderModifier); break;
      case 'ResponseHeaderModifier': responseHeaders = fromHeaderFilter(f.responseHeaderModifier); break;
      case 'RequestRedirect': {
        const r = f.requestRedirect ?? {};
        redirect = {
          statusCode: r.statusCode ?? 302,
          ...(r.scheme ? { scheme: r.scheme } : {}),
          ...(r.hostname ? { host: r.hostname } : {}),
          ...(r.port !== undefined ? { port: r.port } : {}),
          ...(r.path?.type === 'ReplaceFullPath' ? { fullPath: r.path.replaceFullPath ?? '' } : {}),
          ...(r.path?.type === 'ReplacePrefixMatch' ? { prefix: r.path.replacePrefixMatch ?? '' } : {}),
        };
        break;
      }
      case 'URLRewrite': {
        const r = f.urlRewrite ?? {};
        rewrite = {
          ...(r.path?.type === 'ReplaceFullPath' ? { fullPath: r.path.replaceFullPath ?? '' } : {}),
          ...(r.path?.type === 'ReplacePrefixMatch' ? { prefix: r.path.replacePrefixMatch ?? '' } : {}),
          ...(r.hostname ? { authority: r.hostname } : {}),
        };
        if (r.path?.type === 'ReplacePrefixMatch' && prefixOf() === undefined) rewrite = undefined; // validation rejects this
        break;
      }
      case 'RequestMirror': {
        const m = f.requestMirror!;
        const b = resolveBackendRef(m.backendRef, ns, registry);
        if ('refused' in b) {
          refs.push(b.refused);
          notes.add(objKey, `${fPath}.requestMirror.backendRef`, `${b.refused.message}; this mirror is left out`);
        } else {
          mirrors.push({ backend: { service: b.service, ...(b.port !== undefined ? { port: b.port } : {}) }, percentage: m.percent ?? 100 });
        }
        break;
      }
      case 'ExtensionRef': {
        const e = f.extensionRef!;
        const message = `ExtensionRef filter ${e.group}/${e.kind} ${e.name} is not supported by Strait; requests this rule matches get 500 (Gateway API: a filter that cannot be resolved is never skipped)`;
        refs.push({ reason: 'InvalidKind', message });
        notes.add(objKey, `${fPath}.extensionRef`, message);
        unresolvable = message;
        break;
      }
    }
  });
  if (unresolvable) return { kind: 'fail', status: 500, flag: FLAG_NO_CLUSTER, reason: unresolvable };
  if (redirect) return { kind: 'redirect', redirect, ...(responseHeaders ? { responseHeaders } : {}) };

  const backends: BackendRef[] = [];
  (rule.backendRefs ?? []).forEach((ref, j) => {
    const weight = ref.weight ?? 1;
    const b = resolveBackendRef(ref, ns, registry);
    if ('refused' in b) {
      refs.push(b.refused);
      notes.add(objKey, `${path}.backendRefs[${j}]`, `${b.refused.message}; the requests its weight would get are answered 500`);
      if (weight > 0) backends.push(failedBackend(`${ref.namespace ?? ns}/${ref.name}`, 500, b.refused.message, weight));
      return;
    }
    if (weight === 0) return;
    const out: BackendRef = { service: b.service, weight, ...(b.port !== undefined ? { port: b.port } : {}) };
    (ref.filters ?? []).forEach((f, k) => {
      if (f.type === 'RequestHeaderModifier') {
        const h = fromHeaderFilter(f.requestHeaderModifier);
        if (h) out.requestHeaders = h;
      } else if (f.type === 'ResponseHeaderModifier') {
        const h = fromHeaderFilter(f.responseHeaderModifier);
        if (h) out.responseHeaders = h;
      } else {
        const message = `a ${f.type} filter on a backendRef is not supported by Strait (only RequestHeaderModifier and ResponseHeaderModifier are); move it to the rule's filters`;
        notes.add(objKey, `${path}.backendRefs[${j}].filters[${k}]`, `${message}; the requests this backend would get are answered 500`);
        out.fail = { status: 500, flag: FLAG_NO_CLUSTER, reason: message };
      }
    });
    backends.push(out);
  });
  if (backends.length === 0 || backends.every((b) => b.fail)) {
    const reason = backends.find((b) => b.fail)?.fail?.reason
      ?? ((rule.backendRefs ?? []).length === 0 ? 'the rule has no backendRefs' : 'every backendRef has weight 0');
    return { kind: 'fail', status: 500, flag: FLAG_NO_CLUSTER, reason };
  }
  const action: Extract<RouteAction, { kind: 'forward' }> = { kind: 'forward', backends };
  if (requestHeaders) action.requestHeaders = requestHeaders;
  if (responseHeaders) action.responseHeaders = responseHeaders;
  if (rewrite && Object.keys(rewrite).length > 0) action.rewrite = rewrite;
  if (mirrors.length > 0) action.mirrors = mirrors;
  const t = timeoutMs(rule.timeouts?.request);
  if (t !== undefined) action.timeoutMs = t;
  const perTry = timeoutMs(rule.timeouts?.backendRequest);
  if (perTry !== undefined) action.perTryTimeoutMs = perTry;
  const retry = routeRetry(rule);
  if (retry) action.retry = retry;
  return action;
}

/**
 * Istio's conversion of HTTPRoute `retry`: attempts default 2 (0 disables), retry on connection failures, refused
 * streams, unavailable and cancelled, plus the listed status codes; no `retry` stanza → Istio's default policy.
 */
function routeRetry(rule: HTTPRouteRule): RetryPolicy | undefined {
  if (!rule.retry) return istioDefaultRetry();
  const attempts = rule.retry.attempts ?? 2;
  if (attempts === 0) return undefined;
  const codes = rule.retry.codes ?? [];
  const out: RetryPolicy = {
    retries: attempts,
    retryOn: [...ISTIO_DEFAULT_RETRY_ON.filter((c) => c !== 'retriable-status-codes'), ...(codes.length > 0 ? ['retriable-status-codes'] : [])],
  };
  if (codes.length > 0) out.retriableStatusCodes = [...codes];
  const backoff = timeoutMs(rule.retry.backoff);
  if (backoff !== undefined) out.backoffBaseMs = backoff;
  return out;
}

function fromHeaderFilter(f: HTTPHeaderFilter | undefined): HeaderOps | undefined {
  if (!f) return undefined;
  return headerOps(f.set?.map((h) => [h.name, h.value]), f.add?.map((h) => [h.name, h.value]), f.remove);
}

/** A backendRef to a Service of the route's namespace, or why it cannot be used (reason as Gateway API names it). */
function resolveBackendRef(
  ref: GwBackendRef, routeNs: string, registry: Registry,
): { service: string; port?: number } | { refused: { reason: string; message: string } } {
  const group = ref.group ?? '';
  const kind = ref.kind ?? 'Service';
  const ns = ref.namespace ?? routeNs;
  if (group !== '' || kind !== 'Service') {
    return { refused: { reason: 'InvalidKind', message: `backendRef ${group ? `${group}/` : ''}${kind} ${ns}/${ref.name}: only Services (group "", kind Service) are supported as backends` } };
  }
  if (ns !== routeNs) {
    return { refused: { reason: 'RefNotPermitted', message: `backendRef Service ${ns}/${ref.name} is in another namespace than the route (${routeNs}); Strait does not read ReferenceGrants, so cross-namespace references are refused — put the route in ${ns} or the backend in ${routeNs}` } };
  }
  const svc = registry.service(`${ns}/${ref.name}`);
  if (!svc) return { refused: { reason: 'BackendNotFound', message: `backendRef Service ${ns}/${ref.name} does not exist` } };
  if (ref.port !== undefined && !svc.ports.some((p) => p.port === ref.port)) {
    return { refused: { reason: 'BackendNotFound', message: `backendRef Service ${ns}/${ref.name} has no port ${ref.port} (ports: ${svc.ports.map((p) => p.port).join(', ')})` } };
  }
  return { service: serviceKey(svc), ...(ref.port !== undefined ? { port: ref.port } : {}) };
}
