/** gateway.networking.k8s.io kinds: Gateway, HTTPRoute (including mesh/GAMMA routes whose parent is a Service). */
import type {
  BackendRef,
  Gateway,
  GatewayListener,
  HTTPHeaderFilter,
  HTTPHeaderMatch,
  HTTPPathMatch,
  HTTPRoute,
  HTTPRouteFilter,
  HTTPRouteMatch,
  HTTPRouteRule,
  ObjectMeta,
  ParentReference,
} from './types.js';
import {
  absent,
  at,
  compact,
  describe,
  formatted,
  gatewayDuration,
  idx,
  int,
  isMapping,
  list,
  nonEmpty,
  nonEmptyList,
  oneOf,
  port,
  str,
  struct,
  uniqueIn,
  type Ctx,
  type Raw,
} from './fields.js';
import {
  DNS1123_SUBDOMAIN_TEXT,
  GATEWAY_HOSTNAME_TEXT,
  HEADER_NAME_TEXT,
  IP_TEXT,
  isDns1123Subdomain,
  isGatewayHostname,
  isGatewayProtocol,
  isHeaderName,
  isIPAddress,
  regexError,
} from './formats.js';
import { parseDurationMs } from './duration.js';

export const WAYPOINT_GATEWAY_CLASS = 'istio-waypoint';

// ---------- Gateway ----------

export function validateGateway(ctx: Ctx, raw: Raw, meta: ObjectMeta, apiVersion: string): Gateway {
  const spec = struct(ctx, raw['spec'], 'spec', { known: ['gatewayClassName', 'listeners', 'addresses'], unsupported: ['infrastructure', 'backendTLS', 'allowedListeners'] }, true) ?? {};
  const gatewayClassName = formatted(
    ctx,
    spec['gatewayClassName'],
    'spec.gatewayClassName',
    isDns1123Subdomain,
    DNS1123_SUBDOMAIN_TEXT,
    `e.g. "${WAYPOINT_GATEWAY_CLASS}" for a waypoint`,
  );
  const listeners = nonEmptyList(ctx, spec['listeners'], 'spec.listeners', (v, p) => listener(ctx, v, p), 'e.g. [{name: mesh, port: 15008, protocol: HBONE}]');
  uniqueIn(ctx, spec['listeners'], 'spec.listeners', 'name');
  if (gatewayClassName === WAYPOINT_GATEWAY_CLASS && listeners?.length && !listeners.some((l) => l.protocol === 'HBONE')) {
    ctx.warn('spec.listeners', 'a waypoint needs an HBONE listener, usually {name: mesh, port: 15008, protocol: HBONE}');
  }
  return {
    apiVersion: apiVersion as Gateway['apiVersion'],
    kind: 'Gateway',
    metadata: meta,
    spec: compact({
      gatewayClassName: gatewayClassName ?? '',
      listeners: listeners ?? [],
      addresses: list(ctx, spec['addresses'], 'spec.addresses', (v, p) => gatewayAddress(ctx, v, p)),
    }),
  };
}

function listener(ctx: Ctx, v: unknown, path: string): GatewayListener | undefined {
  const l = struct(ctx, v, path, { known: ['name', 'port', 'protocol', 'hostname', 'allowedRoutes'], unsupported: ['tls'] }, true);
  if (!l) return undefined;
  return compact({
    name: formatted(ctx, l['name'], at(path, 'name'), isDns1123Subdomain, DNS1123_SUBDOMAIN_TEXT, true) ?? '',
    port: port(ctx, l['port'], at(path, 'port'), true) ?? 0,
    protocol:
      formatted(ctx, l['protocol'], at(path, 'protocol'), isGatewayProtocol, 'a valid protocol (HTTP, HTTPS, TLS, TCP, UDP, HBONE or a domain-prefixed name)', 'e.g. HBONE or HTTP') ??
      '',
    hostname: formatted(ctx, l['hostname'], at(path, 'hostname'), isGatewayHostname, GATEWAY_HOSTNAME_TEXT),
    allowedRoutes: absent(l['allowedRoutes']) ? undefined : l['allowedRoutes'],
  });
}

function gatewayAddress(ctx: Ctx, v: unknown, path: string): { type?: string; value: string } | undefined {
  const a = struct(ctx, v, path, { known: ['type', 'value'] }, true);
  if (!a) return undefined;
  const type = str(ctx, a['type'], at(path, 'type'));
  const value =
    (type ?? 'IPAddress') === 'IPAddress'
      ? formatted(ctx, a['value'], at(path, 'value'), isIPAddress, IP_TEXT, true)
      : nonEmpty(ctx, a['value'], at(path, 'value'), true);
  return compact({ type, value: value ?? '' });
}

// ---------- HTTPRoute ----------

/** Gateway API's default match: every path. Fresh objects each time, so no result shares state. */
const rootPrefix = (): HTTPPathMatch => ({ type: 'PathPrefix', value: '/' });
const defaultMatches = (): HTTPRouteMatch[] => [{ path: rootPrefix() }];

export function validateHTTPRoute(ctx: Ctx, raw: Raw, meta: ObjectMeta, apiVersion: string): HTTPRoute {
  const spec = struct(ctx, raw['spec'], 'spec', { known: ['parentRefs', 'hostnames', 'rules'] }, true) ?? {};
  const parentRefs = nonEmptyList(
    ctx,
    spec['parentRefs'],
    'spec.parentRefs',
    (v, p) => parentRef(ctx, v, p),
    'name the Service (mesh routing: {group: "", kind: Service, name: ...}) or Gateway this route attaches to',
  );
  const hostnames = list(ctx, spec['hostnames'], 'spec.hostnames', (v, p) => formatted(ctx, v, p, isGatewayHostname, GATEWAY_HOSTNAME_TEXT, true));
  // Gateway API's default: one rule matching every path (it has no backends, so it answers 500).
  const rules = absent(spec['rules']) ? [{ matches: defaultMatches() }] : list(ctx, spec['rules'], 'spec.rules', (v, p) => routeRule(ctx, v, p));
  return {
    apiVersion: apiVersion as HTTPRoute['apiVersion'],
    kind: 'HTTPRoute',
    metadata: meta,
    spec: compact({ parentRefs: parentRefs ?? [], hostnames, rules: rules ?? [] }),
  };
}

const GROUP_RE = /^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const KIND_RE = /^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/;
const isGroup = (s: string): boolean => s.length <= 253 && GROUP_RE.test(s);
const isKind = (s: string): boolean => s.length <= 63 && KIND_RE.test(s);
const GROUP_TEXT = 'a valid API group ("" for core, or a DNS subdomain such as "gateway.networking.k8s.io")';
const KIND_TEXT = 'a valid kind (letters, digits and "-", starting with a letter)';

function parentRef(ctx: Ctx, v: unknown, path: string): ParentReference | undefined {
  const r = struct(ctx, v, path, { known: ['group', 'kind', 'name', 'namespace', 'port', 'sectionName'] }, true);
  if (!r) return undefined;
  return compact({
    group: formatted(ctx, r['group'], at(path, 'group'), isGroup, GROUP_TEXT),
    kind: formatted(ctx, r['kind'], at(path, 'kind'), isKind, KIND_TEXT),
    name: formatted(ctx, r['name'], at(path, 'name'), isDns1123Subdomain, DNS1123_SUBDOMAIN_TEXT, true) ?? '',
    namespace: formatted(ctx, r['namespace'], at(path, 'namespace'), isDns1123Subdomain, DNS1123_SUBDOMAIN_TEXT),
    port: port(ctx, r['port'], at(path, 'port')),
    sectionName: formatted(ctx, r['sectionName'], at(path, 'sectionName'), isDns1123Subdomain, DNS1123_SUBDOMAIN_TEXT),
  });
}

function routeRule(ctx: Ctx, v: unknown, path: string): HTTPRouteRule | undefined {
  const r = struct(ctx, v, path, { known: ['name', 'matches', 'filters', 'backendRefs', 'timeouts', 'retry'], unsupported: ['sessionPersistence'] }, true);
  if (!r) return undefined;
  const rawMatches = r['matches'];
  const matches =
    absent(rawMatches) || (Array.isArray(rawMatches) && rawMatches.length === 0)
      ? defaultMatches()
      : list(ctx, rawMatches, at(path, 'matches'), (x, p) => routeMatch(ctx, x, p));
  const filters = list(ctx, r['filters'], at(path, 'filters'), (x, p) => routeFilter(ctx, x, p));
  const backendRefs = list(ctx, r['backendRefs'], at(path, 'backendRefs'), (x, p) => backendRef(ctx, x, p));
  checkRuleFilters(ctx, path, r, matches ?? []);
  return compact({
    name: formatted(ctx, r['name'], at(path, 'name'), isDns1123Subdomain, DNS1123_SUBDOMAIN_TEXT),
    matches: matches ?? [],
    filters,
    backendRefs,
    timeouts: routeTimeouts(ctx, r['timeouts'], at(path, 'timeouts')),
    retry: routeRetry(ctx, r['retry'], at(path, 'retry')),
  });
}

/** Gateway API HTTPRouteRetry: codes 400..599, attempts (0 disables), backoff as a Gateway API duration. */
function routeRetry(ctx: Ctx, v: unknown, path: string): HTTPRouteRule['retry'] {
  const r = struct(ctx, v, path, { known: ['codes', 'attempts', 'backoff'] });
  if (!r) return undefined;
  const codes = list(ctx, r['codes'], at(path, 'codes'), (x, p) => int(ctx, x, p, { min: 400, max: 599 }, true));
  return compact({
    codes,
    attempts: int(ctx, r['attempts'], at(path, 'attempts'), { min: 0 }),
    backoff: gatewayDuration(ctx, r['backoff'], at(path, 'backoff')),
  });
}

// ----- matches -----

const PATH_TYPES = ['Exact', 'PathPrefix', 'RegularExpression'] as const;
const MATCH_TYPES = ['Exact', 'RegularExpression'] as const;
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'] as const;

function routeMatch(ctx: Ctx, v: unknown, path: string): HTTPRouteMatch | undefined {
  const m = struct(ctx, v, path, { known: ['path', 'headers', 'queryParams', 'method'] }, true);
  if (!m) return undefined;
  const headers = list(ctx, m['headers'], at(path, 'headers'), (x, p) => headerMatch(ctx, x, p, 'header'));
  warnRepeatedNames(ctx, m['headers'], at(path, 'headers'), true);
  const queryParams = list(ctx, m['queryParams'], at(path, 'queryParams'), (x, p) => headerMatch(ctx, x, p, 'query parameter'));
  warnRepeatedNames(ctx, m['queryParams'], at(path, 'queryParams'), false);
  return compact({
    path: absent(m['path']) ? rootPrefix() : pathMatch(ctx, m['path'], at(path, 'path')),
    headers,
    queryParams,
    method: oneOf(ctx, m['method'], at(path, 'method'), METHODS),
  });
}

function pathMatch(ctx: Ctx, v: unknown, path: string): HTTPPathMatch | undefined {
  const p = struct(ctx, v, path, { known: ['type', 'value'] });
  if (!p) return undefined;
  const type = oneOf(ctx, p['type'], at(path, 'type'), PATH_TYPES) ?? (absent(p['type']) ? 'PathPrefix' : undefined);
  const value = str(ctx, p['value'], at(path, 'value')) ?? '/';
  const problem = type === undefined ? undefined : pathValueProblem(type, value);
  if (problem) ctx.error(at(path, 'value'), `${describe(value)} ${problem}`);
  return type === undefined ? undefined : { type, value };
}

/** Gateway API's rules for match values; undefined when fine. */
function pathValueProblem(type: HTTPPathMatch['type'], value: string): string | undefined {
  if (value.length > 1024) return 'is longer than 1024 characters';
  if (type === 'RegularExpression') {
    const err = regexError(value);
    return err ? `is not a valid regular expression: ${err}` : undefined;
  }
  if (!value.startsWith('/')) return `must start with "/" when type is ${type}`;
  const bad = ['//', '/./', '/../', '%2f', '%2F', '#'].find((s) => value.includes(s));
  if (bad) return `must not contain ${describe(bad)} when type is ${type}`;
  if (value.endsWith('/..') || value.endsWith('/.')) return `must not end with "/." or "/.." when type is ${type}`;
  return undefined;
}

function headerMatch(ctx: Ctx, v: unknown, path: string, what: string): HTTPHeaderMatch | undefined {
  const h = struct(ctx, v, path, { known: ['type', 'name', 'value'] }, true);
  if (!h) return undefined;
  const type = oneOf(ctx, h['type'], at(path, 'type'), MATCH_TYPES) ?? 'Exact';
  const name = formatted(ctx, h['name'], at(path, 'name'), isHeaderName, `a valid ${what} name`, true);
  const value = str(ctx, h['value'], at(path, 'value'), true);
  const err = type === 'RegularExpression' && value !== undefined ? regexError(value) : undefined;
  if (err) ctx.error(at(path, 'value'), `${describe(value)} is not a valid regular expression: ${err}`);
  return { type, name: name ?? '', value: value ?? '' };
}

/** Gateway API: with repeated names only the first entry counts. Not an error upstream, so a warning. */
function warnRepeatedNames(ctx: Ctx, rawList: unknown, path: string, caseInsensitive: boolean): void {
  if (!Array.isArray(rawList)) return;
  const seen = new Map<string, number>();
  rawList.forEach((item: unknown, i) => {
    const name = isMapping(item) && typeof item['name'] === 'string' ? item['name'] : undefined;
    if (name === undefined) return;
    const key = caseInsensitive ? name.toLowerCase() : name;
    const first = seen.get(key);
    if (first === undefined) seen.set(key, i);
    else ctx.warn(at(idx(path, i), 'name'), `${describe(name)} repeats ${idx(path, first)}; only the first entry is used`);
  });
}

// ----- filters -----

type FilterType = HTTPRouteFilter['type'];
const FILTER_FIELDS: Readonly<Record<FilterType, keyof HTTPRouteFilter>> = {
  RequestHeaderModifier: 'requestHeaderModifier',
  ResponseHeaderModifier: 'responseHeaderModifier',
  RequestRedirect: 'requestRedirect',
  URLRewrite: 'urlRewrite',
  RequestMirror: 'requestMirror',
  ExtensionRef: 'extensionRef',
};
const FILTER_TYPES = Object.keys(FILTER_FIELDS) as FilterType[];
const FILTER_FIELD_NAMES = Object.values(FILTER_FIELDS);

function routeFilter(ctx: Ctx, v: unknown, path: string): HTTPRouteFilter | undefined {
  const f = struct(ctx, v, path, { known: ['type', ...FILTER_FIELD_NAMES], unsupported: ['cors', 'externalAuth'] }, true);
  if (!f) return undefined;
  const type = oneOf(ctx, f['type'], at(path, 'type'), FILTER_TYPES, true);
  if (type === undefined) return undefined;
  const field = FILTER_FIELDS[type];
  for (const other of FILTER_FIELD_NAMES) {
    if (other !== field && !absent(f[other])) ctx.error(at(path, other), `must not be set when type is ${type}; use ${field}`);
  }
  const fPath = at(path, field);
  const body = f[field];
  if (absent(body)) {
    ctx.error(fPath, `required field is missing; type ${type} needs ${field}`);
    return undefined;
  }
  switch (type) {
    case 'RequestHeaderModifier':
      return { type, requestHeaderModifier: headerFilter(ctx, body, fPath) ?? {} };
    case 'ResponseHeaderModifier':
      return { type, responseHeaderModifier: headerFilter(ctx, body, fPath) ?? {} };
    case 'RequestRedirect':
      return { type, requestRedirect: redirectFilter(ctx, body, fPath) ?? {} };
    case 'URLRewrite':
      return { type, urlRewrite: rewriteFilter(ctx, body, fPath) ?? {} };
    case 'RequestMirror': {
      const m = struct(ctx, body, fPath, { known: ['backendRef', 'percent', 'fraction'] });
      const ref = m && backendObjectRef(ctx, m['backendRef'], at(fPath, 'backendRef'), true);
      const percent = m && mirrorPercent(ctx, m, fPath);
      return ref ? { type, requestMirror: compact({ backendRef: ref, percent }) } : undefined;
    }
    case 'ExtensionRef': {
      const e = struct(ctx, body, fPath, { known: ['group', 'kind', 'name'] });
      if (!e) return undefined;
      return {
        type,
        extensionRef: {
          group: formatted(ctx, e['group'], at(fPath, 'group'), isGroup, GROUP_TEXT, true) ?? '',
          kind: formatted(ctx, e['kind'], at(fPath, 'kind'), isKind, KIND_TEXT, true) ?? '',
          name: nonEmpty(ctx, e['name'], at(fPath, 'name'), true) ?? '',
        },
      };
    }
  }
}

/** RequestMirror `percent` (0..100) or `fraction` ({numerator, denominator default 100}), as a percentage. */
function mirrorPercent(ctx: Ctx, m: Raw, path: string): number | undefined {
  if (!absent(m['percent']) && !absent(m['fraction'])) {
    ctx.error(at(path, 'fraction'), 'cannot be combined with percent; set only one');
    return undefined;
  }
  if (!absent(m['percent'])) return int(ctx, m['percent'], at(path, 'percent'), { min: 0, max: 100 });
  const fPath = at(path, 'fraction');
  const f = struct(ctx, m['fraction'], fPath, { known: ['numerator', 'denominator'] });
  if (!f) return undefined;
  const numerator = int(ctx, f['numerator'], at(fPath, 'numerator'), { min: 0 }, true);
  const denominator = int(ctx, f['denominator'], at(fPath, 'denominator'), { min: 1 }) ?? 100;
  if (numerator === undefined) return undefined;
  if (numerator > denominator) {
    ctx.error(at(fPath, 'numerator'), `${numerator} is more than the denominator ${denominator}`);
    return undefined;
  }
  return (numerator / denominator) * 100;
}

function headerFilter(ctx: Ctx, v: unknown, path: string): HTTPHeaderFilter | undefined {
  const h = struct(ctx, v, path, { known: ['set', 'add', 'remove'] });
  if (!h) return undefined;
  const pairs = (key: 'set' | 'add'): { name: string; value: string }[] | undefined => {
    const out = list(ctx, h[key], at(path, key), (x, p) => {
      const e = struct(ctx, x, p, { known: ['name', 'value'] }, true);
      if (!e) return undefined;
      return {
        name: formatted(ctx, e['name'], at(p, 'name'), isHeaderName, HEADER_NAME_TEXT, true) ?? '',
        value: str(ctx, e['value'], at(p, 'value'), true) ?? '',
      };
    });
    uniqueIn(ctx, h[key], at(path, key), 'name', (item) => (typeof item['name'] === 'string' ? item['name'].toLowerCase() : undefined));
    return out;
  };
  const remove = list(ctx, h['remove'], at(path, 'remove'), (x, p) => formatted(ctx, x, p, isHeaderName, HEADER_NAME_TEXT, true));
  return compact({ set: pairs('set'), add: pairs('add'), remove });
}

const PATH_MODIFIER_TYPES = ['ReplaceFullPath', 'ReplacePrefixMatch'] as const;
type PathModifier = { type: string; replaceFullPath?: string; replacePrefixMatch?: string };

function pathModifier(ctx: Ctx, v: unknown, path: string): PathModifier | undefined {
  const m = struct(ctx, v, path, { known: ['type', 'replaceFullPath', 'replacePrefixMatch'] });
  if (!m) return undefined;
  const type = oneOf(ctx, m['type'], at(path, 'type'), PATH_MODIFIER_TYPES, true);
  if (type === undefined) return undefined;
  const field = type === 'ReplaceFullPath' ? 'replaceFullPath' : 'replacePrefixMatch';
  const other = type === 'ReplaceFullPath' ? 'replacePrefixMatch' : 'replaceFullPath';
  if (!absent(m[other])) ctx.error(at(path, other), `must not be set when type is ${type}`);
  const value = str(ctx, m[field], at(path, field), `type ${type} needs ${field}`);
  if (value !== undefined && !value.startsWith('/')) ctx.error(at(path, field), `${describe(value)} must start with "/"`);
  return { type, [field]: value ?? '' };
}

const REDIRECT_CODES = [301, 302, 303, 307, 308];

function redirectFilter(ctx: Ctx, v: unknown, path: string): NonNullable<HTTPRouteFilter['requestRedirect']> | undefined {
  const r = struct(ctx, v, path, { known: ['scheme', 'hostname', 'path', 'port', 'statusCode'] });
  if (!r) return undefined;
  const statusCode = int(ctx, r['statusCode'], at(path, 'statusCode'));
  if (statusCode !== undefined && !REDIRECT_CODES.includes(statusCode)) {
    ctx.error(at(path, 'statusCode'), `${statusCode} is not one of ${REDIRECT_CODES.join(', ')}`);
  }
  return compact({
    scheme: oneOf(ctx, r['scheme'], at(path, 'scheme'), ['http', 'https']),
    hostname: formatted(ctx, r['hostname'], at(path, 'hostname'), isDns1123Subdomain, DNS1123_SUBDOMAIN_TEXT),
    path: pathModifier(ctx, r['path'], at(path, 'path')),
    port: port(ctx, r['port'], at(path, 'port')),
    statusCode,
  });
}

function rewriteFilter(ctx: Ctx, v: unknown, path: string): NonNullable<HTTPRouteFilter['urlRewrite']> | undefined {
  const r = struct(ctx, v, path, { known: ['hostname', 'path'] });
  if (!r) return undefined;
  return compact({
    hostname: formatted(ctx, r['hostname'], at(path, 'hostname'), isDns1123Subdomain, DNS1123_SUBDOMAIN_TEXT),
    path: pathModifier(ctx, r['path'], at(path, 'path')),
  });
}

/** The CEL rules Gateway API puts on a rule's filters, checked on the raw rule so positions stay right. */
function checkRuleFilters(ctx: Ctx, path: string, rule: Raw, matches: HTTPRouteMatch[]): void {
  const filters = Array.isArray(rule['filters']) ? (rule['filters'] as unknown[]) : [];
  const typeAt = (i: number): unknown => (isMapping(filters[i]) ? (filters[i] as Raw)['type'] : undefined);
  const fPath = at(path, 'filters');
  const firstOf = new Map<unknown, number>();
  filters.forEach((_, i) => {
    const type = typeAt(i);
    if (type === 'RequestMirror' || type === 'ExtensionRef' || typeof type !== 'string') return;
    const first = firstOf.get(type);
    if (first === undefined) firstOf.set(type, i);
    else ctx.error(at(idx(fPath, i), 'type'), `${type} may appear only once per rule; already used by ${idx(fPath, first)}`);
  });
  const redirect = firstOf.get('RequestRedirect');
  const rewrite = firstOf.get('URLRewrite');
  if (redirect !== undefined && rewrite !== undefined) {
    ctx.error(idx(fPath, Math.max(redirect, rewrite)), 'RequestRedirect and URLRewrite cannot be used in the same rule');
  }
  const backends = rule['backendRefs'];
  if (redirect !== undefined && Array.isArray(backends) && backends.length > 0) {
    ctx.error(at(path, 'backendRefs'), 'must not be set together with a RequestRedirect filter; a redirect answers without a backend');
  }
  for (const i of [redirect, rewrite]) {
    if (i === undefined) continue;
    const body = (filters[i] as Raw)[i === redirect ? 'requestRedirect' : 'urlRewrite'];
    const modifier = isMapping(body) && isMapping(body['path']) ? body['path'] : undefined;
    if (modifier?.['type'] !== 'ReplacePrefixMatch') continue;
    if (matches.length !== 1 || matches[0]?.path?.type !== 'PathPrefix') {
      ctx.error(at(idx(fPath, i), 'type'), 'path.replacePrefixMatch needs the rule to have exactly one match, with a PathPrefix path');
    }
  }
}

// ----- backends -----

/** A reference to a backend; a Service (the default kind) needs a port. */
function backendObjectRef(ctx: Ctx, v: unknown, path: string, req: boolean, extra: readonly string[] = []): BackendRef | undefined {
  const r = struct(ctx, v, path, { known: ['group', 'kind', 'name', 'namespace', 'port', ...extra] }, req);
  if (!r) return undefined;
  const group = formatted(ctx, r['group'], at(path, 'group'), isGroup, GROUP_TEXT);
  const kind = formatted(ctx, r['kind'], at(path, 'kind'), isKind, KIND_TEXT);
  const isService = (group ?? '') === '' && (kind ?? 'Service') === 'Service';
  return compact({
    group,
    kind,
    name: formatted(ctx, r['name'], at(path, 'name'), isDns1123Subdomain, DNS1123_SUBDOMAIN_TEXT, true) ?? '',
    namespace: formatted(ctx, r['namespace'], at(path, 'namespace'), isDns1123Subdomain, DNS1123_SUBDOMAIN_TEXT),
    port: port(ctx, r['port'], at(path, 'port'), isService ? 'a Service backend needs the Service port to send to' : undefined),
  });
}

function backendRef(ctx: Ctx, v: unknown, path: string): BackendRef | undefined {
  const ref = backendObjectRef(ctx, v, path, true, ['weight', 'filters']);
  if (!ref || !isMapping(v)) return undefined;
  return compact({
    ...ref,
    weight: int(ctx, v['weight'], at(path, 'weight'), { min: 0, max: 1_000_000 }),
    filters: list(ctx, v['filters'], at(path, 'filters'), (x, p) => routeFilter(ctx, x, p)),
  });
}

function routeTimeouts(ctx: Ctx, v: unknown, path: string): HTTPRouteRule['timeouts'] {
  const t = struct(ctx, v, path, { known: ['request', 'backendRequest'] });
  if (!t) return undefined;
  const request = gatewayDuration(ctx, t['request'], at(path, 'request'));
  const backendRequest = gatewayDuration(ctx, t['backendRequest'], at(path, 'backendRequest'));
  const requestMs = request === undefined ? undefined : parseDurationMs(request);
  const backendMs = backendRequest === undefined ? undefined : parseDurationMs(backendRequest);
  // "0s" means no timeout, so the comparison applies only when both are set and non-zero.
  if (requestMs && backendMs && backendMs > requestMs) {
    ctx.error(at(path, 'backendRequest'), `${describe(backendRequest)} must not be longer than request (${describe(request)})`);
  }
  return compact({ request, backendRequest });
}
