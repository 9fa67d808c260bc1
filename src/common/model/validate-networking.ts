/** networking.istio.io kinds: VirtualService, DestinationRule. */
import type {
  ConnectionPoolSettings,
  Destination,
  DestinationRule,
  HeaderOperations,
  HTTPFaultInjection,
  HTTPMatchRequest,
  HTTPRetry,
  HTTPRouteDestination,
  ObjectMeta,
  OutlierDetection,
  StringMatch,
  TrafficPolicy,
  VirtualService,
  VSHTTPRoute,
} from './types.js';
import {
  at,
  bool,
  compact,
  describe,
  duration,
  int,
  labels,
  list,
  mapOf,
  nonEmpty,
  nonEmptyList,
  num,
  oneOf,
  port,
  str,
  isMapping,
  stringMap,
  strList,
  struct,
  uniqueIn,
  type Ctx,
  type Raw,
} from './fields.js';
import { DNS1123_LABEL_TEXT, isDns1123Label, regexError } from './formats.js';

// ---------- shared ----------

/** A service host: a name, possibly with a leading wildcard ("*.example.com"). */
function host(ctx: Ctx, v: unknown, path: string, req?: boolean | string): string | undefined {
  const h = nonEmpty(ctx, v, path, req);
  if (h !== undefined && h.includes('*') && !(h.startsWith('*') && h.indexOf('*', 1) < 0)) {
    ctx.error(path, `${describe(h)} has "*" in the wrong place; a host may only start with it, as in "*" or "*.example.com"`);
    return undefined;
  }
  return h;
}

function exportTo(ctx: Ctx, v: unknown): string[] | undefined {
  return strList(ctx, v, 'spec.exportTo');
}

function destination(ctx: Ctx, v: unknown, path: string): Destination | undefined {
  const d = struct(ctx, v, path, { known: ['host', 'subset', 'port'] }, true);
  if (!d) return undefined;
  const p = struct(ctx, d['port'], at(path, 'port'), { known: ['number'] });
  const number = p && port(ctx, p['number'], at(path, 'port.number'), true);
  return compact({
    host: host(ctx, d['host'], at(path, 'host'), 'the destination service, e.g. "reviews" or "reviews.default.svc.cluster.local"') ?? '',
    subset: nonEmpty(ctx, d['subset'], at(path, 'subset')),
    port: number === undefined ? undefined : { number },
  });
}

function headerOperations(ctx: Ctx, v: unknown, path: string): HeaderOperations | undefined {
  const h = struct(ctx, v, path, { known: ['set', 'add', 'remove'] });
  if (!h) return undefined;
  return compact({
    set: stringMap(ctx, h['set'], at(path, 'set')),
    add: stringMap(ctx, h['add'], at(path, 'add')),
    remove: strList(ctx, h['remove'], at(path, 'remove')),
  });
}

function headers(ctx: Ctx, v: unknown, path: string): { request?: HeaderOperations; response?: HeaderOperations } | undefined {
  const h = struct(ctx, v, path, { known: ['request', 'response'] });
  if (!h) return undefined;
  return compact({
    request: headerOperations(ctx, h['request'], at(path, 'request')),
    response: headerOperations(ctx, h['response'], at(path, 'response')),
  });
}

// ---------- VirtualService ----------

export function validateVirtualService(ctx: Ctx, raw: Raw, meta: ObjectMeta, apiVersion: string): VirtualService {
  const spec = struct(ctx, raw['spec'], 'spec', { known: ['hosts', 'gateways', 'http', 'tcp', 'exportTo'], unsupported: ['tls'] }, true) ?? {};
  const hosts = nonEmptyList(ctx, spec['hosts'], 'spec.hosts', (v, p) => host(ctx, v, p, true), 'the hosts this VirtualService routes, e.g. ["reviews"]');
  return {
    apiVersion: apiVersion as VirtualService['apiVersion'],
    kind: 'VirtualService',
    metadata: meta,
    spec: compact({
      hosts: hosts ?? [],
      gateways: strList(ctx, spec['gateways'], 'spec.gateways'),
      http: list(ctx, spec['http'], 'spec.http', (v, p) => vsHttpRoute(ctx, v, p)),
      tcp: list(ctx, spec['tcp'], 'spec.tcp', (v, p) => vsTcpRoute(ctx, v, p)),
      exportTo: exportTo(ctx, spec['exportTo']),
    }),
  };
}

const VS_HTTP_ROUTE = {
  known: ['name', 'match', 'route', 'redirect', 'rewrite', 'timeout', 'retries', 'fault', 'headers', 'mirror', 'mirrors', 'mirrorPercentage', 'mirrorPercent'],
  unsupported: ['corsPolicy', 'delegate', 'directResponse'],
};

function vsHttpRoute(ctx: Ctx, v: unknown, path: string): VSHTTPRoute | undefined {
  const r = struct(ctx, v, path, VS_HTTP_ROUTE, true);
  if (!r) return undefined;
  const hasRoute = r['route'] !== undefined && r['route'] !== null;
  const hasRedirect = r['redirect'] !== undefined && r['redirect'] !== null;
  if (hasRoute && hasRedirect) ctx.error(at(path, 'redirect'), 'cannot be combined with route; a rule either routes or redirects');
  const unsupportedAction: VSHTTPRoute['unsupportedAction'] = hasRoute || hasRedirect ? undefined : r['directResponse'] !== undefined ? 'directResponse' : r['delegate'] !== undefined ? 'delegate' : undefined;
  if (!hasRoute && !hasRedirect && !unsupportedAction) ctx.error(path, 'needs a route or a redirect');
  if (hasRedirect && r['rewrite'] !== undefined && r['rewrite'] !== null) ctx.error(at(path, 'rewrite'), 'cannot be combined with redirect');
  const route = list(ctx, r['route'], at(path, 'route'), (x, p) => vsRouteDestination(ctx, x, p));
  checkWeights(ctx, r['route'], at(path, 'route'));
  if (r['mirrorPercent'] !== undefined && r['mirrorPercentage'] !== undefined) ctx.error(at(path, 'mirrorPercent'), 'cannot be combined with mirrorPercentage; use mirrorPercentage');
  else if (r['mirrorPercent'] !== undefined) ctx.warn(at(path, 'mirrorPercent'), 'deprecated in Istio; use mirrorPercentage: {value: N}');
  if (r['mirrors'] !== undefined && r['mirror'] !== undefined) ctx.error(at(path, 'mirrors'), 'cannot be combined with mirror; list every mirror under mirrors');
  const legacyPercent = int(ctx, r['mirrorPercent'], at(path, 'mirrorPercent'), { min: 0, max: 100 });
  return compact({
    name: str(ctx, r['name'], at(path, 'name')),
    match: list(ctx, r['match'], at(path, 'match'), (x, p) => vsMatch(ctx, x, p)),
    route,
    redirect: vsRedirect(ctx, r['redirect'], at(path, 'redirect')),
    rewrite: vsRewrite(ctx, r['rewrite'], at(path, 'rewrite')),
    timeout: duration(ctx, r['timeout'], at(path, 'timeout'), { allowZero: true }),
    retries: vsRetries(ctx, r['retries'], at(path, 'retries')),
    fault: vsFault(ctx, r['fault'], at(path, 'fault')),
    headers: headers(ctx, r['headers'], at(path, 'headers')),
    mirror: r['mirror'] === undefined || r['mirror'] === null ? undefined : destination(ctx, r['mirror'], at(path, 'mirror')),
    mirrorPercentage: percentage(ctx, r['mirrorPercentage'], at(path, 'mirrorPercentage')) ?? (legacyPercent === undefined ? undefined : { value: legacyPercent }),
    mirrors: list(ctx, r['mirrors'], at(path, 'mirrors'), (x, p) => {
      const m = struct(ctx, x, p, { known: ['destination', 'percentage'] }, true);
      if (!m) return undefined;
      return compact({ destination: destination(ctx, m['destination'], at(p, 'destination')) ?? { host: '' }, percentage: percentage(ctx, m['percentage'], at(p, 'percentage')) });
    }),
    unsupportedAction,
  });
}

/** Istio rejects weights that do not add up to 100 when a rule has several destinations; Strait splits in proportion. */
function checkWeights(ctx: Ctx, rawRoute: unknown, path: string): void {
  if (!Array.isArray(rawRoute) || rawRoute.length < 2) return;
  const total = rawRoute.reduce((sum: number, d: unknown) => sum + (isMapping(d) && typeof d['weight'] === 'number' ? d['weight'] : 0), 0);
  if (total !== 100) {
    ctx.warn(path, total === 0
      ? 'no destination has a weight, so this rule sends nothing anywhere (every request gets 500); give the destinations weights adding up to 100'
      : `weights add up to ${total}, not 100; Istio rejects this, Strait splits traffic in proportion to the weights`);
  }
}

/** `emptyMeansPresent`: header matches, where `{}` checks only that the header is there (Istio's rule). */
function stringMatch(ctx: Ctx, v: unknown, path: string, emptyMeansPresent = false): StringMatch | undefined {
  const m = struct(ctx, v, path, { known: ['exact', 'prefix', 'regex'] }, !emptyMeansPresent);
  if (!m) return emptyMeansPresent && (v === null || v === undefined) ? {} : undefined;
  const set = (['exact', 'prefix', 'regex'] as const).filter((k) => m[k] !== undefined && m[k] !== null);
  if (set.length === 0 && emptyMeansPresent) return {};
  if (set.length !== 1) {
    ctx.error(path, `set exactly one of exact, prefix or regex${set.length ? ` (found ${set.join(' and ')})` : ''}`);
    return undefined;
  }
  const regex = str(ctx, m['regex'], at(path, 'regex'));
  const err = regex === undefined ? undefined : regexError(regex);
  if (err) ctx.error(at(path, 'regex'), `${describe(regex)} is not a valid regular expression: ${err}`);
  return compact({ exact: str(ctx, m['exact'], at(path, 'exact')), prefix: str(ctx, m['prefix'], at(path, 'prefix')), regex });
}

const VS_MATCH = {
  known: ['name', 'uri', 'method', 'authority', 'headers', 'queryParams', 'port', 'ignoreUriCase', 'withoutHeaders', 'scheme', 'sourceLabels', 'gateways', 'sourceNamespace'],
  silent: ['statPrefix'],
};

function vsMatch(ctx: Ctx, v: unknown, path: string): HTTPMatchRequest | undefined {
  const m = struct(ctx, v, path, VS_MATCH, true);
  if (!m) return undefined;
  const sm = (key: string): StringMatch | undefined =>
    m[key] === undefined || m[key] === null ? undefined : stringMatch(ctx, m[key], at(path, key));
  return compact({
    name: str(ctx, m['name'], at(path, 'name')),
    uri: sm('uri'),
    method: sm('method'),
    authority: sm('authority'),
    headers: mapOf(ctx, m['headers'], at(path, 'headers'), (x, p) => stringMatch(ctx, x, p, true)),
    queryParams: mapOf(ctx, m['queryParams'], at(path, 'queryParams'), (x, p) => stringMatch(ctx, x, p)),
    port: port(ctx, m['port'], at(path, 'port')),
    ignoreUriCase: bool(ctx, m['ignoreUriCase'], at(path, 'ignoreUriCase')),
    withoutHeaders: mapOf(ctx, m['withoutHeaders'], at(path, 'withoutHeaders'), (x, p) => stringMatch(ctx, x, p, true)),
    scheme: sm('scheme'),
    sourceLabels: labels(ctx, m['sourceLabels'], at(path, 'sourceLabels')),
    gateways: strList(ctx, m['gateways'], at(path, 'gateways')),
    sourceNamespace: str(ctx, m['sourceNamespace'], at(path, 'sourceNamespace')),
  });
}

function vsRouteDestination(ctx: Ctx, v: unknown, path: string): HTTPRouteDestination | undefined {
  const d = struct(ctx, v, path, { known: ['destination', 'weight', 'headers'] }, true);
  if (!d) return undefined;
  return compact({
    destination: destination(ctx, d['destination'], at(path, 'destination')) ?? { host: '' },
    weight: int(ctx, d['weight'], at(path, 'weight'), { min: 0, max: 100 }),
    headers: headers(ctx, d['headers'], at(path, 'headers')),
  });
}

function vsRedirect(ctx: Ctx, v: unknown, path: string): VSHTTPRoute['redirect'] {
  const r = struct(ctx, v, path, { known: ['uri', 'authority', 'redirectCode', 'scheme', 'port'], unsupported: ['derivePort'] });
  if (!r) return undefined;
  return compact({
    uri: str(ctx, r['uri'], at(path, 'uri')),
    authority: str(ctx, r['authority'], at(path, 'authority')),
    redirectCode: int(ctx, r['redirectCode'], at(path, 'redirectCode'), { min: 300, max: 399 }),
    scheme: nonEmpty(ctx, r['scheme'], at(path, 'scheme')),
    port: port(ctx, r['port'], at(path, 'port')),
  });
}

function vsRewrite(ctx: Ctx, v: unknown, path: string): VSHTTPRoute['rewrite'] {
  const r = struct(ctx, v, path, { known: ['uri', 'authority'], unsupported: ['uriRegexRewrite'] });
  if (!r) return undefined;
  return compact({ uri: str(ctx, r['uri'], at(path, 'uri')), authority: str(ctx, r['authority'], at(path, 'authority')) });
}

/** Envoy's retry-on conditions that Istio accepts, besides HTTP status codes. */
const RETRY_ON = new Set([
  '5xx',
  'gateway-error',
  'reset',
  'reset-before-request',
  'connect-failure',
  'envoy-ratelimited',
  'retriable-4xx',
  'refused-stream',
  'retriable-status-codes',
  'retriable-headers',
  'http3-post-connect-failure',
  'cancelled',
  'deadline-exceeded',
  'internal',
  'resource-exhausted',
  'unavailable',
]);

function vsRetries(ctx: Ctx, v: unknown, path: string): HTTPRetry | undefined {
  const r = struct(ctx, v, path, { known: ['attempts', 'perTryTimeout', 'retryOn', 'backoff'], unsupported: ['retryRemoteLocalities', 'retryIgnorePreviousHosts'] });
  if (!r) return undefined;
  const attempts = int(ctx, r['attempts'], at(path, 'attempts'), { min: 0 });
  if (r['attempts'] === undefined) ctx.warn(at(path, 'attempts'), 'not set, so no retries are made; set attempts to enable retries');
  const retryOn = str(ctx, r['retryOn'], at(path, 'retryOn'));
  for (const cond of retryOn?.split(',').map((c) => c.trim()) ?? []) {
    const isStatus = /^\d{3}$/.test(cond) && Number(cond) >= 100 && Number(cond) <= 599;
    if (!RETRY_ON.has(cond) && !isStatus) {
      ctx.error(at(path, 'retryOn'), `${describe(cond)} is not a retry condition; use a comma-separated list of e.g. 5xx, gateway-error, reset, connect-failure, retriable-4xx, refused-stream or HTTP status codes`);
    }
  }
  return compact({
    attempts: attempts ?? 0,
    perTryTimeout: duration(ctx, r['perTryTimeout'], at(path, 'perTryTimeout')),
    retryOn,
    backoff: duration(ctx, r['backoff'], at(path, 'backoff')),
  });
}

function percentage(ctx: Ctx, v: unknown, path: string): { value: number } | undefined {
  const p = struct(ctx, v, path, { known: ['value'] });
  if (!p) return undefined;
  return { value: num(ctx, p['value'], at(path, 'value'), { min: 0, max: 100 }, true) ?? 0 };
}

function vsFault(ctx: Ctx, v: unknown, path: string): HTTPFaultInjection | undefined {
  const f = struct(ctx, v, path, { known: ['delay', 'abort'] });
  if (!f) return undefined;
  const dPath = at(path, 'delay');
  const d = struct(ctx, f['delay'], dPath, { known: ['percentage', 'fixedDelay'], unsupported: ['percent', 'exponentialDelay'] });
  const aPath = at(path, 'abort');
  const a = struct(ctx, f['abort'], aPath, { known: ['percentage', 'httpStatus', 'grpcStatus'], unsupported: ['http2Error'] });
  const grpcStatus = a && a['grpcStatus'] !== undefined ? grpcStatusName(ctx, a['grpcStatus'], at(aPath, 'grpcStatus')) : undefined;
  return compact({
    delay: d && compact({
      percentage: percentage(ctx, d['percentage'], at(dPath, 'percentage')),
      fixedDelay: duration(ctx, d['fixedDelay'], at(dPath, 'fixedDelay'), {}, true) ?? '',
    }),
    abort: a && compact({
      percentage: percentage(ctx, a['percentage'], at(aPath, 'percentage')),
      // One of httpStatus or grpcStatus (Istio's oneof error_type).
      httpStatus: int(ctx, a['httpStatus'], at(aPath, 'httpStatus'), { min: 200, max: 599 }, a['grpcStatus'] === undefined),
      grpcStatus,
    }),
  });
}

/** gRPC status names Istio's fault abort takes ("UNAVAILABLE"), as numbered by gRPC. */
export const GRPC_STATUS_CODES: Readonly<Record<string, number>> = {
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9, ABORTED: 10, OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, DATA_LOSS: 15, UNAUTHENTICATED: 16,
};

function grpcStatusName(ctx: Ctx, v: unknown, path: string): string | undefined {
  if (typeof v === 'string' && v in GRPC_STATUS_CODES) return v;
  ctx.error(path, `${JSON.stringify(v)} is not a gRPC status name (one of ${Object.keys(GRPC_STATUS_CODES).join(', ')})`);
  return undefined;
}

function vsTcpRoute(ctx: Ctx, v: unknown, path: string): NonNullable<VirtualService['spec']['tcp']>[number] | undefined {
  const r = struct(ctx, v, path, { known: ['match', 'route'] }, true);
  if (!r) return undefined;
  return compact({
    match: list(ctx, r['match'], at(path, 'match'), (x, p) => {
      const m = struct(ctx, x, p, { known: ['port'], unsupported: ['destinationSubnets', 'sourceLabels', 'gateways', 'sourceNamespace'] }, true);
      return m ? compact({ port: port(ctx, m['port'], at(p, 'port')) }) : undefined;
    }),
    route: list(ctx, r['route'], at(path, 'route'), (x, p) => {
      const d = struct(ctx, x, p, { known: ['destination', 'weight'] }, true);
      if (!d) return undefined;
      return compact({
        destination: destination(ctx, d['destination'], at(p, 'destination')) ?? { host: '' },
        weight: int(ctx, d['weight'], at(p, 'weight'), { min: 0, max: 100 }),
      });
    }),
  });
}

// ---------- DestinationRule ----------

export function validateDestinationRule(ctx: Ctx, raw: Raw, meta: ObjectMeta, apiVersion: string): DestinationRule {
  const spec = struct(ctx, raw['spec'], 'spec', { known: ['host', 'trafficPolicy', 'subsets', 'exportTo'], unsupported: ['workloadSelector'] }, true) ?? {};
  const subsets = list(ctx, spec['subsets'], 'spec.subsets', (v, p) => subset(ctx, v, p));
  uniqueIn(ctx, spec['subsets'], 'spec.subsets', 'name');
  return {
    apiVersion: apiVersion as DestinationRule['apiVersion'],
    kind: 'DestinationRule',
    metadata: meta,
    spec: compact({
      host: host(ctx, spec['host'], 'spec.host', 'the service this rule applies to, e.g. "reviews.default.svc.cluster.local"') ?? '',
      trafficPolicy: trafficPolicy(ctx, spec['trafficPolicy'], 'spec.trafficPolicy'),
      subsets,
      exportTo: exportTo(ctx, spec['exportTo']),
    }),
  };
}

function subset(ctx: Ctx, v: unknown, path: string): NonNullable<DestinationRule['spec']['subsets']>[number] | undefined {
  const s = struct(ctx, v, path, { known: ['name', 'labels', 'trafficPolicy'] }, true);
  if (!s) return undefined;
  const name = nonEmpty(ctx, s['name'], at(path, 'name'), true);
  if (name !== undefined && !isDns1123Label(name)) ctx.error(at(path, 'name'), `${describe(name)} is not ${DNS1123_LABEL_TEXT}`);
  return compact({
    name: name ?? '',
    labels: labels(ctx, s['labels'], at(path, 'labels')),
    trafficPolicy: trafficPolicy(ctx, s['trafficPolicy'], at(path, 'trafficPolicy')),
  });
}

const LB_SIMPLE = ['UNSPECIFIED', 'ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM', 'PASSTHROUGH', 'LEAST_CONN'] as const;

function trafficPolicy(ctx: Ctx, v: unknown, path: string): TrafficPolicy | undefined {
  const t = struct(ctx, v, path, {
    known: ['connectionPool', 'loadBalancer', 'outlierDetection'],
    unsupported: ['tls', 'portLevelSettings', 'tunnel', 'proxyProtocol', 'retryBudget'],
  });
  if (!t) return undefined;
  const lbPath = at(path, 'loadBalancer');
  const lb = struct(ctx, t['loadBalancer'], lbPath, {
    known: ['simple'],
    unsupported: ['consistentHash', 'localityLbSetting', 'warmupDurationSecs', 'warmup'],
  });
  return compact({
    connectionPool: connectionPool(ctx, t['connectionPool'], at(path, 'connectionPool')),
    loadBalancer: lb && compact({ simple: oneOf(ctx, lb['simple'], at(lbPath, 'simple'), LB_SIMPLE) }),
    outlierDetection: outlierDetection(ctx, t['outlierDetection'], at(path, 'outlierDetection')),
  });
}

/** Limits must be at least 1 (omit a limit to leave it unlimited); counters of retries/requests may be 0. */
const POSITIVE = { min: 1 };
const NON_NEGATIVE = { min: 0 };

function connectionPool(ctx: Ctx, v: unknown, path: string): ConnectionPoolSettings | undefined {
  const c = struct(ctx, v, path, { known: ['tcp', 'http'] });
  if (!c) return undefined;
  const tPath = at(path, 'tcp');
  const t = struct(ctx, c['tcp'], tPath, {
    known: ['maxConnections', 'connectTimeout'],
    unsupported: ['tcpKeepalive', 'maxConnectionDuration', 'idleTimeout'],
  });
  const hPath = at(path, 'http');
  const h = struct(ctx, c['http'], hPath, {
    known: ['http1MaxPendingRequests', 'http2MaxRequests', 'maxRequestsPerConnection', 'maxRetries', 'idleTimeout'],
    unsupported: ['h2UpgradePolicy', 'useClientProtocol', 'maxConcurrentStreams'],
  });
  return compact({
    tcp: t && compact({
      maxConnections: int(ctx, t['maxConnections'], at(tPath, 'maxConnections'), NON_NEGATIVE),
      connectTimeout: duration(ctx, t['connectTimeout'], at(tPath, 'connectTimeout')),
    }),
    http: h && compact({
      http1MaxPendingRequests: int(ctx, h['http1MaxPendingRequests'], at(hPath, 'http1MaxPendingRequests'), NON_NEGATIVE),
      http2MaxRequests: int(ctx, h['http2MaxRequests'], at(hPath, 'http2MaxRequests'), NON_NEGATIVE),
      maxRequestsPerConnection: int(ctx, h['maxRequestsPerConnection'], at(hPath, 'maxRequestsPerConnection'), NON_NEGATIVE),
      maxRetries: int(ctx, h['maxRetries'], at(hPath, 'maxRetries'), NON_NEGATIVE),
      idleTimeout: duration(ctx, h['idleTimeout'], at(hPath, 'idleTimeout')),
    }),
  });
}

function outlierDetection(ctx: Ctx, v: unknown, path: string): OutlierDetection | undefined {
  const o = struct(ctx, v, path, {
    known: ['consecutive5xxErrors', 'consecutiveGatewayErrors', 'interval', 'baseEjectionTime', 'maxEjectionPercent'],
    unsupported: ['consecutiveLocalOriginFailures', 'splitExternalLocalOriginErrors', 'minHealthPercent', 'consecutiveErrors'],
  });
  if (!o) return undefined;
  return compact({
    consecutive5xxErrors: int(ctx, o['consecutive5xxErrors'], at(path, 'consecutive5xxErrors'), NON_NEGATIVE),
    consecutiveGatewayErrors: int(ctx, o['consecutiveGatewayErrors'], at(path, 'consecutiveGatewayErrors'), NON_NEGATIVE),
    interval: duration(ctx, o['interval'], at(path, 'interval')),
    baseEjectionTime: duration(ctx, o['baseEjectionTime'], at(path, 'baseEjectionTime')),
    maxEjectionPercent: int(ctx, o['maxEjectionPercent'], at(path, 'maxEjectionPercent'), { min: 0, max: 100 }),
  });
}
