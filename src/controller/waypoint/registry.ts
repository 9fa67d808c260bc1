/**
 * What every part of the waypoint compiler shares: the mesh's services by host name (short names resolved the way
 * Istio resolves them), the age order Istio and Gateway API use to pick a winner, and the notes the compiler leaves
 * about objects (shown as warnings in `strait validate`, /debug/configz and the controller's log). Pure.
 */
import type { Labels, ObjectMeta } from '../../common/model/types.js';
import type { HeaderOps } from '../../common/xds/waypoint-resources.js';
import type { ServiceResource, WorkloadResource } from '../../common/xds/resources.js';

/** Kubernetes' service domain, as in every ServiceResource hostname. */
export const SERVICE_DOMAIN = 'svc.cluster.local';

/** A remark about one object: "VirtualService/ns/name", the field it is about ("" for the whole), the message. */
export interface CompileNote {
  object: string;
  path: string;
  message: string;
  /** The note says why the object (or this use of it) is not applied at all; no generic "not enforced" warning then. */
  unapplied?: boolean;
}

/** Collects notes; one note per (object, path, message). */
export class Notes {
  private readonly seen = new Set<string>();
  readonly list: CompileNote[] = [];

  add(object: string, path: string, message: string, unapplied = false): void {
    const id = `${object}\n${path}\n${message}`;
    if (this.seen.has(id)) return;
    this.seen.add(id);
    this.list.push({ object, path, message, ...(unapplied ? { unapplied } : {}) });
  }

  /** The note says why the object is not applied (see CompileNote.unapplied). */
  unapplied(object: string, path: string, message: string): void {
    this.add(object, path, message, true);
  }
}

/** "Kind/ns/name", the store's key and the key of notes. */
export function keyOf(kind: string, meta: ObjectMeta): string {
  return `${kind}/${meta.namespace ?? ''}/${meta.name}`;
}

/**
 * Istio's short-name rule: a host without a dot is a Service of the object's namespace ("reviews" in "default" is
 * reviews.default.svc.cluster.local); a host with a dot is taken as written, so "reviews.default" names no Service.
 */
export function resolveHost(host: string, namespace: string): string {
  if (host === '*' || host.includes('.') || host.includes(':')) return host;
  return `${host}.${namespace}.${SERVICE_DOMAIN}`;
}

/** A resolved host against a service's name: equal, or a wildcard ("*", "*.shop.svc.cluster.local") covering it. */
export function hostCovers(pattern: string, hostname: string): boolean {
  if (pattern === hostname || pattern === '*') return true;
  return pattern.startsWith('*.') && hostname.endsWith(pattern.slice(1));
}

/** Where the oldest object wins: older creationTimestamp first (none counts as oldest), then "namespace/name". */
export function byAge(a: { metadata: ObjectMeta }, b: { metadata: ObjectMeta }): number {
  const ta = a.metadata.creationTimestamp ?? '';
  const tb = b.metadata.creationTimestamp ?? '';
  if (ta !== tb) return ta < tb ? -1 : 1;
  const ka = `${a.metadata.namespace ?? ''}/${a.metadata.name}`;
  const kb = `${b.metadata.namespace ?? ''}/${b.metadata.name}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

export function selectorMatches(selector: Labels | undefined, labels: Labels): boolean {
  for (const [k, v] of Object.entries(selector ?? {})) if (labels[k] !== v) return false;
  return true;
}

/** The mesh's services and workloads as the compiler looks them up. */
export class Registry {
  private readonly byHostname = new Map<string, ServiceResource>();

  constructor(
    readonly services: ReadonlyMap<string, ServiceResource>,
    readonly workloads: ReadonlyMap<string, WorkloadResource>,
  ) {
    for (const s of services.values()) this.byHostname.set(s.hostname, s);
  }

  /** The service a resolved host names exactly. */
  serviceByHost(host: string): ServiceResource | undefined {
    return this.byHostname.get(host);
  }

  /** A hint for a host that names no service but would with Istio's full form ("reviews.default" → "reviews.default.svc.cluster.local"). */
  hostHint(host: string): string {
    const full = `${host}.${SERVICE_DOMAIN}`;
    if (host.split('.').length === 2 && this.byHostname.has(full)) {
      return `; ${JSON.stringify(host)} has a dot, so Istio (and Strait) take it as a full name: write ${JSON.stringify(host.split('.')[0])} (in the object's namespace) or ${JSON.stringify(full)}`;
    }
    return '';
  }

  /** Services a host pattern covers, exact name first. */
  servicesCovered(pattern: string): ServiceResource[] {
    if (!pattern.includes('*')) {
      const s = this.byHostname.get(pattern);
      return s ? [s] : [];
    }
    return [...this.services.values()].filter((s) => hostCovers(pattern, s.hostname));
  }

  service(key: string): ServiceResource | undefined {
    return this.services.get(key);
  }
}

export function serviceKey(s: { namespace: string; name: string }): string {
  return `${s.namespace}/${s.name}`;
}

/** Header operations with lower-case names; undefined when empty. */
export function headerOps(set?: [string, string][], add?: [string, string][], remove?: string[]): HeaderOps | undefined {
  const out: HeaderOps = {};
  if (set && set.length > 0) out.set = set.map(([n, v]) => [n.toLowerCase(), v]);
  if (add && add.length > 0) out.add = add.map(([n, v]) => [n.toLowerCase(), v]);
  if (remove && remove.length > 0) out.remove = remove.map((n) => n.toLowerCase());
  return out.set || out.add || out.remove ? out : undefined;
}
