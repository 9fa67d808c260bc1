/**
 * The waypoint's primary process with data-plane workers (--workers N > 1, dataplane/workers/protocol.ts): the
 * controller link (one xDS stream, one CA client, one certificate), admin/metrics/readiness and the drain; the
 * traffic (HBONE 15008 and every request) is the workers'.
 */
import type { Logger } from '../common/log.js';
import { formatHostPort } from '../common/net.js';
import { LogLevels } from '../dataplane/runtime/log-levels.js';
import { ProxyRuntime } from '../dataplane/runtime/proxy-runtime.js';
import { FeedRecorder } from '../dataplane/workers/feed-recorder.js';
import { FeedingState } from '../dataplane/workers/feeding-state.js';
import { certOverIpc } from '../dataplane/workers/protocol.js';
import { WorkerPool, workerPoolMetrics } from '../dataplane/workers/primary.js';
import { mergedMetrics, workerMemory } from '../dataplane/workers/worker-metrics.js';
import { connectWaypointController, waypointControlDump, type RunningWaypoint } from './app.js';
import type { WaypointConfig } from './config.js';
import { WaypointMetrics } from './metrics.js';
import { WaypointState } from './waypoint-state.js';

/** A worker that does not answer a /metrics, /config_dump or /connections question this fast is left out of the answer. */
const ASK_TIMEOUT_MS = 2_000;

export async function startWaypointPrimary(cfg: WaypointConfig, given: Logger): Promise<RunningWaypoint> {
  const log = 'waypoint' in given.bindings() ? given : given.child({ waypoint: `${cfg.namespace}/${cfg.name}` });
  const logs = new LogLevels(log, (level) => pool.broadcast({ t: 'log-level', level }));
  const metrics = new WaypointMetrics();
  workerMemory(metrics.registry, 'primary');
  const state = new FeedingState();
  const waypoint = new WaypointState();
  const recorder = new FeedRecorder();
  const controller = connectWaypointController(cfg, { state, subscriptions: recorder.wrap(waypoint.subscriptions()), metrics, logs, log });
  const pool: WorkerPool = new WorkerPool({
    count: cfg.workers, log, drainMs: cfg.drainMs,
    snapshot: () => [...state.snapshot(), ...recorder.snapshot()],
    handlers: {
      // A waypoint has one identity: a worker asking for another is a bug, not a reason for a CSR.
      cert: async (identity) => {
        if (identity !== controller.identity.toString()) throw new Error(`BUG: a worker asked for ${String(identity)}, not the waypoint's identity`);
        return certOverIpc(await controller.certs.get(controller.identity));
      },
    },
    metrics: workerPoolMetrics(metrics.registry, () => pool.readyCount()),
  });
  state.feed = (update) => pool.broadcast({ t: 'state', update });
  recorder.feed = (update) => pool.broadcast({ t: 'state', update });
  controller.certs.on('rotated', (e) => pool.broadcast({ t: 'cert-rotated', identity: e.identity.toString() }));
  try {
    await pool.start();
  } catch (err) {
    controller.close();
    throw err;
  }

  let stopped!: () => void;
  const stoppedP = new Promise<void>((r) => (stopped = r));
  let draining = false;
  let running: Promise<void> | undefined;
  const drain = () => (running ??= (async () => {
    draining = true;
    const startedAt = Date.now();
    const done = await pool.drain((live) => log.info({ drain_ms: cfg.drainMs, workers: cfg.workers, ...live }, 'drain started: no longer accepting; live connections may finish'));
    controller.close();
    await runtime.close();
    log.info({ completed: done.completed, closed: done.closed, duration_ms: Date.now() - startedAt }, 'drain finished; stopped');
    stopped();
  })());
  const close = () => (running ??= (async () => {
    draining = true;
    await pool.close();
    controller.close();
    await runtime.close();
    stopped();
  })());

  const runtime = new ProxyRuntime({
    address: cfg.listenAddress, ports: cfg.ports, backlog: 511, logLevels: logs, drainMs: cfg.drainMs,
    drain: { get draining() { return draining; }, start: drain },
    configDump: async () => {
      const workers = await pool.ask<Record<string, unknown>>('dump', ASK_TIMEOUT_MS);
      const status = new Map(pool.list().map((w) => [w.worker, w]));
      const first = workers.find((w) => w.body)?.body ?? {};
      return {
        ...waypointControlDump(cfg, controller, state, waypoint),
        // Clusters and tracing are computed from the same state in every worker: the first one's stand for all.
        clusters: first.clusters, tracing: first.tracing,
        tunnels: workers.reduce((a, w) => a + Number(w.body?.tunnels ?? 0), 0),
        workers: workers.map((w) => ({ ...status.get(w.worker), ...(w.body ? { tunnels: w.body.tunnels, upstream: w.body.upstream, clusters: w.body.clusters } : { error: w.error }) })),
      };
    },
    connections: async () => {
      const workers = await pool.ask<{ tunnels: number; tcp: unknown[] }>('connections', ASK_TIMEOUT_MS);
      return {
        waypoint: controller.who,
        tunnels: workers.reduce((a, w) => a + (w.body?.tunnels ?? 0), 0),
        tcp: workers.flatMap((w) => (w.body?.tcp ?? []).map((c) => ({ ...(c as object), worker: w.worker }))),
      };
    },
    metrics: () => mergedMetrics(metrics.registry, pool, ASK_TIMEOUT_MS),
    readiness: () => {
      const r = controller.readiness();
      const w = pool.readiness();
      return { ready: r.ready && w.ready, detail: { ...r.detail, ...w.detail } };
    },
  });
  const { admin } = await runtime.listen();
  log.info({ address: cfg.listenAddress, hbone: cfg.ports.hbone, admin: formatHostPort(admin), identity: controller.identity.toString(), workers: pool.list() }, 'waypoint listening');
  return { state, waypoint, identity: controller.identity.toString(), stopped: stoppedP, drain, close };
}
