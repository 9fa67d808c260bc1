/**
 * Keeps the cluster's waypoint objects in step with the waypoint Gateways in the store: for each Gateway of class
 * istio-waypoint, its Deployment, Service, ServiceAccount (when missing) and the namespace's root ConfigMap, and the
 * Gateway's status; for a Gateway that went away, its objects (the API server's garbage collector deletes them through
 * their owner references too; this covers clusters where it does not run).
 *
 * Invariants: only the leader writes, and it checks `isLeader()` before every write; one pass runs at a time; an
 * object is written only when what it says differs from what it should (`covers`), and the status only when the
 * computed one differs, so passes over an unchanged cluster write nothing. Objects this controller does not own
 * (no controller ownerReference to the Gateway) are never modified or deleted.
 */
import { isDeepStrictEqual } from 'node:util';
import { errorMessage } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import type { Gateway } from '../../common/model/types.js';
import { RateLimitedLog } from '../../common/rate-limited-log.js';
import type { ConfigStore, StoreChange } from '../store.js';
import { waypointStatus } from './gateway-status.js';
import { isConflict, isNotFound } from './kube-errors.js';
import { describeRef, refOf, type ObjectApi, type ObjectRef } from './object-api.js';
import { covers, overlay, renderRootConfigMap, renderWaypoint, type KubeGateway, type KubeObject, type WaypointRenderOptions } from './waypoint-objects.js';

export const GATEWAY_API_VERSION = 'gateway.networking.k8s.io/v1';
export const DEFAULT_WAYPOINT_RESYNC_MS = 60_000;
const DEBOUNCE_MS = 100;
const RETRY_MS = 5_000;

export interface WaypointReconcilerOptions {
  api: ObjectApi;
  store: ConfigStore;
  isLeader: () => boolean;
  render: WaypointRenderOptions;
  gatewayClass: string;
  rootCertPem: string;
  logger: Logger;
  /** Full pass period (catches objects deleted or edited behind our back). */
  resyncMs?: number;
  /** Counts each write (verb, kind) for strait_kube_writes_total. */
  onWrite?: (verb: 'create' | 'update' | 'delete' | 'status', kind: string) => void;
}

/** "ns/name" of a Gateway or Service key "Kind/ns/name". */
function nsName(key: string): string | undefined {
  const m = /^(?:Gateway|Service)\/([^/]+)\/([^/]+)$/.exec(key);
  return m ? `${m[1]}/${m[2]}` : undefined;
}

export class WaypointReconciler {
  private readonly o: WaypointReconcilerOptions;
  private readonly errors: RateLimitedLog;
  /** Waypoints to look at in the next pass ("ns/name"); `all` asks for every one (and the clean-up of gone ones). */
  private pending = new Set<string>();
  private all = false;
  /** The uid and ServiceAccount of each waypoint Gateway this replica has reconciled, to clean up after it when it goes. */
  private readonly known = new Map<string, { uid: string; serviceAccount: string }>();
  private timer: NodeJS.Timeout | undefined;
  private dueAt = 0;
  private resync: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private closed = false;
  private readonly onChange = (c: StoreChange) => {
    for (const key of [...c.added, ...c.updated, ...c.removed]) {
      const k = nsName(key);
      if (k) this.pending.add(k);
    }
    if (this.pending.size) this.schedule(DEBOUNCE_MS);
  };

  constructor(o: WaypointReconcilerOptions) {
    this.o = o;
    this.errors = new RateLimitedLog({ logger: o.logger, level: 'warn', msg: 'cannot update a waypoint\'s objects; retrying', what: 'waypoint reconcile errors', burst: 3 });
  }

  start(): void {
    this.o.store.on('change', this.onChange);
    this.resync = setInterval(() => this.reconcileAll(), this.o.resyncMs ?? DEFAULT_WAYPOINT_RESYNC_MS);
    this.resync.unref();
    this.reconcileAll();
  }

  /** A full pass soon (on becoming leader, and periodically). */
  reconcileAll(): void {
    this.all = true;
    this.schedule(0);
  }

  /** Resolves when no pass is running or due soon (a retry of failed work, seconds away, does not count). */
  async idle(): Promise<void> {
    while (this.running || (this.timer && this.dueAt - Date.now() <= DEBOUNCE_MS)) {
      await (this.running ?? new Promise((r) => setTimeout(r, 10)));
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.o.store.off('change', this.onChange);
    clearTimeout(this.timer);
    clearInterval(this.resync);
    this.timer = undefined;
    await this.running;
    this.errors.close();
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    if (this.timer) {
      // Sooner work (a change) does not wait behind a later retry.
      if (this.dueAt <= Date.now() + ms) return;
      clearTimeout(this.timer);
    }
    this.dueAt = Date.now() + ms;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.running) return this.schedule(DEBOUNCE_MS);
      this.running = this.pass().finally(() => { this.running = undefined; });
    }, ms);
  }

  private waypointGateways(): Map<string, Gateway> {
    const out = new Map<string, Gateway>();
    for (const { object } of this.o.store.list()) {
      if (object.kind === 'Gateway' && object.spec.gatewayClassName === this.o.gatewayClass) out.set(`${object.metadata.namespace}/${object.metadata.name}`, object);
    }
    return out;
  }

  private async pass(): Promise<void> {
    if (!this.o.isLeader()) {
      // Not ours to write: the leader does it. Forget the work; becoming leader starts a full pass.
      this.pending.clear();
      this.all = false;
      return;
    }
    const gateways = this.waypointGateways();
    const keys = this.all ? new Set([...gateways.keys(), ...this.known.keys()]) : this.pending;
    const full = this.all;
    this.all = false;
    this.pending = new Set();
    const failed: string[] = [];
    for (const key of keys) {
      if (this.closed || !this.o.isLeader()) return;
      try {
        if (gateways.has(key)) await this.reconcile(key);
        else if (this.known.has(key)) await this.cleanUp(key, this.known.get(key)!);
      } catch (err) {
        failed.push(key);
        this.errors.record('reconcile_error', { waypoint: key, err: errorMessage(err) });
      }
    }
    if (full) {
      try {
        await this.ensure(renderRootConfigMap(this.o.render.systemNamespace, this.o.rootCertPem));
      } catch (err) {
        this.errors.record('reconcile_error', { configMap: `${this.o.render.systemNamespace}/strait-ca-root`, err: errorMessage(err) });
      }
    }
    if (failed.length) {
      for (const k of failed) this.pending.add(k);
      this.schedule(RETRY_MS);
    }
  }

  private write<T>(verb: 'create' | 'update' | 'delete' | 'status', ref: ObjectRef, f: () => Promise<T>): Promise<T> | undefined {
    if (!this.o.isLeader()) return undefined;
    this.o.onWrite?.(verb, ref.kind);
    this.o.logger.debug({ verb, object: describeRef(ref) }, 'writing to the cluster');
    return f();
  }

  /** Creates `desired` if absent, updates it if it says something else; never touches an object we do not own. */
  private async ensure(desired: KubeObject, owner?: KubeGateway, createOnly = false): Promise<KubeObject | undefined> {
    const ref = refOf(desired);
    const actual = await this.o.api.get(ref);
    if (!actual) {
      try {
        return await this.write('create', ref, () => this.o.api.create(desired));
      } catch (err) {
        if (isConflict(err)) return this.o.api.get(ref); // created meanwhile (another writer, or our last pass)
        throw err;
      }
    }
    if (createOnly) return actual;
    if (owner && !actual.metadata.ownerReferences?.some((r) => r.controller && r.uid === owner.metadata.uid)) {
      throw Object.assign(new Error(`${describeRef(ref)} exists and is not owned by Gateway ${owner.metadata.namespace}/${owner.metadata.name}: rename or delete it`), { notOurs: true });
    }
    if (covers(actual, desired)) return actual;
    return this.write('update', ref, () => this.o.api.replace(overlay(actual, desired)));
  }

  private async reconcile(key: string): Promise<void> {
    const [namespace, name] = key.split('/') as [string, string];
    const gw = await this.o.api.get<KubeGateway>({ apiVersion: GATEWAY_API_VERSION, kind: 'Gateway', namespace, name });
    if (!gw || gw.spec.gatewayClassName !== this.o.gatewayClass) {
      if (this.known.has(key)) await this.cleanUp(key, this.known.get(key)!);
      return;
    }
    const objs = renderWaypoint(gw, this.o.render);
    this.known.set(key, { uid: gw.metadata.uid, serviceAccount: objs.serviceAccount.metadata.name });
    let failure: string | undefined;
    let clusterIP: string | undefined;
    try {
      await this.ensure(objs.serviceAccount, undefined, true);
      await this.ensure(renderRootConfigMap(namespace, this.o.rootCertPem, this.namespaceOwners(namespace, gw)));
      await this.ensure(objs.deployment, gw);
      const svc = await this.ensure(objs.service, gw);
      const ip = (svc?.['spec'] as { clusterIP?: string } | undefined)?.clusterIP;
      if (ip && ip !== 'None') clusterIP = ip;
    } catch (err) {
      if (!(err as { notOurs?: boolean }).notOurs) throw err;
      failure = errorMessage(err);
    }
    await this.writeStatus(gw, { ...(clusterIP ? { clusterIP } : {}), ...(failure ? { failure } : {}) });
    if (failure) throw new Error(failure);
  }

  /** The namespace's waypoint Gateways (uids from the store, this one's from the API) that own its root ConfigMap. */
  private namespaceOwners(namespace: string, gw: KubeGateway): KubeGateway[] {
    const owners: KubeGateway[] = [gw];
    for (const [key, g] of this.waypointGateways()) {
      if (g.metadata.namespace !== namespace || g.metadata.name === gw.metadata.name) continue;
      const uid = g.metadata.uid ?? this.known.get(key)?.uid;
      if (uid) owners.push({ apiVersion: gw.apiVersion, kind: 'Gateway', metadata: { ...g.metadata, uid }, spec: g.spec });
    }
    return owners;
  }

  private async writeStatus(gw: KubeGateway, facts: { clusterIP?: string; failure?: string }): Promise<void> {
    let live = gw;
    for (let tries = 0; tries < 3; tries++) {
      const status = waypointStatus(live, facts, new Date().toISOString());
      if (isDeepStrictEqual(status, live.status ?? {})) return;
      const ref = refOf(live as unknown as KubeObject);
      try {
        await this.write('status', ref, () => this.o.api.replaceStatus({ ...(live as unknown as KubeObject), status }));
        this.o.logger.info({ waypoint: `${gw.metadata.namespace}/${gw.metadata.name}`, programmed: status.conditions?.find((c) => c.type === 'Programmed')?.status, address: facts.clusterIP }, 'waypoint Gateway status updated');
        return;
      } catch (err) {
        if (!isConflict(err)) throw err;
        const again = await this.o.api.get<KubeGateway>(ref);
        if (!again || again.metadata.uid !== gw.metadata.uid) return;
        live = again;
      }
    }
  }

  /** The Gateway is gone: delete what it owned (by controller ownerReference to its uid). */
  private async cleanUp(key: string, { uid, serviceAccount }: { uid: string; serviceAccount: string }): Promise<void> {
    const [namespace, name] = key.split('/') as [string, string];
    const gone = await this.o.api.get<KubeGateway>({ apiVersion: GATEWAY_API_VERSION, kind: 'Gateway', namespace, name });
    if (gone && gone.metadata.uid === uid && gone.spec.gatewayClassName === this.o.gatewayClass) return; // still there (store behind)
    const refs: ObjectRef[] = [
      { apiVersion: 'apps/v1', kind: 'Deployment', namespace, name },
      { apiVersion: 'v1', kind: 'Service', namespace, name },
      { apiVersion: 'v1', kind: 'ServiceAccount', namespace, name: serviceAccount },
    ];
    for (const ref of refs) {
      const o = await this.o.api.get(ref);
      if (!o || !o.metadata.ownerReferences?.some((r) => r.controller && r.uid === uid)) continue;
      try {
        await this.write('delete', ref, () => this.o.api.delete(ref));
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    this.known.delete(key);
    this.o.logger.info({ waypoint: key }, 'waypoint Gateway deleted: removed its Deployment and Service');
  }
}

