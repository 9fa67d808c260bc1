/**
 * A ztunnel data-plane worker (--workers N > 1, dataplane/workers/protocol.ts): the data path of startDataPlane,
 * with a state fed by the primary and certificates asked from it. No controller link, no capture, no admin ports.
 */
import type { Logger } from '../common/log.js';
import { LogLevels } from '../dataplane/runtime/log-levels.js';
import { ProxyState } from '../dataplane/state/proxy-state.js';
import { applyToProxyState } from '../dataplane/workers/feeding-state.js';
import { primaryCertFetch } from '../dataplane/workers/cert-fetch.js';
import { PrimaryLink } from '../dataplane/workers/worker.js';
import type { RequestHandler } from '../dataplane/workers/requests.js';
import { perWorkerMetrics, workerReports } from '../dataplane/workers/worker-metrics.js';
import type { ZtunnelConfig } from './config.js';
import { readProcSelfLimits, resolveFdLimits } from './fd-guard.js';
import { ZtunnelIdentities } from './identities.js';
import { SpiffeId } from '../identity/index.js';
import { ZtunnelMetrics } from './metrics.js';
import type { NofileLimit } from './capture/original-dst.js';
import { startDataPlane } from './app.js';

export async function runZtunnelWorker(cfg: ZtunnelConfig, root: Logger, nofile: NofileLimit | { error: string }): Promise<void> {
  const state = new ProxyState();
  // Filled once the data path is up; the primary's requests before that are answered with an error.
  const handlers: Record<string, RequestHandler> = {};
  let logs: LogLevels | undefined;
  const link = await PrimaryLink.connect({
    log: root,
    apply: (u) => { if (!applyToProxyState(state, u)) root.warn({ store: u.store }, 'BUG: state update for an unknown store'); },
    handlers,
    onLogLevel: (level) => logs?.set(level),
  });
  const log = root.child({ worker: link.slot });
  logs = new LogLevels(log);
  const fdLimits = resolveFdLimits(nofile, readProcSelfLimits());
  const metrics = new ZtunnelMetrics();
  const perWorker = perWorkerMetrics(metrics.registry, String(link.slot));
  let identities: ZtunnelIdentities | undefined;
  // The primary logs every certificate issued, renewed or refused once for the node: a worker's copies stay quiet
  // but for errors (a logger outside LogLevels, so /logging does not make them loud again).
  const certLog = log.child({ part: 'certs' }, { level: 'error' });
  identities = new ZtunnelIdentities(state, cfg.nodeName, primaryCertFetch(link, (id) => identities?.peek(id)?.certChainPem[0]), certLog);
  // A certificate the primary obtained: fetch it now if this worker has none (it may be backing off after the
  // primary's earlier failure), rather than at the end of its own backoff.
  link.on('cert-rotated', (identity) => {
    if (identities?.peek(identity) === undefined) identities?.store.refresh(SpiffeId.parse(identity));
  });
  const dp = await startDataPlane(cfg, { state, identities, metrics, logs, log, fdLimits, onAccept: perWorker.accepted }).catch((err: unknown) => {
    link.failed(err);
    return undefined;
  });
  if (!dp) return;
  identities.sync(); // the snapshot came before the identities existed

  Object.assign(handlers, workerReports(dp, metrics.registry));

  // Ready once it listens (it does by now) and holds a certificate for every local identity; said on each change.
  let last: boolean | undefined;
  const report = () => {
    const certs = identities!.allReady();
    if (certs === last) return;
    last = certs;
    link.ready(certs, certs ? {} : { certificates: 'waiting for workload certificates' });
  };
  state.on('workloads', report);
  identities.store.on('rotated', report);
  link.serve(dp);
  report();
  log.info('worker serving');
}
