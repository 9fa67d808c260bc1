/**
 * The controller's admin endpoints (--admin-address): readiness, Prometheus metrics, per-proxy sync state and the
 * configuration in force with its problems.
 */
import { hostname } from 'node:os';
import { AdminServer } from '../common/admin.js';
import type { Logger } from '../common/log.js';
import { formatProblem } from '../common/model/types.js';
import type { ConfigReport } from './config-report.js';
import type { ControllerMetrics } from './metrics.js';
import type { ConfigStore } from './store.js';
import type { MeshViewSource } from './view-source.js';
import type { XdsServer } from './xds/xds-server.js';
import { shortTypeName, syncState, type LeaderStatus, type ProxyStatusReport } from '../common/xds/proxy-status.js';
import { STRAIT_VERSION } from '../common/version.js';

/** Who this controller is, for /debug/proxy-status. */
export interface ControllerIdentity {
  /** Config source names. */
  sources: string[];
  /** The pod name in a cluster (default: the host name). */
  identity?: string;
  /** Default: now. */
  startedAt?: number;
  /** Who leads (default: no election, this controller runs alone). */
  leader?: () => LeaderStatus;
}
import type { LeadershipStatus } from './kube/leader-elector.js';

export function controllerAdmin(o: {
  ready: () => boolean;
  metrics: ControllerMetrics;
  views: MeshViewSource;
  xds: XdsServer;
  store: ConfigStore;
  report: ConfigReport;
  /** Whether this replica leads (writes to the cluster); always leader without leader election. */
  leadership?: () => LeadershipStatus;
  log: Logger;
  self: ControllerIdentity;
}): AdminServer {
  const { metrics, views, xds, store, report } = o;
  const startedAt = o.self.startedAt ?? Date.now();
  const identity = o.self.identity ?? hostname();
  return new AdminServer({
    '/ready': async () => ({ status: o.ready() ? 200 : 503, body: { ready: o.ready() } }),
    '/metrics': async () => ({ status: 200, body: await metrics.registry.metrics(), contentType: metrics.registry.contentType }),
    '/debug/syncz': async () => ({ status: 200, body: { generation: views.generation(), ...(o.leadership ? { leadership: o.leadership() } : {}), proxies: xds.status() } }),
    // What `strait status` shows (as istioctl proxy-status): this controller, and per proxy and type whether it is in step.
    '/debug/proxy-status': async () => {
      const body: ProxyStatusReport = {
        controller: {
          version: STRAIT_VERSION,
          identity,
          pid: process.pid,
          startedAt: new Date(startedAt).toISOString(),
          uptimeSeconds: Math.floor((Date.now() - startedAt) / 1000),
          leader: o.self.leader?.() ?? { election: 'none' },
          generation: views.generation(),
          sources: o.self.sources,
        },
        proxies: xds.status().map((s) => ({
          proxy: s.proxy,
          connectedAt: s.connectedAt,
          peer: s.peer,
          types: Object.fromEntries(Object.entries(s.types).map(([typeUrl, t]) => [shortTypeName(typeUrl), {
            status: syncState(t),
            versionSent: t.versionSent,
            versionAcked: t.versionAcked,
            ...(t.lastAckedAt ? { lastAckedAt: t.lastAckedAt } : {}),
            ...(t.lastNack ? { lastNack: t.lastNack } : {}),
          }])),
        })),
      };
      return { status: 200, body };
    },
    '/debug/configz': async () => {
      const problems = report.problems();
      const v = views.views();
      return {
        status: 200,
        body: {
          objects: store.list().map((obj) => ({ key: obj.key, source: obj.source, object: obj.object })),
          rejected: problems.filter((p) => p.severity === 'error').map((p) => ({ ...p, text: formatProblem(p) })),
          warnings: problems.filter((p) => p.severity === 'warning').map((p) => ({ ...p, text: formatProblem(p) })),
          bindings: views.bindingProblems(),
          mesh: v.l7.mesh,
          // Per waypoint: which object routes each bound service (and which lost), and the policies it enforces.
          waypoints: Object.fromEntries([...v.waypoints].map(([key, w]) => [key, {
            identity: w.ref.identity,
            ...(w.ref.address ? { address: w.ref.address } : {}),
            services: Object.fromEntries([...w.routes].map(([svc, r]) => [svc, { routedBy: r.origin, rules: r.rules.map((rule) => rule.name) }])),
            policies: [...w.policies.keys()],
          }])),
          // HTTPRoute status as Gateway API writes it: per parentRef, Accepted and ResolvedRefs with reasons.
          httpRoutes: Object.fromEntries(v.l7.routeStatus),
          appliedBy: Object.fromEntries(v.l7.appliedBy),
        },
      };
    },
  }, o.log);
}
