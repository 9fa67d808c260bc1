/**
 * What the demo shows of its waypoints besides the answers its requests get: the outlier-detection state of each
 * cluster that has one (which endpoints are ejected, until when, how often so far), read from each waypoint's admin
 * `/config_dump` (its `clusters`, as the waypoint itself keeps them). `outliersOf` is pure (tests feed it a dump);
 * `WaypointWatch` asks every waypoint in turn.
 *
 * Invariants: `latest()` is the state of the last completed poll of every waypoint (a waypoint that did not answer
 * keeps no stale clusters: it is listed in `errors` instead); at most one poll runs at a time.
 */
import { errorMessage } from '../common/errors.js';

/** One endpoint of a cluster with outlier detection. */
export interface OutlierEndpoint {
  /** "ip:port" as the waypoint keys it. */
  endpoint: string;
  /** The pod at that address (the endpoint itself when unknown). */
  pod: string;
  ejected: boolean;
  /** Ejected: why ("consecutive_5xx", "consecutive_gateway_failure"). */
  reason?: string;
  /** Ejected: when the waypoint lets it back in (ms since the epoch, the waypoint's clock: the same machine). */
  untilMs?: number;
  /** Times it was ejected so far. */
  ejections: number;
}

/** The outlier state of one cluster (service, port, subset) of one waypoint. */
export interface OutlierView {
  /** "store/waypoint" */
  waypoint: string;
  /** The cluster as the waypoint names it: "store/inventory:80", "store/api:80/v1". */
  cluster: string;
  /** "inventory.store": the service's short name, as the demo's routes name their destinations. */
  service: string;
  port: number;
  subset?: string;
  endpoints: OutlierEndpoint[];
  /** Ejections of this cluster so far. */
  ejectionsTotal: number;
}

export interface WaypointStatus {
  outliers: OutlierView[];
  /** waypoint → why it could not be asked (last poll). */
  errors: Record<string, string>;
}

/** A waypoint the demo asks: its "ns/name" and admin "ip:port". */
export interface WatchedWaypoint {
  key: string;
  admin: string;
}

const CLUSTER_NAME = /^([^/]+)\/([^/:]+):(\d+)(?:\/(.+))?$/;
/** Clusters read from one dump; the demo's have a handful. */
const MAX_CLUSTERS = 1_000;
export const DEFAULT_WAYPOINT_POLL_TIMEOUT_MS = 1_500;

/**
 * The clusters with outlier detection in one waypoint's `/config_dump`; `podAt` names the pod at an "ip:port".
 * Anything not shaped as expected is left out rather than guessed.
 */
export function outliersOf(waypoint: string, dump: unknown, podAt: (endpoint: string) => string | undefined): OutlierView[] {
  const clusters = (dump as { clusters?: unknown } | null)?.clusters;
  if (!Array.isArray(clusters)) return [];
  const out: OutlierView[] = [];
  for (const c of clusters.slice(0, MAX_CLUSTERS) as { name?: unknown; outlier?: unknown }[]) {
    const m = typeof c?.name === 'string' ? CLUSTER_NAME.exec(c.name) : null;
    const o = c?.outlier as { ejected?: unknown; hosts?: unknown; ejectionsTotal?: unknown } | undefined;
    if (!m || !o || !Array.isArray(o.hosts)) continue;
    const ejected = new Map<string, { endpoint?: unknown; reason?: unknown; until?: unknown }>();
    if (Array.isArray(o.ejected)) {
      for (const e of o.ejected as { endpoint?: unknown; reason?: unknown; until?: unknown }[]) if (typeof e?.endpoint === 'string') ejected.set(e.endpoint, e);
    }
    const endpoints: OutlierEndpoint[] = [];
    for (const h of o.hosts as { endpoint?: unknown; ejections?: unknown }[]) {
      if (typeof h?.endpoint !== 'string') continue;
      const e = ejected.get(h.endpoint);
      endpoints.push({
        endpoint: h.endpoint, pod: podAt(h.endpoint) ?? h.endpoint, ejected: e !== undefined,
        ...(typeof e?.reason === 'string' ? { reason: e.reason } : {}), ...(typeof e?.until === 'number' ? { untilMs: e.until } : {}),
        ejections: typeof h.ejections === 'number' ? h.ejections : 0,
      });
    }
    endpoints.sort((a, b) => a.pod.localeCompare(b.pod, 'en', { numeric: true }));
    out.push({
      waypoint, cluster: c.name as string, service: `${m[2]}.${m[1]}`, port: Number(m[3]), ...(m[4] !== undefined ? { subset: m[4] } : {}),
      endpoints, ejectionsTotal: typeof o.ejectionsTotal === 'number' ? o.ejectionsTotal : endpoints.reduce((n, e) => n + e.ejections, 0),
    });
  }
  return out;
}

export class WaypointWatch {
  private state: WaypointStatus = { outliers: [], errors: {} };
  private running: Promise<void> | undefined;

  constructor(
    private readonly waypoints: () => readonly WatchedWaypoint[],
    private readonly podAt: (endpoint: string) => string | undefined,
    private readonly timeoutMs = DEFAULT_WAYPOINT_POLL_TIMEOUT_MS,
  ) {}

  latest(): WaypointStatus {
    return this.state;
  }

  /** Asks every waypoint once (joins a poll that is already running). */
  poll(): Promise<void> {
    return (this.running ??= this.pollAll().finally(() => { this.running = undefined; }));
  }

  private async pollAll(): Promise<void> {
    const outliers: OutlierView[] = [];
    const errors: Record<string, string> = {};
    await Promise.all(this.waypoints().map(async (w) => {
      try {
        const res = await fetch(`http://${w.admin}/config_dump`, { signal: AbortSignal.timeout(this.timeoutMs) });
        if (!res.ok) throw new Error(`GET /config_dump answered ${res.status}`);
        outliers.push(...outliersOf(w.key, await res.json(), this.podAt));
      } catch (err) {
        errors[w.key] = `cannot ask waypoint ${w.key} at ${w.admin}: ${errorMessage(err)}`;
      }
    }));
    outliers.sort((a, b) => a.cluster.localeCompare(b.cluster));
    this.state = { outliers, errors };
  }
}
