/**
 * A waypoint data-plane worker (--workers N > 1, dataplane/workers/protocol.ts): the data path of
 * startWaypointDataPlane, with states fed by the primary and the waypoint's certificate asked from it.
 */
import type { Logger } from '../common/log.js';
import { LogLevels } from '../dataplane/runtime/log-levels.js';
import { ProxyState } from '../dataplane/state/proxy-state.js';
import { primaryCertFetch } from '../dataplane/workers/cert-fetch.js';
import { applyToSubscriptions } from '../dataplane/workers/feed-recorder.js';
import { applyToProxyState } from '../dataplane/workers/feeding-state.js';
import type { RequestHandler } from '../dataplane/workers/requests.js';
import { PrimaryLink } from '../dataplane/workers/worker.js';
import { perWorkerMetrics, workerReports } from '../dataplane/workers/worker-metrics.js';
import { CertStore, SpiffeId } from '../identity/index.js';
import { startWaypointDataPlane } from './app.js';
import type { WaypointConfig } from './config.js';
import { WaypointMetrics } from './metrics.js';
import { WaypointState } from './waypoint-state.js';

export async function runWaypointWorker(cfg: WaypointConfig, root: Logger): Promise<void> {
  const state = new ProxyState();
  const waypoint = new WaypointState();
  const subscriptions = waypoint.subscriptions();
  const handlers: Record<string, RequestHandler> = {};
  let logs: LogLevels | undefined;
  const link = await PrimaryLink.connect({
    log: root,
    apply: (u) => { if (!applyToProxyState(state, u) && !applyToSubscriptions(subscriptions, u)) root.warn({ store: u.store }, 'BUG: state update for an unknown store'); },
    handlers,
    onLogLevel: (level) => logs?.set(level),
  });
  const log = root.child({ worker: link.slot });
  logs = new LogLevels(log);
  const metrics = new WaypointMetrics();
  const perWorker = perWorkerMetrics(metrics.registry, String(link.slot), 'tunnels');
  const identity = SpiffeId.of(cfg.trustDomain, cfg.namespace, cfg.serviceAccount);
  // Quiet but for errors: the primary logs the waypoint's certificate once (see the ztunnel's worker).
  let certs: CertStore | undefined;
  certs = new CertStore({ fetch: primaryCertFetch(link, () => certs?.peek(identity)?.certChainPem[0]), logger: log.child({ part: 'certs' }, { level: 'error' }) });
  link.on('cert-rotated', () => { if (certs?.peek(identity) === undefined) certs?.refresh(identity); });
  certs.prefetch(identity).catch(() => undefined);
  const dp = await startWaypointDataPlane(cfg, { state, waypoint, identity, certs, metrics, logs, log, onTunnel: perWorker.accepted }).catch((err: unknown) => {
    link.failed(err);
    return undefined;
  });
  if (!dp) return;
  Object.assign(handlers, workerReports(dp, metrics.registry));
  let last: boolean | undefined;
  const report = () => {
    const ready = certs!.peek(identity) !== undefined;
    if (ready === last) return;
    last = ready;
    link.ready(ready, ready ? {} : { certificate: 'waiting for the waypoint certificate' });
  };
  certs.on('rotated', report);
  link.serve(dp);
  report();
  log.info('worker serving');
}
