import { createHash } from 'node:crypto';
import { StraitError } from '../common/errors.js';
import type { ProxyInfo, ResourceEntry, ResourceSet, ViewSource } from '../common/xds/types.js';
import {
  TYPE_AUTHORIZATION, TYPE_POLICY, TYPE_ROUTE, TYPE_SERVICE, TYPE_WORKLOAD, WAYPOINT_TYPES, ZTUNNEL_TYPES,
} from '../common/xds/resources.js';
import type { ConfigStore } from './store.js';
import { ENDPOINT_KINDS, computeViews, type BindingProblem, type MeshViews, type ViewOptions } from './views.js';

export const ZTUNNEL_VIEW = 'ztunnel';
const EMPTY: ResourceSet = new Map();

function versionOf(body: unknown): string {
  return createHash('sha256').update(JSON.stringify(body)).digest('base64url').slice(0, 16);
}

/**
 * Serves the store's objects as xDS resource sets, per shared view ("ztunnel" for all ztunnels,
 * "waypoint/<ns>/<name>" per waypoint). Recomputes lazily after a change.
 * Invariant: an unchanged resource keeps the very same ResourceEntry object across generations, so the
 * xDS server can diff generations by identity.
 */
export class MeshViewSource implements ViewSource {
  private gen = 0;
  private dirty = true;
  /** Whether a change touched what workloads and services are computed from (else they are reused). */
  private endpointsDirty = true;
  private sets = new Map<string, ResourceSet>(); // `${viewKey}\n${typeUrl}` → set
  private lastViews: MeshViews | undefined;
  private readonly listeners = new Set<(changedAt: number) => void>();

  constructor(private readonly store: ConfigStore, private readonly opts: ViewOptions) {
    store.on('change', (c) => {
      this.dirty = true;
      for (const key of [...c.added, ...c.updated, ...c.removed]) {
        if (ENDPOINT_KINDS.has(key.slice(0, key.indexOf('/')))) this.endpointsDirty = true;
      }
      for (const l of this.listeners) l(c.changedAt);
    });
  }

  viewKeyFor(proxy: ProxyInfo): string {
    if (proxy.kind === 'waypoint') {
      if (!proxy.namespace || !proxy.name) {
        throw new StraitError('STRAIT_ERR_XDS_PROTOCOL', `waypoint ${proxy.id} did not say which Gateway it serves (node.namespace and node.name are required for kind "waypoint")`);
      }
      return `waypoint/${proxy.namespace}/${proxy.name}`;
    }
    return ZTUNNEL_VIEW;
  }

  typeUrlsFor(proxy: ProxyInfo): readonly string[] {
    return proxy.kind === 'waypoint' ? WAYPOINT_TYPES : proxy.kind === 'debug' ? [...new Set([...ZTUNNEL_TYPES, ...WAYPOINT_TYPES])] : ZTUNNEL_TYPES;
  }

  resources(viewKey: string, typeUrl: string): ResourceSet {
    this.refresh();
    return this.sets.get(`${viewKey}\n${typeUrl}`) ?? this.sets.get(`*\n${typeUrl}`) ?? EMPTY;
  }

  generation(): number {
    this.refresh();
    return this.gen;
  }

  onChange(listener: (changedAt: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The last computed views (for /debug/configz and the CA's authorization). */
  views(): MeshViews {
    this.refresh();
    return this.lastViews!;
  }

  bindingProblems(): BindingProblem[] {
    return this.views().problems;
  }

  private refresh(): void {
    if (!this.dirty) return;
    this.dirty = false;
    const prev = this.lastViews;
    const v = computeViews(this.store.meshObjects(), this.opts, prev && !this.endpointsDirty ? prev : undefined);
    this.endpointsDirty = false;
    this.lastViews = v;
    const next = new Map<string, ResourceSet>();
    const put = (viewKey: string, typeUrl: string, bodies: Map<string, unknown>) => {
      const k = `${viewKey}\n${typeUrl}`;
      const old = this.sets.get(k);
      // Bodies reused from the previous computation are unchanged: keep their set without re-hashing.
      next.set(k, old && prev && (bodies === prev.workloads || bodies === prev.services) ? old : this.stable(old, bodies));
    };
    // Workloads and services are the same for every proxy: one set, shared by all views.
    put('*', TYPE_WORKLOAD, v.workloads);
    put('*', TYPE_SERVICE, v.services);
    put(ZTUNNEL_VIEW, TYPE_AUTHORIZATION, v.authorizations);
    for (const [key, wp] of v.waypoints) {
      put(`waypoint/${key}`, TYPE_ROUTE, wp.routes);
      put(`waypoint/${key}`, TYPE_POLICY, wp.policies);
    }
    this.sets = next;
    this.gen++;
  }

  private stable(prev: ResourceSet | undefined, bodies: Map<string, unknown>): ResourceSet {
    const out = new Map<string, ResourceEntry>();
    let same = prev !== undefined && prev.size === bodies.size;
    for (const [name, body] of bodies) {
      const version = versionOf(body);
      const old = prev?.get(name);
      if (old && old.version === version) out.set(name, old);
      else {
        same = false;
        out.set(name, { name, version, body });
      }
    }
    // Nothing changed: hand back the very same set, so the xDS server can skip it by identity.
    return same ? prev! : out;
  }
}
