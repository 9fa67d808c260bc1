/**
 * Telemetry tracing + mesh config providers → TracingPolicyResources for one waypoint.
 *
 * Istio's hierarchy, least specific first, each level overriding the fields it sets (providers,
 * randomSamplingPercentage, disableSpanReporting): the mesh config's defaultProviders.tracing; the Telemetry of the
 * root namespace without selector or targetRefs; one targeting the GatewayClass istio-waypoint from the root
 * namespace; the Telemetry of the waypoint's namespace without selector or targetRefs; one targeting the waypoint's
 * Gateway. A Telemetry targeting a Service bound to the waypoint gives that Service its own resource on top of that.
 * At one level the oldest object wins. Sampling defaults to 1 % (Istio's default). The provider is resolved against
 * `extensionProviders` and its `service` through the mesh's registry: the Service's cluster IP, or its first ready
 * endpoint when it has none (the local mesh's collectors may have no VIP). Pure.
 */
import type { ExtensionProvider, Telemetry } from '../../common/model/types.js';
import type { TracingPolicyResource, TracingProvider } from '../../common/xds/waypoint-resources.js';
import type { ServiceResource } from '../../common/xds/resources.js';
import { GATEWAY_GROUP } from './http-routes.js';
import { targetRefs, WAYPOINT_GATEWAY_CLASS, type WaypointInfo } from './l7-policies.js';
import type { MeshSettings } from './mesh-config.js';
import { byAge, keyOf, SERVICE_DOMAIN, serviceKey, type Notes, type Registry } from './registry.js';

/** Istio's sampling when nothing sets randomSamplingPercentage (meshConfig.defaultConfig.tracing.sampling default). */
export const DEFAULT_SAMPLING_PERCENT = 1;
export const DEFAULT_ZIPKIN_PATH = '/api/v2/spans';
export const DEFAULT_OTLP_HTTP_PATH = '/v1/traces';
/** The origin named for settings that come from the mesh config alone. */
export const MESH_CONFIG_ORIGIN = 'meshConfig';

interface Layer {
  origin: string;
  object?: Telemetry;
  provider?: string;
  sampling?: number;
  disable?: boolean;
}

export interface TracingResult {
  resources: Map<string, TracingPolicyResource>;
  /** "Telemetry/ns/name" of each object used. */
  used: Set<string>;
}

/** Notes about Telemetry objects that hold for every waypoint (fields Strait does not apply, levels it ignores). */
export function telemetryNotes(list: readonly Telemetry[], rootNamespace: string, notes: Notes): void {
  const byLevel = new Map<string, Telemetry[]>();
  for (const t of list) {
    const key = keyOf('Telemetry', t.metadata);
    if (t.spec.accessLogging) notes.add(key, 'spec.accessLogging', 'not applied by Strait: the ztunnels and waypoints always write their own access log to standard output');
    if (t.spec.metrics) notes.add(key, 'spec.metrics', 'not applied by Strait: the ztunnels and waypoints always export Istio\'s standard metrics');
    if (t.spec.tracing && t.spec.tracing.length > 1) notes.add(key, 'spec.tracing[1]', 'only the first tracing entry is applied');
    const first = t.spec.tracing?.[0];
    if (first?.providers && first.providers.length > 1) notes.add(key, 'spec.tracing[0].providers[1]', 'only the first provider is used');
    if (t.spec.selector) {
      notes.unapplied(key, 'spec.selector', t.metadata.namespace === rootNamespace
        ? 'a selector in the root namespace is ignored, as Istio ignores it'
        : 'picks workloads, whose ztunnels apply no Telemetry; configure a waypoint with targetRefs (kind Gateway or Service) instead');
      continue;
    }
    if (targetRefs(t).length === 0) {
      const level = t.metadata.namespace!;
      (byLevel.get(level) ?? byLevel.set(level, []).get(level)!).push(t);
    }
  }
  for (const [ns, ts] of byLevel) {
    if (ts.length < 2) continue;
    const [winner, ...rest] = [...ts].sort(byAge);
    for (const t of rest) notes.unapplied(keyOf('Telemetry', t.metadata), '', `shadowed by Telemetry ${ns}/${winner!.metadata.name}: only one Telemetry without selector or targetRefs applies per namespace (the oldest)`);
  }
}

export function compileTracing(list: readonly Telemetry[], wp: WaypointInfo, mesh: MeshSettings, registry: Registry, rootNamespace: string, notes: Notes): TracingResult {
  const plain = (ns: string) => list.filter((t) => t.metadata.namespace === ns && !t.spec.selector && targetRefs(t).length === 0).sort(byAge)[0];
  const targeting = (pred: (kind: string, name: string, group: string | undefined, ns: string) => boolean) =>
    list.filter((t) => targetRefs(t).some((r) => pred(r.kind, r.name, r.group, r.namespace ?? t.metadata.namespace!))).sort(byAge);
  const layers: Layer[] = [];
  const defaults = mesh.config.defaultProviders?.tracing?.[0];
  if (defaults) layers.push({ origin: MESH_CONFIG_ORIGIN, provider: defaults });
  const root = plain(rootNamespace);
  if (root) layers.push(layerOf(root));
  for (const t of targeting((k, n, _g, ns) => k === 'GatewayClass' && n === WAYPOINT_GATEWAY_CLASS && ns === rootNamespace)) {
    if (t.metadata.namespace === rootNamespace) layers.push(layerOf(t));
  }
  if (wp.namespace !== rootNamespace) {
    const own = plain(wp.namespace);
    if (own) layers.push(layerOf(own));
  }
  for (const t of targeting((k, n, g, ns) => k === 'Gateway' && (g ?? GATEWAY_GROUP) === GATEWAY_GROUP && n === wp.name && ns === wp.namespace)) layers.push(layerOf(t));

  const result: TracingResult = { resources: new Map(), used: new Set() };
  const emit = (stack: Layer[], services?: string[]) => {
    const traced = stack.filter((l) => l.object === undefined || l.object.spec.tracing);
    if (traced.length === 0) return;
    const top = traced[traced.length - 1]!;
    const merged = { provider: undefined as string | undefined, sampling: DEFAULT_SAMPLING_PERCENT, disable: false };
    for (const l of traced) {
      if (l.provider !== undefined) merged.provider = l.provider;
      if (l.sampling !== undefined) merged.sampling = l.sampling;
      if (l.disable !== undefined) merged.disable = l.disable;
      if (l.object) result.used.add(keyOf('Telemetry', l.object.metadata));
    }
    const res: TracingPolicyResource = { type: 'tracing', origin: top.origin, origins: traced.map((l) => l.origin), samplingPercentage: merged.sampling };
    if (services) res.services = services;
    if (merged.disable) res.disableSpanReporting = true;
    const resolved = merged.provider === undefined
      ? { problem: `no tracing provider: name one in the Telemetry (spec.tracing[0].providers) or set defaultProviders.tracing in the mesh config (the ConfigMap istio in ${rootNamespace}, key mesh)` }
      : resolveProvider(merged.provider, mesh, registry, rootNamespace);
    if ('provider' in resolved) res.provider = resolved.provider;
    else {
      res.problem = resolved.problem;
      const obj = top.object ? keyOf('Telemetry', top.object.metadata) : `ConfigMap/${rootNamespace}/istio`;
      notes.add(obj, top.object ? 'spec.tracing[0].providers' : 'data[mesh].defaultProviders.tracing', `waypoint ${wp.key} sends no spans: ${resolved.problem}`);
    }
    const name = top.object ? `tracing/${top.object.metadata.namespace}/${top.object.metadata.name}` : `tracing/${rootNamespace}/${MESH_CONFIG_ORIGIN}`;
    result.resources.set(name, res);
  };
  emit(layers);
  // Telemetry targeting Services bound to this waypoint: each one's services get their own resource.
  for (const t of targeting((k, n, g, ns) => k === 'Service' && (g ?? '') === '' && wp.services.includes(`${ns}/${n}`))) {
    if (!t.spec.tracing) continue;
    const services = targetRefs(t).filter((r) => r.kind === 'Service').map((r) => `${r.namespace ?? t.metadata.namespace}/${r.name}`).filter((s) => wp.services.includes(s)).sort();
    emit([...layers, layerOf(t)], services);
  }
  return result;
}

function layerOf(t: Telemetry): Layer {
  const tr = t.spec.tracing?.[0];
  const l: Layer = { origin: `${t.metadata.namespace}/${t.metadata.name}`, object: t };
  const p = tr?.providers?.[0]?.name;
  if (p !== undefined) l.provider = p;
  if (tr?.randomSamplingPercentage !== undefined) l.sampling = tr.randomSamplingPercentage;
  if (tr?.disableSpanReporting !== undefined) l.disable = tr.disableSpanReporting;
  return l;
}

/** A provider name → where spans go, or why they cannot go anywhere. */
export function resolveProvider(name: string, mesh: MeshSettings, registry: Registry, rootNamespace: string): { provider: TracingProvider } | { problem: string } {
  const where = mesh.source ? `the mesh config (ConfigMap ${mesh.source}, key mesh)` : `the mesh config, and there is none: create the ConfigMap istio in ${rootNamespace} with extensionProviders in its mesh key`;
  const p: ExtensionProvider | undefined = mesh.config.extensionProviders.find((e) => e.name === name);
  if (!p) return { problem: `provider ${JSON.stringify(name)} is not among the extensionProviders of ${where}` };
  if (p.kind === 'unsupported') return { problem: `provider ${JSON.stringify(name)} is of type ${p.type}, which Strait does not support; use zipkin or opentelemetry` };
  const spec = p.kind === 'zipkin' ? p.zipkin : p.opentelemetry;
  const svc = providerService(spec.service, registry);
  if (!svc) return { problem: `the service ${JSON.stringify(spec.service)} of provider ${JSON.stringify(name)} is not a Service of the mesh; create it, or name an existing one ("name.namespace.svc.cluster.local")` };
  if (!svc.ports.some((sp) => sp.port === spec.port)) {
    return { problem: `Service ${serviceKey(svc)} of provider ${JSON.stringify(name)} has no port ${spec.port} (ports: ${svc.ports.map((sp) => sp.port).join(', ')})` };
  }
  let host: string;
  let port: number;
  let address: 'vip' | 'endpoint';
  if (svc.vips.length > 0) {
    host = svc.vips[0]!;
    port = spec.port;
    address = 'vip';
  } else {
    const e = svc.endpoints.find((x) => x.healthy && x.ports[String(spec.port)] !== undefined);
    if (!e) return { problem: `Service ${serviceKey(svc)} of provider ${JSON.stringify(name)} has no cluster IP and no ready endpoint to send spans to` };
    host = e.address;
    port = e.ports[String(spec.port)]!;
    address = 'endpoint';
  }
  const provider: TracingProvider = {
    name, kind: p.kind, service: serviceKey(svc), host, port, address,
    path: p.kind === 'zipkin' ? p.zipkin.path ?? DEFAULT_ZIPKIN_PATH : p.opentelemetry.http ? p.opentelemetry.http.path ?? DEFAULT_OTLP_HTTP_PATH : '',
  };
  if (p.kind === 'opentelemetry') provider.protocol = p.opentelemetry.http ? 'http' : 'grpc';
  if (spec.maxTagLength !== undefined) provider.maxTagLength = spec.maxTagLength;
  return { provider };
}

/** "ns/name", "ns/<hostname>" (Istio's form) or "<hostname>". */
function providerService(s: string, registry: Registry): ServiceResource | undefined {
  const slash = s.indexOf('/');
  if (slash < 0) return registry.serviceByHost(s) ?? registry.serviceByHost(`${s}.${SERVICE_DOMAIN}`);
  const ns = s.slice(0, slash);
  const rest = s.slice(slash + 1);
  if (!rest.includes('.')) return registry.service(`${ns}/${rest}`);
  const svc = registry.serviceByHost(rest) ?? registry.serviceByHost(`${rest}.${SERVICE_DOMAIN}`);
  return svc?.namespace === ns ? svc : undefined;
}
