/**
 * The ztunnel process (DESIGN §2, §6): the only place its concrete classes are wired together. Nothing here
 * decides anything: each part is built, handed what it needs, and started.
 */
import { StraitError, errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { formatHostPort } from '../common/net.js';
import { TYPE_WORKLOAD } from '../common/xds/resources.js';
import { ConnectionTracker } from '../dataplane/connections.js';
import { UpstreamConnector } from '../dataplane/connector.js';
import { Drain } from '../dataplane/runtime/drain.js';
import { LogLevels } from '../dataplane/runtime/log-levels.js';
import { ProxyRuntime } from '../dataplane/runtime/proxy-runtime.js';
import { ProxyState } from '../dataplane/state/proxy-state.js';
import { HbonePool, HboneServer } from '../hbone/index.js';
import { CaptureScripts } from './capture/capture-scripts.js';
import { captureAddonError, connectMarked, type NofileLimit } from './capture/original-dst.js';
import { PodCapture } from './capture/pod-capture.js';
import type { ZtunnelConfig } from './config.js';
import { dataPlaneDump, ztunnelConfigDump } from './config-dump.js';
import { FdGuard, readProcSelfLimits, resolveFdLimits, type FdLimits } from './fd-guard.js';
import type { ZtunnelIdentities } from './identities.js';
import { Listeners, kernelListenBacklog } from './listeners.js';
import { ZtunnelMetrics } from './metrics.js';
import { PodListeners } from './pod-listeners.js';
import { Ejector } from './proxy/ejector.js';
import { DEFAULT_EJECTION_MAX_ENTRIES } from './proxy/endpoint-health.js';
import { InboundHandler } from './proxy/inbound.js';
import { LocalPath, sameNodeConnectionsCounter } from './proxy/local-path.js';
import { OutboundHandler } from './proxy/outbound.js';
import { roundRobin } from './proxy/request.js';
import { openTrafficPorts } from './traffic-ports.js';

export interface RunningZtunnel {
  state: ProxyState;
  /** Resolves when the ztunnel has stopped (after close(), drain() or /quitquitquit). */
  stopped: Promise<void>;
  /**
   * What SIGTERM and /quitquitquit do: stop accepting, let live connections finish for `drainMs`, then close the
   * rest and stop. Resolves when stopped.
   */
  drain(): Promise<void>;
  /** Stops at once, closing every connection. */
  close(): Promise<void>;
}

interface DataPathParts {
  state: ProxyState;
  tracker: ConnectionTracker;
  identities: ZtunnelIdentities;
  metrics: ZtunnelMetrics;
  logs: LogLevels;
  log: Logger;
  /** The fd guard, built after the data path (it counts the data path's sockets). */
  fd: () => FdGuard;
}

/** The pool, the upstream connector, the inbound and outbound handlers and the HBONE server. */
function buildDataPath(cfg: ZtunnelConfig, p: DataPathParts) {
  const { state, tracker, identities, metrics, logs, log } = p;
  // Under capture the ztunnel's own sockets to pods carry the mark the iptables rules skip; otherwise they would be
  // redirected straight back to the ztunnel.
  const mark = cfg.captureMark;
  const upstream = new UpstreamConnector({
    ...(mark === undefined ? {} : { open: (host: string, port: number) => connectMarked({ host, port }, mark) }),
    onError: (err) => p.fd().observe('connect', err),
  });
  const pool = new HbonePool({
    rootPem: cfg.rootCertPem, maxStreamsPerConnection: cfg.poolMaxStreams, idleTimeoutMs: cfg.poolIdleMs, connectTimeoutMs: cfg.connectTimeoutMs,
    logger: logs.child({ part: 'hbone-pool' }), onGoaway: (reason) => metrics.hboneGoaway.inc({ reason, side: 'client' }),
  });
  const inbound = new InboundHandler({ state, node: cfg.nodeName, tracker, log: logs.child({ part: 'inbound' }), connect: upstream.connect, connectTimeoutMs: cfg.connectTimeoutMs });
  const local = cfg.sameNodeFastPath ? new LocalPath({ inbound, tracker, nodeAddress: cfg.listenAddress }) : undefined;
  const ejector = new Ejector({ baseMs: cfg.ejectionBaseMs, maxMs: cfg.ejectionMaxMs, maxEntries: DEFAULT_EJECTION_MAX_ENTRIES }, metrics, logs.child({ part: 'endpoints' }));
  const outbound = new OutboundHandler({
    state, node: cfg.nodeName, tracker, identities, pool, connect: upstream.connect, connectTimeoutMs: cfg.connectTimeoutMs,
    pick: roundRobin(), endpoints: ejector, maxAttempts: cfg.endpointAttempts,
    onFdExhausted: (op, err) => p.fd().observe(op, err),
    localAddress: cfg.listenAddress, log: logs.child({ part: 'outbound' }),
    // Same-node fast path (proxy/local-path.ts): in this process, no hop to another one.
    ...(local ? { local } : {}),
    sameNodeConnections: sameNodeConnectionsCounter(metrics.registry),
  });
  const hbone = new HboneServer({
    rootPem: cfg.rootCertPem,
    // Present the certificate of the pod whose address was dialled (DESIGN §6): never the node's.
    certFor: async (localAddress) => {
      const w = state.workloadByAddress(localAddress);
      if (!w || w.node !== cfg.nodeName || w.protocol !== 'HBONE') return undefined;
      const c = await identities.get(w.identity);
      return { keyPem: c.keyPem, certChainPem: c.certChainPem };
    },
    onConnect: (req) => void inbound.handleHbone(req).catch((err) => log.error({ err: errorMessage(err) }, 'BUG: inbound handler failed')),
    logger: logs.child({ part: 'hbone-server' }),
    maxConcurrentStreams: cfg.hboneMaxStreams,
    limits: { idleTimeoutMs: cfg.hboneIdleMs },
    maxPendingHandshakes: cfg.hboneMaxHandshakes,
    maxPendingHandshakesPerSource: cfg.hboneMaxHandshakesPerSource,
    maxSessionsPerIdentity: cfg.hboneMaxSessionsPerIdentity,
    onRefused: (reason) => metrics.hboneRefused.inc({ reason }),
    onGoaway: (reason) => metrics.hboneGoaway.inc({ reason, side: 'server' }),
  });
  return { upstream, pool, inbound, ejector, outbound, hbone, local };
}

/**
 * Capture mode (DESIGN §6a): the addon that reads original destinations and marks sockets must load, and the node
 * chains must be in place, before anything listens; either failing stops the start with the reason.
 */
export async function setUpCapture(cfg: ZtunnelConfig, state: ProxyState, metrics: ZtunnelMetrics, logs: LogLevels): Promise<PodCapture> {
  const addonError = captureAddonError();
  if (addonError) throw new StraitError('STRAIT_ERR_CAPTURE', `--capture needs the capture addon: ${addonError}`);
  const mark = cfg.captureMark!;
  const scripts = new CaptureScripts({ ...(cfg.capture?.scriptsDir ? { dir: cfg.capture.scriptsDir } : {}), ...(cfg.capture?.iptables ? { iptables: cfg.capture.iptables } : {}), mark, ports: cfg.ports });
  const capture = new PodCapture({
    state, node: cfg.nodeName, scripts, mark, log: logs.child({ part: 'capture' }), resyncMs: cfg.capture?.resyncMs ?? 0, teardown: cfg.capture?.teardown ?? false,
    counters: { operation: (operation, result) => metrics.captureOperations.inc({ operation, result }) },
  });
  await capture.setup();
  return capture;
}

/**
 * What the process did for the ztunnel before starting it (process-wide, so the command does it, not this
 * function): `nofile` is the result of raising RLIMIT_NOFILE's soft limit; absent when the ztunnel runs inside
 * another process (tests), whose limits it then only reads.
 */
export interface ZtunnelProcessSetup {
  nofile?: NofileLimit | { error: string };
}

/** What the data path needs from the process: the state it reads, the certificates, metrics and loggers. */
export interface DataPlaneParts {
  state: ProxyState;
  identities: ZtunnelIdentities;
  metrics: ZtunnelMetrics;
  logs: LogLevels;
  log: Logger;
  fdLimits: FdLimits;
  /** Called for every accepted connection (a worker counts its share). */
  onAccept?: () => void;
}

/**
 * The data path of one process, listening: the single process (--workers 1) and each data-plane worker run this.
 * Draining and closing it leaves the controller link, capture and admin to whoever runs them.
 */
export async function startDataPlane(cfg: ZtunnelConfig, p: DataPlaneParts) {
  const { state, identities, metrics, logs, log, fdLimits } = p;
  const tracker = new ConnectionTracker(logs.child({ access: true }), metrics.tcp);
  const { upstream, pool, inbound, ejector, outbound, hbone, local } = buildDataPath(cfg, { state, tracker, identities, metrics, logs, log, fd: () => fd });
  const backlog = cfg.listenBacklog ?? kernelListenBacklog();
  const listeners = new Listeners({
    backlog, guard: { admit: () => fd.admit(), observe: (op, err) => fd.observe(op, err) }, log: logs.child({ part: 'listeners' }),
    ...(p.onAccept ? { onAccept: p.onAccept } : {}),
  });
  // What the ztunnel holds, plus one upstream for each connection still being set up (a SOCKS5 handshake, an HBONE
  // CONNECT not yet answered): admitting a client whose upstream cannot be opened only fails it later.
  const settingUp = () => Math.max(0, listeners.waiting - tracker.liveCount('outbound') - tracker.liveCount('inbound-plaintext'))
    + Math.max(0, hbone.activeStreams() - (tracker.liveCount('inbound') - (local?.live ?? 0)));
  const fd: FdGuard = new FdGuard({
    limits: fdLimits, metrics, log: logs.child({ part: 'fd' }),
    counted: () => listeners.open + upstream.dialing + upstream.open + pool.stats().connections,
    expected: () => Math.max(0, settingUp() - upstream.dialing),
  });
  await openTrafficPorts({
    address: cfg.listenAddress, ports: cfg.ports, listeners, outbound, inbound, hbone, log, transparent: cfg.capture !== undefined,
    onUnredirected: (listener) => metrics.captureUnredirected.inc({ listener }),
  });
  if (cfg.localPodListeners) {
    new PodListeners({ state, node: cfg.nodeName, listeners, port: cfg.ports.hbone, onSocket: (s, a, pt) => hbone.handleSocket(s, a, pt), log }).follow();
  }
  fd.sample(); // everything the data path opens at start is open now
  return {
    tracker, listeners, hbone, pool, ejector, fd, backlog,
    live: () => ({ connections: tracker.live.size, accepting: listeners.waiting, hbone_streams: hbone.activeStreams() }),
    tracked: () => ({ live: tracker.live.size, finished: tracker.finishedCount }),
    stopAccepting: () => { listeners.stopAccepting(); hbone.drain(); },
    closeAll: async () => {
      listeners.stopAccepting();
      for (const c of tracker.live.values()) c.close('ztunnel shutting down');
      listeners.destroyAll();
      await hbone.close();
      pool.close();
      ejector.close();
      fd.close();
    },
    /** The data path's part of /config_dump. */
    dump: () => dataPlaneDump({ liveConnections: () => tracker.live.size, listeners, fd, endpoints: ejector.health }),
    connections: () => tracker.snapshot(),
    /** Gauges read when /metrics is asked. */
    sampleMetrics: () => {
      const ps = pool.stats();
      metrics.hbonePoolConnections.set(ps.connections);
      metrics.hboneHandshakes.set(ps.handshakes);
    },
  };
}
export type DataPlane = Awaited<ReturnType<typeof startDataPlane>>;

export async function startZtunnel(cfg: ZtunnelConfig, given: Logger, setup: ZtunnelProcessSetup = {}): Promise<RunningZtunnel> {
  // Every line names the node once: bound here unless the caller's logger already binds it (the CLI's does).
  const log = 'node' in given.bindings() ? given : given.child({ node: cfg.nodeName });
  const logs = new LogLevels(log);
  // First, so that everything after runs under it: the soft fd limit raised to the hard one.
  const fdLimits = resolveFdLimits(setup.nofile ?? { error: 'not raised: the ztunnel runs inside another process' }, readProcSelfLimits());
  if (fdLimits.warning) log.warn({ source: fdLimits.source }, fdLimits.warning);
  const metrics = new ZtunnelMetrics();
  const state = new ProxyState();
  const capture = cfg.capture ? await setUpCapture(cfg, state, metrics, logs) : undefined;
  // Capture follows the pods once the controller's workloads are in: rules an earlier run left stay until then.
  // Loaded here, not at the top: a data-plane worker imports this file for startDataPlane and never talks to the
  // controller, so it does not load gRPC (13 MiB of resident memory per worker).
  const { connectController } = await import('./controller-link.js');
  const controller = connectController(cfg, state, metrics, logs, log, (type) => { if (type === TYPE_WORKLOAD) capture?.follow(); });
  const { identities } = controller;
  const dp = await startDataPlane(cfg, { state, identities, metrics, logs, log, fdLimits });
  const { backlog } = dp;

  // ---- admin, metrics, readiness, drain ----
  const drain = new Drain({
    drainMs: cfg.drainMs, log,
    live: dp.live,
    tracked: dp.tracked,
    stopAccepting: dp.stopAccepting,
    closeAll: async () => {
      await dp.closeAll();
      controller.close();
      // After the drain: removing the rules earlier would send new connections of enrolled pods out unencrypted.
      await capture?.stop();
      await runtime.close();
    },
  });
  const runtime = new ProxyRuntime({
    address: cfg.listenAddress, adminAddress: cfg.adminAddress, ports: cfg.ports, backlog, logLevels: logs, drain, drainMs: cfg.drainMs,
    configDump: async () => ({
      ...ztunnelConfigDump({
        node: cfg.nodeName, controller: controller.status, state, identities, drainMs: cfg.drainMs,
        ...(capture ? { capture: () => capture.snapshot() } : {}),
      }),
      ...dp.dump(),
    }),
    connections: () => ({ node: cfg.nodeName, connections: dp.connections() }),
    metrics: async () => {
      dp.sampleMetrics();
      if (capture) for (const [st, n] of Object.entries(capture.counts())) metrics.capturePods.set({ state: st }, n);
      return { body: await metrics.registry.metrics(), contentType: metrics.registry.contentType };
    },
    readiness: () => {
      const r = controller.readiness();
      if (!capture) return r;
      const c = capture.ready();
      return { ready: r.ready && c.ready, detail: { ...r.detail, capture: c.detail } };
    },
  });
  const { admin } = await runtime.listen();

  log.info({ address: cfg.listenAddress, capture: !!capture, admin: formatHostPort(admin), ports: cfg.ports, localPodListeners: cfg.localPodListeners, sameNodeFastPath: cfg.sameNodeFastPath, captureMark: cfg.captureMark, backlog, fd_limit: { soft: fdLimits.soft, hard: fdLimits.hard } }, 'ztunnel listening');
  return { state, stopped: drain.stopped, drain: () => drain.start(), close: () => drain.close() };
}
