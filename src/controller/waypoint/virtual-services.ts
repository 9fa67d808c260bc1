/**
 * Istio VirtualServices → route rules per Service, with Istio's semantics:
 * - hosts and destination hosts resolve short names in the VirtualService's namespace ("reviews" in "default" is
 *   reviews.default.svc.cluster.local); a VirtualService with `gateways` that do not include "mesh" does not apply
 *   to mesh traffic;
 * - one VirtualService per host: a host named exactly wins over a wildcard, then the oldest wins; the others are
 *   reported as shadowed (Istio's sidecars behave the same way, merging only at gateways);
 * - http[] in order (never re-sorted); each match is one rule, a route without match matches everything;
 * - a single destination takes all traffic whatever its weight; several split by weight (0 gets nothing);
 * - a destination host that names no Service, or a subset no DestinationRule defines, answers 503 with flag NC for
 *   its share, as Envoy does for a cluster that does not exist;
 * - retries absent → Istio's default policy; attempts 0 → none; retryOn numbers are status codes;
 * - fault and mirror percentages default to 100.
 * Pure.
 */
import type { Destination, HeaderOperations, HTTPMatchRequest, StringMatch, VirtualService, VSHTTPRoute } from '../../common/model/types.js';
import type { BackendRef, HeaderOps, MirrorPolicy, RequestMatch, RetryPolicy, RouteAction, RouteRule, ValueMatch } from '../../common/xds/waypoint-resources.js';
import { parseDurationMs } from '../../common/model/duration.js';
import { GRPC_STATUS_CODES } from '../../common/model/validate-networking.js';
import { ISTIO_DEFAULT_RETRY_ON, failedBackend, istioDefaultRetry, parseRetryOn, timeoutMs, FLAG_NO_CLUSTER } from './route-common.js';
import { byAge, headerOps, keyOf, resolveHost, serviceKey, type Notes, type Registry } from './registry.js';

/** The VirtualService that routes one Service, and those it shadows. */
export interface ServiceVirtualService {
  /** "ns/name" */
  object: string;
  rules: RouteRule[];
  shadowed: { object: string; reason: string }[];
}

/** Subset names a DestinationRule defines for a service key (undefined: no DestinationRule). */
export type SubsetsOf = (service: string) => ReadonlySet<string> | undefined;

const MESH_GATEWAY = 'mesh';

export function compileVirtualServices(
  list: readonly VirtualService[], registry: Registry, served: ReadonlySet<string>, subsetsOf: SubsetsOf, notes: Notes,
): Map<string, ServiceVirtualService> {
  const candidates = new Map<string, { vs: VirtualService; exact: boolean }[]>();
  for (const vs of [...list].sort(byAge)) {
    const ns = vs.metadata.namespace!;
    const objKey = keyOf('VirtualService', vs.metadata);
    if (vs.spec.gateways && vs.spec.gateways.length > 0 && !vs.spec.gateways.includes(MESH_GATEWAY)) {
      notes.unapplied(objKey, 'spec.gateways', `applies only to the gateways ${vs.spec.gateways.join(', ')}, not to mesh traffic, and Strait has no ingress gateways; add "mesh" to spec.gateways to have waypoints apply it`);
      continue;
    }
    if (vs.spec.exportTo && !vs.spec.exportTo.includes('*')) {
      notes.add(objKey, 'spec.exportTo', 'not applied by Strait: the waypoint applies this VirtualService to every caller, whatever their namespace');
    }
    if (vs.spec.tcp && vs.spec.tcp.length > 0) {
      notes.add(objKey, 'spec.tcp', 'not supported by Strait: TCP connections to these hosts go to the service\'s own endpoints');
    }
    vs.spec.hosts.forEach((h, i) => {
      const host = resolveHost(h, ns);
      const covered = registry.servicesCovered(host);
      if (covered.length === 0) notes.unapplied(objKey, `spec.hosts[${i}]`, `${JSON.stringify(h)} (${host}) names no Service in the mesh${registry.hostHint(h)}`);
      for (const s of covered) {
        const k = serviceKey(s);
        if (!served.has(k)) continue;
        const c = candidates.get(k) ?? candidates.set(k, []).get(k)!;
        if (!c.some((x) => x.vs === vs)) c.push({ vs, exact: !host.includes('*') });
      }
    });
  }
  const compiled = new Map<VirtualService, RouteRule[]>();
  const out = new Map<string, ServiceVirtualService>();
  for (const [svc, list] of candidates) {
    list.sort((a, b) => Number(b.exact) - Number(a.exact) || byAge(a.vs, b.vs));
    const winner = list[0]!.vs;
    const winnerName = `${winner.metadata.namespace}/${winner.metadata.name}`;
    let rules = compiled.get(winner);
    if (!rules) compiled.set(winner, (rules = compileRules(winner, registry, subsetsOf, notes)));
    const shadowed = list.slice(1).map(({ vs }) => {
      const reason = `VirtualService ${winnerName} also routes ${svc} and wins (${list[0]!.exact && !list.find((x) => x.vs === vs)!.exact ? 'it names the host exactly' : 'it is older'}); Istio applies one VirtualService per host to mesh traffic — merge them`;
      notes.unapplied(keyOf('VirtualService', vs.metadata), 'spec.hosts', `shadowed for Service ${svc}: ${reason}`);
      return { object: `${vs.metadata.namespace}/${vs.metadata.name}`, reason };
    });
    out.set(svc, { object: winnerName, rules, shadowed });
  }
  return out;
}

function compileRules(vs: VirtualService, registry: Registry, subsetsOf: SubsetsOf, notes: Notes): RouteRule[] {
  const ns = vs.metadata.namespace!;
  const objKey = keyOf('VirtualService', vs.metadata);
  const rules: RouteRule[] = [];
  (vs.spec.http ?? []).forEach((http, i) => {
    const base = `VirtualService/${ns}/${vs.metadata.name}/http[${i}]`;
    const path = `spec.http[${i}]`;
    const matches = http.match && http.match.length > 0 ? http.match : [undefined];
    matches.forEach((m, j) => {
      const unsupported = m ? unsupportedConditions(m) : [];
      if (unsupported.length > 0) {
        notes.add(objKey, `${path}.match[${j}]`, `uses ${unsupported.join(', ')}, which a waypoint cannot check (it sees requests for a service, not which gateway or which source workload labels sent them); this match is left out, so requests it would match fall through to the next rules`);
        return;
      }
      const action = routeAction(http, m, vs, i, registry, subsetsOf, notes);
      rules.push({ name: matches.length > 1 ? `${base}/match[${j}]` : base, match: m ? requestMatch(m, objKey, `${path}.match[${j}]`, notes) : {}, action });
    });
  });
  return rules;
}

function unsupportedConditions(m: HTTPMatchRequest): string[] {
  const out: string[] = [];
  if (m.sourceLabels && Object.keys(m.sourceLabels).length > 0) out.push('sourceLabels');
  if (m.sourceNamespace) out.push('sourceNamespace');
  if (m.gateways && m.gateways.length > 0) out.push('gateways');
  if (m.scheme) out.push('scheme');
  return out;
}

function valueMatch(s: StringMatch): ValueMatch {
  if (s.exact !== undefined) return { type: 'exact', value: s.exact };
  if (s.prefix !== undefined) return { type: 'prefix', value: s.prefix };
  if (s.regex !== undefined) return { type: 'regex', value: s.regex };
  return { type: 'present' };
}

/** Istio ignores these keys in `headers`: they name pseudo-headers matched by their own fields. */
const PSEUDO_HEADER_KEYS = new Set(['uri', 'scheme', 'method', 'authority']);

function requestMatch(m: HTTPMatchRequest, objKey: string, path: string, notes: Notes): RequestMatch {
  const out: RequestMatch = {};
  if (m.uri) {
    const v = valueMatch(m.uri) as { type: 'exact' | 'prefix' | 'regex'; value: string };
    out.path = { type: v.type, value: v.value };
    // Istio: case is ignored only for exact and prefix URI matches.
    if (m.ignoreUriCase && v.type !== 'regex') out.path.ignoreCase = true;
  }
  if (m.method) out.method = valueMatch(m.method);
  if (m.authority) out.authority = valueMatch(m.authority);
  const headers: RequestMatch['headers'] = [];
  const addHeaders = (map: Record<string, StringMatch> | undefined, invert: boolean, field: string) => {
    for (const [name, sm] of Object.entries(map ?? {})) {
      if (PSEUDO_HEADER_KEYS.has(name.toLowerCase())) {
        notes.add(objKey, `${path}.${field}[${name}]`, `ignored, as Istio ignores it: match the ${name} with the ${name === 'uri' ? 'uri' : name} field of the match instead`);
        continue;
      }
      headers.push({ name: name.toLowerCase(), ...valueMatch(sm), ...(invert ? { invert: true } : {}) });
    }
  };
  addHeaders(m.headers, false, 'headers');
  addHeaders(m.withoutHeaders, true, 'withoutHeaders');
  if (headers.length > 0) out.headers = headers;
  const query = Object.entries(m.queryParams ?? {}).map(([name, sm]) => ({ name, ...valueMatch(sm) }));
  if (query.length > 0) out.queryParams = query;
  if (m.port !== undefined) out.port = m.port;
  return out;
}

// ---------- actions ----------

function routeAction(
  http: VSHTTPRoute, m: HTTPMatchRequest | undefined, vs: VirtualService, i: number, registry: Registry, subsetsOf: SubsetsOf, notes: Notes,
): RouteAction {
  const ns = vs.metadata.namespace!;
  const objKey = keyOf('VirtualService', vs.metadata);
  const path = `spec.http[${i}]`;
  const requestHeaders = fromOps(http.headers?.request);
  const responseHeaders = fromOps(http.headers?.response);
  if (http.unsupportedAction) {
    const reason = `${http.unsupportedAction} is not supported by Strait; requests this rule matches get 500`;
    notes.add(objKey, `${path}.${http.unsupportedAction}`, reason);
    return { kind: 'fail', status: 500, flag: FLAG_NO_CLUSTER, reason };
  }
  if (http.redirect) {
    const r = http.redirect;
    return {
      kind: 'redirect',
      redirect: {
        statusCode: r.redirectCode ?? 301,
        ...(r.scheme ? { scheme: r.scheme } : {}),
        ...(r.authority ? { host: r.authority } : {}),
        ...(r.port !== undefined ? { port: r.port } : {}),
        ...(r.uri !== undefined ? { fullPath: r.uri } : {}),
      },
      ...(responseHeaders ? { responseHeaders } : {}),
    };
  }
  const dests = http.route ?? [];
  const single = dests.length === 1;
  const backends: BackendRef[] = [];
  dests.forEach((d, j) => {
    const weight = single ? 1 : d.weight ?? 0;
    if (weight === 0) return;
    const b = destination(d.destination, ns, registry, subsetsOf, weight);
    if (b.fail) notes.add(objKey, `${path}.route[${j}].destination`, `${b.fail.reason}; the requests its weight would get are answered 503 (flag NC)`);
    const rq = fromOps(d.headers?.request);
    const rs = fromOps(d.headers?.response);
    if (rq) b.requestHeaders = rq;
    if (rs) b.responseHeaders = rs;
    backends.push(b);
  });
  if (backends.length === 0) {
    return { kind: 'fail', status: 500, flag: FLAG_NO_CLUSTER, reason: dests.length === 0 ? 'the rule has no route' : 'no destination of the rule has a weight' };
  }
  if (backends.every((b) => b.fail)) return { kind: 'fail', status: 503, flag: FLAG_NO_CLUSTER, reason: backends[0]!.fail!.reason };
  const action: Extract<RouteAction, { kind: 'forward' }> = { kind: 'forward', backends };
  if (requestHeaders) action.requestHeaders = requestHeaders;
  if (responseHeaders) action.responseHeaders = responseHeaders;
  if (http.rewrite && (http.rewrite.uri !== undefined || http.rewrite.authority !== undefined)) {
    // Istio: a rewrite replaces the matched prefix when the rule matched by prefix, else the whole path.
    action.rewrite = {
      ...(http.rewrite.uri !== undefined ? (m?.uri?.prefix !== undefined ? { prefix: http.rewrite.uri } : { fullPath: http.rewrite.uri }) : {}),
      ...(http.rewrite.authority !== undefined ? { authority: http.rewrite.authority } : {}),
    };
  }
  const mirrors = mirrorsOf(http, ns, registry, subsetsOf, objKey, path, notes);
  if (mirrors.length > 0) action.mirrors = mirrors;
  const t = timeoutMs(http.timeout);
  if (t !== undefined) action.timeoutMs = t;
  const perTry = timeoutMs(http.retries?.perTryTimeout);
  if (perTry !== undefined && (http.retries?.attempts ?? 0) > 0) action.perTryTimeoutMs = perTry;
  const retry = retryPolicy(http);
  if (retry) action.retry = retry;
  if (http.fault) {
    const f: NonNullable<typeof action.fault> = {};
    if (http.fault.delay) f.delay = { percentage: http.fault.delay.percentage?.value ?? 100, delayMs: Math.round(parseDurationMs(http.fault.delay.fixedDelay) ?? 0) };
    if (http.fault.abort) {
      const a = http.fault.abort;
      f.abort = {
        percentage: a.percentage?.value ?? 100,
        ...(a.httpStatus ? { httpStatus: a.httpStatus } : {}),
        ...(a.grpcStatus !== undefined ? { grpcStatus: GRPC_STATUS_CODES[a.grpcStatus] ?? 2 } : {}),
      };
    }
    action.fault = f;
  }
  return action;
}

/** Istio's ConvertPolicy: no stanza → the default policy; attempts 0 → none; retryOn absent → the default conditions. */
function retryPolicy(http: VSHTTPRoute): RetryPolicy | undefined {
  const r = http.retries;
  if (!r) return istioDefaultRetry();
  if (r.attempts <= 0) return undefined;
  const parsed = r.retryOn ? parseRetryOn(r.retryOn) : { retryOn: [...ISTIO_DEFAULT_RETRY_ON], codes: [] };
  const out: RetryPolicy = { retries: r.attempts, retryOn: parsed.retryOn };
  if (parsed.codes.length > 0) out.retriableStatusCodes = parsed.codes;
  const backoff = timeoutMs(r.backoff);
  if (backoff !== undefined) out.backoffBaseMs = backoff;
  return out;
}

/** A destination as a backend; `fail` set when its host or subset does not exist (Envoy: cluster not found, 503 NC). */
function destination(d: Destination, ns: string, registry: Registry, subsetsOf: SubsetsOf, weight: number): BackendRef {
  const host = resolveHost(d.host, ns);
  const svc = registry.serviceByHost(host);
  if (!svc) return failedBackend(host, 503, `destination host ${JSON.stringify(d.host)} (${host}) names no Service in the mesh${registry.hostHint(d.host)}`, weight, d.port?.number);
  const key = serviceKey(svc);
  if (d.port && !svc.ports.some((p) => p.port === d.port!.number)) {
    return failedBackend(key, 503, `Service ${key} has no port ${d.port.number} (ports: ${svc.ports.map((p) => p.port).join(', ')})`, weight, d.port.number);
  }
  // Istio: a service with a single port needs no port in the destination.
  const port = d.port?.number ?? (svc.ports.length === 1 ? svc.ports[0]!.port : undefined);
  const out: BackendRef = { service: key, weight, ...(port !== undefined ? { port } : {}) };
  if (d.subset !== undefined) {
    out.subset = d.subset;
    const subsets = subsetsOf(key);
    if (!subsets?.has(d.subset)) {
      out.fail = {
        status: 503, flag: FLAG_NO_CLUSTER,
        reason: subsets ? `subset ${d.subset} of ${key} is not defined by its DestinationRule (subsets: ${[...subsets].join(', ') || 'none'})` : `subset ${d.subset} of ${key} is not defined: no DestinationRule applies to ${key}`,
      };
    }
  }
  return out;
}

function mirrorsOf(http: VSHTTPRoute, ns: string, registry: Registry, subsetsOf: SubsetsOf, objKey: string, path: string, notes: Notes): MirrorPolicy[] {
  const list: { d: Destination; pct: number; at: string }[] = [];
  if (http.mirror) list.push({ d: http.mirror, pct: http.mirrorPercentage?.value ?? 100, at: `${path}.mirror` });
  http.mirrors?.forEach((m, k) => list.push({ d: m.destination, pct: m.percentage?.value ?? 100, at: `${path}.mirrors[${k}].destination` }));
  const out: MirrorPolicy[] = [];
  for (const { d, pct, at } of list) {
    const b = destination(d, ns, registry, subsetsOf, 1);
    if (b.fail) {
      notes.add(objKey, at, `${b.fail.reason}; this mirror is left out`);
      continue;
    }
    const { weight: _w, ...backend } = b;
    out.push({ backend, percentage: pct });
  }
  return out;
}

function fromOps(o: HeaderOperations | undefined): HeaderOps | undefined {
  if (!o) return undefined;
  return headerOps(Object.entries(o.set ?? {}), Object.entries(o.add ?? {}), o.remove);
}
