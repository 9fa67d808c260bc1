/**
 * The ztunnel's primary process with data-plane workers (--workers N > 1, dataplane/workers/protocol.ts): the
 * controller link (one xDS stream, one CA client), capture, admin/metrics/readiness and the drain; the traffic is the
 * workers'. Answers /config_dump, /connections and /metrics for all of them.
 */
import type { Logger } from '../common/log.js';
import { formatHostPort } from '../common/net.js';
import { TYPE_WORKLOAD } from '../common/xds/resources.js';
import { LogLevels } from '../dataplane/runtime/log-levels.js';
import { ProxyRuntime } from '../dataplane/runtime/proxy-runtime.js';
import { FeedingState } from '../dataplane/workers/feeding-state.js';
import { certOverIpc } from '../dataplane/workers/protocol.js';
import { WorkerPool, workerPoolMetrics } from '../dataplane/workers/primary.js';
import { mergedMetrics, workerMemory } from '../dataplane/workers/worker-metrics.js';
import type { ZtunnelConfig } from './config.js';
import { ztunnelConfigDump } from './config-dump.js';
import { kernelListenBacklog } from './listeners.js';
import { ZtunnelMetrics } from './metrics.js';
import { setUpCapture, type RunningZtunnel } from './app.js';
import { connectController } from './controller-link.js';

/** A worker that does not answer a /metrics, /config_dump or /connections question this fast is left out of the answer. */
const ASK_TIMEOUT_MS = 2_000;

type Dump = { connections: { live: number }; listeners: { address: string; listener: string; backlog: number }[]; fileDescriptors: unknown; ejectedEndpoints: { endpoint: string }[] };

export async function startZtunnelPrimary(cfg: ZtunnelConfig, given: Logger): Promise<RunningZtunnel> {
  const log = 'node' in given.bindings() ? given : given.child({ node: cfg.nodeName });
  const logs = new LogLevels(log, (level) => pool.broadcast({ t: 'log-level', level }));
  const metrics = new ZtunnelMetrics();
  workerMemory(metrics.registry, 'primary');
  const state = new FeedingState();
  const capture = cfg.capture ? await setUpCapture(cfg, state, metrics, logs) : undefined;
  const controller = connectController(cfg, state, metrics, logs, log, (type) => { if (type === TYPE_WORKLOAD) capture?.follow(); });
  const { identities } = controller;
  const pool: WorkerPool = new WorkerPool({
    count: cfg.workers, log, drainMs: cfg.drainMs,
    snapshot: () => state.snapshot(),
    handlers: { cert: async (identity) => certOverIpc(await identities.get(String(identity))) },
    metrics: workerPoolMetrics(metrics.registry, () => pool.readyCount()),
  });
  state.feed = (update) => pool.broadcast({ t: 'state', update });
  identities.store.on('rotated', (e) => pool.broadcast({ t: 'cert-rotated', identity: e.identity.toString() }));
  try {
    await pool.start();
  } catch (err) {
    controller.close();
    await capture?.stop();
    throw err;
  }

  let stopped!: () => void;
  const stoppedP = new Promise<void>((r) => (stopped = r));
  let draining = false;
  let running: Promise<void> | undefined;
  const finish = async () => {
    controller.close();
    // After the workers: removing the rules earlier would send new connections of enrolled pods out unencrypted.
    await capture?.stop();
    await runtime.close();
  };
  const drain = () => (running ??= (async () => {
    draining = true;
    const startedAt = Date.now();
    const done = await pool.drain((live) => log.info({ drain_ms: cfg.drainMs, workers: cfg.workers, ...live }, 'drain started: no longer accepting; live connections may finish'));
    await finish();
    log.info({ completed: done.completed, closed: done.closed, duration_ms: Date.now() - startedAt }, 'drain finished; stopped');
    stopped();
  })());
  const close = () => (running ??= (async () => {
    draining = true;
    await pool.close();
    await finish();
    stopped();
  })());

  const backlog = cfg.listenBacklog ?? kernelListenBacklog();
  const runtime = new ProxyRuntime({
    address: cfg.listenAddress, adminAddress: cfg.adminAddress, ports: cfg.ports, backlog, logLevels: logs, drainMs: cfg.drainMs,
    drain: { get draining() { return draining; }, start: drain },
    configDump: async () => {
      const workers = await pool.ask<Dump>('dump', ASK_TIMEOUT_MS);
      const dumps = workers.flatMap((w) => (w.body ? [w.body] : []));
      const listeners = new Map(dumps.flatMap((d) => d.listeners.map((l) => [l.address, l] as const)));
      const ejected = new Map(dumps.flatMap((d) => d.ejectedEndpoints.map((e) => [e.endpoint, e] as const)));
      const status = new Map(pool.list().map((w) => [w.worker, w]));
      return {
        ...ztunnelConfigDump({ node: cfg.nodeName, controller: controller.status, state, identities, drainMs: cfg.drainMs, ...(capture ? { capture: () => capture.snapshot() } : {}) }),
        connections: { live: dumps.reduce((a, d) => a + d.connections.live, 0) },
        listeners: [...listeners.values()],
        ejectedEndpoints: [...ejected.values()],
        workers: workers.map((w) => ({ ...status.get(w.worker), ...(w.body ? { connections: w.body.connections, fileDescriptors: w.body.fileDescriptors, ejectedEndpoints: w.body.ejectedEndpoints } : { error: w.error }) })),
      };
    },
    connections: async () => {
      const workers = await pool.ask<unknown[]>('connections', ASK_TIMEOUT_MS);
      return { node: cfg.nodeName, connections: workers.flatMap((w) => (w.body ?? []).map((c) => ({ ...(c as object), worker: w.worker }))) };
    },
    metrics: () => {
      if (capture) for (const [st, n] of Object.entries(capture.counts())) metrics.capturePods.set({ state: st }, n);
      return mergedMetrics(metrics.registry, pool, ASK_TIMEOUT_MS);
    },
    readiness: () => {
      const r = controller.readiness();
      const w = pool.readiness();
      const c = capture?.ready();
      return { ready: r.ready && w.ready && (c?.ready ?? true), detail: { ...r.detail, ...w.detail, ...(c ? { capture: c.detail } : {}) } };
    },
  });
  const { admin } = await runtime.listen();
  log.info({ address: cfg.listenAddress, capture: !!capture, admin: formatHostPort(admin), ports: cfg.ports, localPodListeners: cfg.localPodListeners, sameNodeFastPath: cfg.sameNodeFastPath, captureMark: cfg.captureMark, backlog, workers: pool.list() }, 'ztunnel listening');
  return { state, stopped: stoppedP, drain, close };
}
