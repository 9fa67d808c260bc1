import { EventEmitter } from 'node:events';
import { normalizeIp } from '../../common/net.js';
import type { AuthorizationResource, ServiceResource, WorkloadResource } from '../../common/xds/resources.js';

export interface StateEvents {
  /** Workloads or services changed (local pod listeners, certificate prefetch follow this). */
  workloads: [];
  /** Authorization or peer-authentication policies changed (live connections are re-checked). */
  policies: [];
}

/**
 * What every reader of the proxy state sees: lookups and change events, no writes (STYLE: one writer of state).
 */
export interface ProxyStateView {
  readonly workloads: ReadonlyMap<string, WorkloadResource>;
  readonly services: ReadonlyMap<string, ServiceResource>;
  readonly policies: ReadonlyMap<string, AuthorizationResource>;
  workloadByAddress(ip: string): WorkloadResource | undefined;
  serviceByVip(ip: string): ServiceResource | undefined;
  /** "name.ns.svc.cluster.local", "name.ns.svc" or "name.ns" (a trailing dot is ignored). */
  serviceByHostname(host: string): ServiceResource | undefined;
  /** Enrolled workloads scheduled on `node`. */
  localWorkloads(node: string): WorkloadResource[];
  on(event: keyof StateEvents, listener: () => void): unknown;
}

/**
 * A proxy's view of the mesh: workloads, services and policies from the controller.
 * Invariants: only startStateSync (state-sync.ts) calls the `apply*` methods (one writer; in a data-plane worker, the
 * IPC feed from its primary instead, dataplane/workers); every index is rebuilt from the
 * primary maps in the same call, so readers never see an index disagree with its map.
 */
export class ProxyState extends EventEmitter<StateEvents> implements ProxyStateView {
  readonly workloads = new Map<string, WorkloadResource>();
  readonly services = new Map<string, ServiceResource>();
  readonly policies = new Map<string, AuthorizationResource>();
  private byAddress = new Map<string, WorkloadResource>();
  private byVip = new Map<string, ServiceResource>();
  private byHost = new Map<string, ServiceResource>();

  applyWorkloads(added: WorkloadResource[], removed: string[]): void {
    for (const name of removed) this.workloads.delete(name);
    for (const w of added) this.workloads.set(w.uid, w);
    const idx = new Map<string, WorkloadResource>();
    for (const w of this.workloads.values()) for (const a of w.addresses) idx.set(normalizeIp(a), w);
    this.byAddress = idx;
    this.emit('workloads');
  }

  applyServices(added: ServiceResource[], removed: string[]): void {
    for (const name of removed) this.services.delete(name);
    for (const s of added) this.services.set(`${s.namespace}/${s.name}`, s);
    const vips = new Map<string, ServiceResource>();
    const hosts = new Map<string, ServiceResource>();
    for (const s of this.services.values()) {
      for (const v of s.vips) vips.set(normalizeIp(v), s);
      for (const h of [s.hostname, `${s.name}.${s.namespace}.svc`, `${s.name}.${s.namespace}`]) hosts.set(h, s);
    }
    this.byVip = vips;
    this.byHost = hosts;
    this.emit('workloads');
  }

  applyPolicies(added: { name: string; body: AuthorizationResource }[], removed: string[]): void {
    for (const name of removed) this.policies.delete(name);
    for (const p of added) this.policies.set(p.name, p.body);
    this.emit('policies');
  }

  workloadByAddress(ip: string): WorkloadResource | undefined {
    return this.byAddress.get(normalizeIp(ip));
  }

  serviceByVip(ip: string): ServiceResource | undefined {
    return this.byVip.get(normalizeIp(ip));
  }

  /** "name.ns.svc.cluster.local", "name.ns.svc" or "name.ns" (a trailing dot is ignored). */
  serviceByHostname(host: string): ServiceResource | undefined {
    return this.byHost.get(host.toLowerCase().replace(/\.$/, ''));
  }

  /** Enrolled workloads scheduled on `node`. */
  localWorkloads(node: string): WorkloadResource[] {
    return [...this.workloads.values()].filter((w) => w.node === node && w.protocol === 'HBONE');
  }
}
