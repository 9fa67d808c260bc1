/**
 * `strait waypoint apply|list|delete` against the Kubernetes API: waypoint Gateways (class istio-waypoint) as
 * istioctl makes them, the namespace's istio.io/use-waypoint label, and waiting for the controller to program one.
 */
import { isDeepStrictEqual } from 'node:util';
import { StraitError, errorMessage } from '../../common/errors.js';
import { isKubeApiError, KUBE_TYPES, type KubeClient, type KubeObject, type StoredKubeObject } from '../../common/kube/index.js';
import type { WaypointApplyFlags, WaypointDeleteFlags, WaypointListFlags } from '../waypoint-admin.js';
import { connectKube, type KubeConnection } from './connect.js';
import { USE_WAYPOINT_LABEL, WAYPOINT_CLASS, WAYPOINT_FOR_LABEL, WAYPOINT_LISTENER } from './labels.js';
import { age, asList, formatData, formatTable } from './output.js';
import type { KubeFlags } from './options.js';

export interface Writers { out: (s: string) => void; err: (s: string) => void }

/** What the commands read of a Gateway. */
export interface GatewayObject extends KubeObject {
  spec?: { gatewayClassName?: string; listeners?: { name?: string; port?: number; protocol?: string }[]; addresses?: { type?: string; value?: string }[]; [k: string]: unknown };
  status?: { addresses?: { type?: string; value?: string }[]; conditions?: GatewayCondition[] };
}
export interface GatewayCondition { type: string; status: string; reason?: string; message?: string; observedGeneration?: number }

/** Connects, runs one command, sets the exit status; errors propagate to the CLI's error printer. */
export async function runWaypoint(flags: KubeFlags, env: NodeJS.ProcessEnv, fn: (ops: WaypointOps, w: Writers) => Promise<number>): Promise<void> {
  const kube = await connectKube(flags, env);
  try {
    process.exitCode = await fn(new WaypointOps(kube), { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) });
  } finally {
    kube.close();
  }
}

/** The Gateway `strait waypoint apply` makes (what istioctl waypoint generate prints). */
export function waypointGateway(namespace: string, name: string, forTraffic: string): GatewayObject {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name, namespace, labels: { [WAYPOINT_FOR_LABEL]: forTraffic } },
    spec: { gatewayClassName: WAYPOINT_CLASS, listeners: [{ ...WAYPOINT_LISTENER }] },
  };
}

/** An existing waypoint brought to what apply asks: the label set, the class, an HBONE 15008 listener (others kept). */
export function mergeWaypoint(existing: StoredKubeObject<GatewayObject>, forTraffic: string): StoredKubeObject<GatewayObject> {
  const listeners = existing.spec?.listeners ?? [];
  const hasMesh = listeners.some((l) => l.port === WAYPOINT_LISTENER.port && l.protocol === WAYPOINT_LISTENER.protocol);
  const name = listeners.some((l) => l.name === WAYPOINT_LISTENER.name) ? `${WAYPOINT_LISTENER.name}-hbone` : WAYPOINT_LISTENER.name;
  return {
    ...existing,
    metadata: { ...existing.metadata, labels: { ...existing.metadata.labels, [WAYPOINT_FOR_LABEL]: forTraffic } },
    spec: { ...existing.spec, gatewayClassName: WAYPOINT_CLASS, listeners: hasMesh ? listeners : [{ ...WAYPOINT_LISTENER, name }, ...listeners] },
  };
}

export function programmedCondition(gw: GatewayObject & { metadata?: { generation?: number } }): GatewayCondition | undefined {
  return gw.status?.conditions?.find((c) => c.type === 'Programmed');
}

/** Programmed=True for the Gateway's current generation (a condition about an older spec does not count). */
export function isProgrammed(gw: GatewayObject & { metadata?: { generation?: number } }): boolean {
  const c = programmedCondition(gw);
  if (c?.status !== 'True') return false;
  const gen = gw.metadata?.generation;
  return c.observedGeneration === undefined || gen === undefined || c.observedGeneration >= gen;
}

/** "Accepted=True, Programmed=False (NoResources: waiting for the Deployment)", or why there is no status. */
export function describeConditions(gw: GatewayObject): string {
  const cs = gw.status?.conditions ?? [];
  if (cs.length === 0) return 'the Gateway has no status yet: no controller has picked it up (is the Strait controller running? strait status shows it)';
  return cs.map((c) => `${c.type}=${c.status}${c.reason || c.message ? ` (${[c.reason, c.message].filter(Boolean).join(': ')})` : ''}`).join(', ');
}

export function addressesOf(gw: GatewayObject): string[] {
  return (gw.status?.addresses ?? []).map((a) => a.value ?? '').filter(Boolean);
}

/** 404 about the object itself, not about the resource type (a missing CRD is a different fix). */
function isObjectNotFound(err: unknown): boolean {
  return isKubeApiError(err, 404) && !/does not serve/.test(err.message);
}

const CONFLICT_RETRIES = 5;
const isWaypoint = (gw: GatewayObject) => gw.spec?.gatewayClassName === WAYPOINT_CLASS;

export class WaypointOps {
  private readonly client: KubeClient;
  constructor(private readonly kube: KubeConnection) {
    this.client = kube.client;
  }

  async apply(flags: WaypointApplyFlags, w: Writers): Promise<number> {
    const ns = this.kube.namespace(flags.namespace);
    const name = flags.name;
    const dry = flags.dryRun ? ' (dry run)' : '';
    // Checked before anything is written, so a namespace bound to another waypoint changes nothing.
    let nsLabel: string | undefined;
    if (flags.enrollNamespace) {
      const nsObj = await this.client.get(KUBE_TYPES.Namespace, ns).catch((err: unknown) => {
        throw isObjectNotFound(err) ? new StraitError('STRAIT_ERR_KUBE', `namespace ${ns} does not exist: create it first (kubectl create namespace ${ns}), or pick another with -n`) : err;
      });
      nsLabel = nsObj.metadata.labels?.[USE_WAYPOINT_LABEL];
      if (nsLabel !== undefined && nsLabel !== name && !flags.overwrite) {
        throw new StraitError('STRAIT_ERR_CONFIG', `namespace ${ns} uses waypoint ${nsLabel} (${USE_WAYPOINT_LABEL}=${nsLabel}): pass --overwrite to switch it to ${name}, or leave out --enroll-namespace`);
      }
    }

    let result: StoredKubeObject<GatewayObject> | GatewayObject | undefined;
    let verb = '';
    for (let attempt = 0; ; attempt++) {
      const existing = await this.client.get<GatewayObject>(KUBE_TYPES.Gateway, name, { namespace: ns }).catch((err: unknown) => {
        if (isObjectNotFound(err)) return undefined;
        throw err;
      });
      try {
        if (!existing) {
          const gw = waypointGateway(ns, name, flags.for);
          result = flags.dryRun ? gw : await this.client.create<GatewayObject>(KUBE_TYPES.Gateway, gw, { namespace: ns });
          verb = 'created';
        } else {
          if (!isWaypoint(existing)) {
            throw new StraitError('STRAIT_ERR_CONFIG', `Gateway ${ns}/${name} exists and is not a waypoint (gatewayClassName ${existing.spec?.gatewayClassName ?? 'unset'}): choose another --name`);
          }
          const wanted = mergeWaypoint(existing, flags.for);
          if (isDeepStrictEqual(wanted, existing)) {
            result = existing;
            verb = 'unchanged';
          } else {
            result = flags.dryRun ? wanted : await this.client.replace<GatewayObject>(KUBE_TYPES.Gateway, wanted);
            verb = 'configured';
          }
        }
        break;
      } catch (err) {
        // Someone changed it between our read and write (409 on the stale resourceVersion), or made it meanwhile.
        if (isKubeApiError(err, 409) && attempt < CONFLICT_RETRIES) continue;
        if (isKubeApiError(err, 404) && !existing) throw new StraitError('STRAIT_ERR_KUBE', `cannot create waypoint ${ns}/${name}: ${err.message} (does namespace ${ns} exist?)`, { cause: err });
        throw err;
      }
    }
    if (!flags.output) w.out(`waypoint ${ns}/${name} ${verb}${dry}\n`);

    if (flags.enrollNamespace) {
      if (nsLabel === name) {
        if (!flags.output) w.out(`namespace/${ns} already uses waypoint ${name} (${USE_WAYPOINT_LABEL}=${name})\n`);
      } else {
        if (!flags.dryRun) await this.client.patch(KUBE_TYPES.Namespace, ns, { metadata: { labels: { [USE_WAYPOINT_LABEL]: name } } });
        if (!flags.output) w.out(`namespace/${ns} labeled ${USE_WAYPOINT_LABEL}=${name}${nsLabel !== undefined ? ` (was ${nsLabel})` : ''}${dry}\n`);
      }
    }

    if (flags.wait && !flags.dryRun) {
      result = await this.waitProgrammed(ns, name, flags.timeout);
      if (!flags.output) w.out(`waypoint ${ns}/${name} programmed${addressesOf(result).length > 0 ? ` (address ${addressesOf(result).join(', ')})` : ''}\n`);
    }
    if (flags.output && result) w.out(formatData(flags.output, result));
    return 0;
  }

  /**
   * Until the Gateway is Programmed for its current generation: read it, then watch it from that version; a watch
   * that ends early (the server's timeout, a dropped connection) is opened again from a fresh read.
   */
  async waitProgrammed(ns: string, name: string, timeoutMs: number): Promise<StoredKubeObject<GatewayObject>> {
    const deadline = Date.now() + timeoutMs;
    let last: StoredKubeObject<GatewayObject> | undefined;
    while (Date.now() < deadline) {
      last = await this.client.get<GatewayObject>(KUBE_TYPES.Gateway, name, { namespace: ns });
      if (isProgrammed(last)) return last;
      const left = deadline - Date.now();
      if (left <= 0) break;
      const watch = await this.client.watch<GatewayObject>(KUBE_TYPES.Gateway, {
        namespace: ns, fieldSelector: `metadata.name=${name}`, resourceVersion: last.metadata.resourceVersion, timeoutSeconds: Math.max(1, Math.ceil(left / 1000)),
      });
      const timer = setTimeout(() => watch.close(), left);
      try {
        for await (const ev of watch) {
          if (ev.type === 'DELETED') throw new StraitError('STRAIT_ERR_WAYPOINT_WAIT', `waypoint ${ns}/${name} was deleted while waiting for it to be Programmed`);
          if (ev.type === 'BOOKMARK') continue;
          last = ev.object;
          if (isProgrammed(ev.object)) return ev.object;
        }
      } catch (err) {
        if (err instanceof StraitError && err.code === 'STRAIT_ERR_WAYPOINT_WAIT') throw err;
        // A watch error (410 after compaction, a broken stream): read again and watch from there.
      } finally {
        clearTimeout(timer);
        watch.close();
      }
    }
    const seconds = Math.round(timeoutMs / 1000);
    throw new StraitError('STRAIT_ERR_WAYPOINT_WAIT', `waypoint ${ns}/${name} is not Programmed after ${seconds}s: ${last ? describeConditions(last) : 'it could not be read'}. Raise --timeout, or see why: strait status, and the controller's log`);
  }

  async list(flags: WaypointListFlags, w: Writers): Promise<number> {
    const ns = flags.allNamespaces ? undefined : this.kube.namespace(flags.namespace);
    const { items } = await this.client.listAll<GatewayObject>(KUBE_TYPES.Gateway, ns !== undefined ? { namespace: ns } : {});
    const waypoints = items.filter(isWaypoint).sort((a, b) => (a.metadata.namespace ?? '').localeCompare(b.metadata.namespace ?? '') || a.metadata.name.localeCompare(b.metadata.name));
    if (flags.output !== 'table') {
      w.out(formatData(flags.output, asList(waypoints)));
      return 0;
    }
    if (waypoints.length === 0) {
      w.err(ns !== undefined ? `No waypoints found in ${ns} namespace.\n` : 'No waypoints found.\n');
      return 0;
    }
    const now = Date.now();
    const headers = [...(ns === undefined ? ['NAMESPACE'] : []), 'NAME', 'FOR', 'PROGRAMMED', 'ADDRESS', 'AGE'];
    w.out(formatTable(headers, waypoints.map((gw) => [
      ...(ns === undefined ? [gw.metadata.namespace ?? ''] : []),
      gw.metadata.name,
      gw.metadata.labels?.[WAYPOINT_FOR_LABEL] ?? 'service',
      programmedCondition(gw)?.status ?? 'Unknown',
      addressesOf(gw).join(',') || '<none>',
      age(gw.metadata.creationTimestamp, now),
    ])));
    return 0;
  }

  async delete(names: string[], flags: WaypointDeleteFlags, w: Writers): Promise<number> {
    if (flags.all && names.length > 0) throw new StraitError('STRAIT_ERR_CONFIG', 'give waypoint names or --all, not both');
    if (!flags.all && names.length === 0) throw new StraitError('STRAIT_ERR_CONFIG', 'give the names of the waypoints to delete, or --all for every waypoint of the namespace');
    const ns = this.kube.namespace(flags.namespace);
    let targets = names;
    if (flags.all) {
      const { items } = await this.client.listAll<GatewayObject>(KUBE_TYPES.Gateway, { namespace: ns });
      targets = items.filter(isWaypoint).map((g) => g.metadata.name).sort();
      if (targets.length === 0) {
        w.err(`No waypoints found in ${ns} namespace.\n`);
        return 0;
      }
    }
    let failed = 0;
    const deleted: string[] = [];
    for (const name of targets) {
      try {
        const gw = await this.client.get<GatewayObject>(KUBE_TYPES.Gateway, name, { namespace: ns });
        if (!isWaypoint(gw)) throw new StraitError('STRAIT_ERR_CONFIG', `Gateway ${ns}/${name} is not a waypoint (gatewayClassName ${gw.spec?.gatewayClassName ?? 'unset'}): not deleted (kubectl delete gateway deletes any Gateway)`);
        await this.client.delete(KUBE_TYPES.Gateway, name, { namespace: ns, preconditions: { uid: gw.metadata.uid ?? '' } });
        deleted.push(name);
        w.out(`waypoint ${ns}/${name} deleted\n`);
      } catch (err) {
        failed++;
        const why = isObjectNotFound(err) ? `waypoint ${ns}/${name} not found` : errorMessage(err);
        w.err(`strait: ${err instanceof StraitError ? `[${err.code}] ` : ''}${why}\n`);
      }
    }
    if (deleted.length > 0) {
      // A namespace still bound to a deleted waypoint sends its services' traffic to no waypoint: say so.
      const nsObj = await this.client.get(KUBE_TYPES.Namespace, ns).catch(() => undefined);
      const uses = nsObj?.metadata.labels?.[USE_WAYPOINT_LABEL];
      if (uses !== undefined && deleted.includes(uses)) {
        w.err(`warning: namespace ${ns} still has ${USE_WAYPOINT_LABEL}=${uses}: remove the label (kubectl label namespace ${ns} ${USE_WAYPOINT_LABEL}-) or apply the waypoint again\n`);
      }
    }
    return failed > 0 ? 1 : 0;
  }
}
