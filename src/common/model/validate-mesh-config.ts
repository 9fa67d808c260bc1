/**
 * v1 ConfigMap, and Istio's mesh config: the `mesh` key of the ConfigMap named `istio`, a YAML document in a string.
 * Strait reads only the parts it implements (tracing `extensionProviders`, `defaultProviders`, and its own `strait`
 * section); every other mesh field is a warning naming it. Problems inside the mesh document carry the path
 * `data[mesh].<field>`. Whether the ConfigMap is in the root namespace is checked where the root namespace is known
 * (the controller's enforcement report), not here.
 */
import { parseDocument } from 'yaml';
import type { ConfigMap, ExtensionProvider, MeshConfig, ObjectMeta, OpenTelemetryProvider, StraitMeshSettings, ZipkinProvider } from './types.js';
import { at, bool, compact, describe, field, gatewayDuration, idx, int, isMapping, keyed, list, nonEmpty, oneOf, port, str, strList, struct, uniqueIn, type Ctx, type Raw } from './fields.js';
import { isDns1123Label, isDns1123Subdomain } from './formats.js';

/** The ConfigMap Istio reads its mesh config from, and the key holding it. */
export const MESH_CONFIGMAP_NAME = 'istio';
export const MESH_CONFIG_KEY = 'mesh';

/** The mesh document is user input of its own: bound its size (Istio's whole mesh config is a few KiB). */
const MAX_MESH_CONFIG_BYTES = 256 * 1024;

export function validateConfigMap(ctx: Ctx, raw: Raw, meta: ObjectMeta): ConfigMap {
  const data = stringData(ctx, raw['data']);
  if (raw['binaryData'] !== undefined && raw['binaryData'] !== null && !isMapping(raw['binaryData'])) {
    ctx.error('binaryData', `expected a mapping, got ${describe(raw['binaryData'])}`);
  }
  if (raw['immutable'] !== undefined) bool(ctx, raw['immutable'], 'immutable');
  const text = data[MESH_CONFIG_KEY];
  const mesh = meta.name === MESH_CONFIGMAP_NAME && text !== undefined ? meshConfig(ctx, text, keyed('data', MESH_CONFIG_KEY)) : undefined;
  return compact({ apiVersion: 'v1' as const, kind: 'ConfigMap' as const, metadata: meta, data, mesh });
}

/** ConfigMap data: string values only (a number must be quoted in YAML, as the API server requires). */
function stringData(ctx: Ctx, v: unknown): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (!isMapping(v)) {
    ctx.error('data', `expected a mapping of keys to strings, got ${describe(v)}`);
    return {};
  }
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) {
    if (!/^[-._a-zA-Z0-9]+$/.test(k) || k.length > 253) ctx.error(keyed('data', k), "is not a valid ConfigMap key (letters, digits, '-', '_' or '.')");
    if (typeof x === 'string') out[k] = x;
    else ctx.error(keyed('data', k), `expected a string, got ${describe(x)}${typeof x === 'number' || typeof x === 'boolean' ? '; quote the value in YAML' : ''}`);
  }
  return out;
}

// ---------- the mesh document ----------

/** MeshConfig fields Strait reads; any other top-level field is reported as not read. */
const READ_FIELDS = ['extensionProviders', 'defaultProviders', 'strait'];
/** Mesh fields with a Strait equivalent elsewhere: the warning says where. */
const ELSEWHERE: Readonly<Record<string, string>> = {
  trustDomain: 'set the trust domain with the controller\'s --trust-domain',
  rootNamespace: 'set the root namespace with the controller\'s --root-namespace',
  enableTracing: 'tracing is on wherever a Telemetry object or defaultProviders.tracing names a provider',
  defaultConfig: 'it configures sidecar and gateway proxies (ProxyConfig); Strait\'s proxies take their settings from their flags',
  accessLogFile: 'the ztunnels and waypoints always write their access log to standard output',
};

function meshConfig(ctx: Ctx, text: string, path: string): MeshConfig | undefined {
  if (Buffer.byteLength(text) > MAX_MESH_CONFIG_BYTES) {
    ctx.error(path, `is ${Buffer.byteLength(text)} bytes; the mesh config may be at most ${MAX_MESH_CONFIG_BYTES} bytes`);
    return undefined;
  }
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    ctx.error(path, `is not valid YAML: ${doc.errors[0]!.message}`);
    return undefined;
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    ctx.error(path, `could not be read: ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  }
  if (value === null || value === undefined) return { extensionProviders: [] };
  if (!isMapping(value)) {
    ctx.error(path, `expected a mapping of mesh config fields, got ${describe(value)}`);
    return undefined;
  }
  const m = value;
  for (const key of Object.keys(m)) {
    if (READ_FIELDS.includes(key)) continue;
    const why = ELSEWHERE[key] ?? `Strait reads only ${READ_FIELDS.join(', ')} from the mesh config`;
    ctx.warn(field(path, key), `not read by Strait (ignored): ${why}`);
  }
  const providers = list(ctx, m['extensionProviders'], at(path, 'extensionProviders'), (v, p) => extensionProvider(ctx, v, p)) ?? [];
  uniqueIn(ctx, m['extensionProviders'], at(path, 'extensionProviders'), 'name');
  return compact({
    extensionProviders: providers,
    defaultProviders: defaultProviders(ctx, m['defaultProviders'], at(path, 'defaultProviders')),
    strait: straitSettings(ctx, m['strait'], at(path, 'strait')),
  });
}

/** Provider types Istio knows and Strait does not implement (a warning each, not an error). */
const OTHER_PROVIDER_TYPES = [
  'envoyExtAuthzHttp', 'envoyExtAuthzGrpc', 'datadog', 'stackdriver', 'opencensus', 'skywalking', 'lightstep',
  'prometheus', 'envoyFileAccessLog', 'envoyHttpAls', 'envoyTcpAls', 'envoyOtelAls', 'sds',
];

function extensionProvider(ctx: Ctx, v: unknown, path: string): ExtensionProvider | undefined {
  const e = struct(ctx, v, path, { known: ['name', 'zipkin', 'opentelemetry'], silent: OTHER_PROVIDER_TYPES }, true);
  if (!e) return undefined;
  const name = nonEmpty(ctx, e['name'], at(path, 'name'), true) ?? '';
  const types = ['zipkin', 'opentelemetry', ...OTHER_PROVIDER_TYPES].filter((k) => e[k] !== undefined && e[k] !== null);
  if (types.length !== 1) {
    ctx.error(path, types.length === 0 ? 'needs one provider type, e.g. zipkin or opentelemetry' : `sets ${types.join(' and ')}; a provider has exactly one type`);
    return undefined;
  }
  const type = types[0]!;
  if (type === 'zipkin') {
    const z = zipkin(ctx, e['zipkin'], at(path, 'zipkin'));
    return z && { name, kind: 'zipkin', zipkin: z };
  }
  if (type === 'opentelemetry') {
    const o = openTelemetry(ctx, e['opentelemetry'], at(path, 'opentelemetry'));
    return o && { name, kind: 'opentelemetry', opentelemetry: o };
  }
  ctx.warn(at(path, type), `provider type ${type} is not supported by Strait; Telemetry or AuthorizationPolicy objects naming ${describe(name)} get no provider`);
  return { name, kind: 'unsupported', type };
}

/**
 * Istio's "[<namespace>/]<hostname>" ("zipkin.istio-system.svc.cluster.local", "istio-system/zipkin.istio-system.svc.cluster.local"),
 * and "namespace/name" for a Service of that namespace.
 */
function providerService(ctx: Ctx, v: unknown, path: string): string | undefined {
  const s = nonEmpty(ctx, v, path, 'the collector\'s Service, e.g. "zipkin.istio-system.svc.cluster.local" or "istio-system/zipkin"');
  if (s === undefined) return undefined;
  const slash = s.split('/');
  const ok = slash.length === 2 ? isDns1123Label(slash[0]!) && isDns1123Subdomain(slash[1]!) : slash.length === 1 && isDns1123Subdomain(s);
  if (!ok) ctx.error(path, `${describe(s)} is not a Service host ("name.namespace.svc.cluster.local"), "namespace/hostname" or "namespace/name"`);
  return ok ? s : undefined;
}

function zipkin(ctx: Ctx, v: unknown, path: string): ZipkinProvider | undefined {
  const z = struct(ctx, v, path, { known: ['service', 'port', 'maxTagLength', 'path'], unsupported: ['enable64bitTraceId', 'traceContextOption', 'timeout', 'headers'] }, true);
  if (!z) return undefined;
  const p = str(ctx, z['path'], at(path, 'path'));
  if (p !== undefined && !p.startsWith('/')) ctx.error(at(path, 'path'), `${describe(p)} must start with "/"`);
  return compact({
    service: providerService(ctx, z['service'], at(path, 'service')) ?? '',
    port: port(ctx, z['port'], at(path, 'port'), 'the collector\'s Service port, e.g. 9411') ?? 0,
    maxTagLength: int(ctx, z['maxTagLength'], at(path, 'maxTagLength'), { min: 0 }),
    path: p,
  });
}

function openTelemetry(ctx: Ctx, v: unknown, path: string): OpenTelemetryProvider | undefined {
  const o = struct(ctx, v, path, { known: ['service', 'port', 'maxTagLength', 'http', 'grpc'], unsupported: ['resourceDetectors', 'dynatraceSampler'] }, true);
  if (!o) return undefined;
  const hPath = at(path, 'http');
  const h = struct(ctx, o['http'], hPath, { known: ['path', 'timeout'], unsupported: ['headers'] });
  const httpPath = h ? str(ctx, h['path'], at(hPath, 'path')) : undefined;
  if (httpPath !== undefined && !httpPath.startsWith('/')) ctx.error(at(hPath, 'path'), `${describe(httpPath)} must start with "/"`);
  const gPath = at(path, 'grpc');
  const g = struct(ctx, o['grpc'], gPath, { known: ['timeout'], unsupported: ['initialMetadata'] });
  if (h && g) ctx.error(gPath, 'cannot be combined with http; a provider exports over OTLP/HTTP or OTLP/gRPC');
  return compact({
    service: providerService(ctx, o['service'], at(path, 'service')) ?? '',
    port: port(ctx, o['port'], at(path, 'port'), 'the collector\'s Service port, e.g. 4317 (gRPC) or 4318 (HTTP)') ?? 0,
    maxTagLength: int(ctx, o['maxTagLength'], at(path, 'maxTagLength'), { min: 0 }),
    http: h && compact({ path: httpPath, timeout: gatewayDuration(ctx, h['timeout'], at(hPath, 'timeout')) }),
    grpc: g && compact({ timeout: gatewayDuration(ctx, g['timeout'], at(gPath, 'timeout')) }),
  });
}

function defaultProviders(ctx: Ctx, v: unknown, path: string): MeshConfig['defaultProviders'] {
  const d = struct(ctx, v, path, { known: ['tracing', 'metrics', 'accessLogging'] });
  if (!d) return undefined;
  const names = (key: string) => strList(ctx, d[key], at(path, key));
  const tracing = names('tracing');
  if (tracing && tracing.length > 1) ctx.warn(idx(at(path, 'tracing'), 1), 'only the first tracing provider is used');
  return compact({ tracing, metrics: names('metrics'), accessLogging: names('accessLogging') });
}

const SELECTOR_POLICIES = ['waypoint', 'istio'] as const;

function straitSettings(ctx: Ctx, v: unknown, path: string): StraitMeshSettings | undefined {
  const s = struct(ctx, v, path, { known: ['selectorPolicies'] });
  if (!s) return undefined;
  return compact({ selectorPolicies: oneOf(ctx, s['selectorPolicies'], at(path, 'selectorPolicies'), SELECTOR_POLICIES) });
}
