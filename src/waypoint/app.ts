/**
 * The waypoint process (DESIGN §6): the only place its concrete classes are wired together. It is one Gateway
 * (gatewayClassName istio-waypoint); it terminates HBONE from source ztunnels, applies L7 routing, policy and
 * resilience, and sends each request over HBONE to the chosen endpoint's ztunnel with its own identity.
 */
import net from 'node:net';
import { errorMessage } from '../common/errors.js';
import { tls13ChannelCredentials } from '../common/grpc.js';
import type { Logger } from '../common/log.js';
import { formatHostPort } from '../common/net.js';
import { TYPE_POLICY, TYPE_ROUTE, TYPE_SERVICE, TYPE_WORKLOAD } from '../common/xds/resources.js';
import { ConnectionTracker } from '../dataplane/connections.js';
import { Drain } from '../dataplane/runtime/drain.js';
import { LogLevels } from '../dataplane/runtime/log-levels.js';
import { ProxyRuntime } from '../dataplane/runtime/proxy-runtime.js';
import { ProxyState } from '../dataplane/state/proxy-state.js';
import { startStateSync } from '../dataplane/state/state-sync.js';
import { HbonePool, HboneServer } from '../hbone/index.js';
import { CaClient } from '../identity/ca-client.js';
import { CertStore, SpiffeId, createKeyAndCsr } from '../identity/index.js';
import type { XdsSubscription } from '../common/xds/index.js';
import type { WaypointConfig } from './config.js';
import { WaypointMetrics } from './metrics.js';
import { HttpServers } from './proxy/http-servers.js';
import { WaypointInbound } from './proxy/inbound.js';
import { RequestHandler } from './proxy/request-handler.js';
import { WebSocketPassthrough } from './proxy/upgrade.js';
import { WaypointTelemetry } from './telemetry/waypoint-telemetry.js';
import { Backends } from './upstream/backends.js';
import { UpstreamClient } from './upstream/upstream-client.js';
import { WaypointState } from './waypoint-state.js';
import { tokenSource } from '../dataplane/token-source.js';

/** A DNS name in the controller's serving certificate (see controller/app.ts). */
const CONTROLLER_TLS_NAME = 'strait-controller';
const CONFIG_TYPES = [TYPE_WORKLOAD, TYPE_SERVICE, TYPE_ROUTE, TYPE_POLICY] as const;
/** HTTP/1.1 keep-alive connections from clients without a request for this long are closed. */
const DOWNSTREAM_KEEPALIVE_MS = 60_000;
const DOWNSTREAM_HEADERS_TIMEOUT_MS = 30_000;

export interface RunningWaypoint {
  state: ProxyState;
  waypoint: WaypointState;
  identity: string;
  stopped: Promise<void>;
  drain(): Promise<void>;
  close(): Promise<void>;
}

/** The controller link (the single process, or the primary): xDS (the states' one writer), the CA and the certificate. */
export function connectWaypointController(cfg: WaypointConfig, p: { state: ProxyState; subscriptions: XdsSubscription[]; metrics: WaypointMetrics; logs: LogLevels; log: Logger }) {
  const { state, metrics, logs, log } = p;
  const identity = SpiffeId.of(cfg.trustDomain, cfg.namespace, cfg.serviceAccount);
  const credentials = tls13ChannelCredentials(cfg.rootCertPem);
  const address = formatHostPort(cfg.xdsAddress);
  const channelOptions = net.isIP(cfg.xdsAddress.host) ? { 'grpc.ssl_target_name_override': CONTROLLER_TLS_NAME, 'grpc.default_authority': CONTROLLER_TLS_NAME } : {};
  const who = `${cfg.namespace}/${cfg.name}`;
  const token = tokenSource({ token: cfg.token, ...(cfg.tokenFile ? { file: cfg.tokenFile } : {}), logger: log });
  const ca = new CaClient({ address, credentials, channelOptions, metadata: () => ({ authorization: `Bearer ${token()}`, 'x-strait-waypoint': who }) });
  const certs = new CertStore({
    fetch: async (id) => {
      const { keyPem, csrPem } = await createKeyAndCsr();
      const certChainPem = await ca.createCertificate(csrPem, id.toString(), Math.floor(cfg.certTtlMs / 1000));
      return { keyPem, certChainPem };
    },
    logger: logs.child({ part: 'certs' }),
  });
  certs.on('rotated', (e) => log.info({ identity: e.identity.toString(), notAfter: e.cert.notAfter.toISOString(), renewed: e.previous !== undefined }, 'waypoint certificate ready'));
  certs.on('rotation-failed', (e) => log.warn({ identity: e.identity.toString(), attempt: e.attempt, retryInMs: e.retryInMs, err: errorMessage(e.error) }, 'waypoint certificate renewal failed; retrying'));
  certs.prefetch(identity).catch((err) => log.warn({ err: errorMessage(err) }, 'waypoint certificate fetch failed; will retry'));
  const synced = new Set<string>();
  let connected = false;
  const xds = startStateSync({
    address, credentials, channelOptions, token, state, logger: logs.child({ part: 'xds' }),
    node: { kind: 'waypoint', namespace: cfg.namespace, name: cfg.name },
    limits: { maxReceiveBytes: cfg.xdsMaxMessageBytes },
    extraSubscriptions: p.subscriptions,
  });
  xds.on('update', (type) => synced.add(type));
  xds.on('connected', () => { connected = true; metrics.xdsConnected.set(1); log.info({ controller: address }, 'connected to the controller'); });
  xds.on('disconnected', (err) => { connected = false; metrics.xdsConnected.set(0); log.warn({ err: err.message }, 'controller unreachable; serving the last configuration'); });
  xds.on('nack', (type, err) => log.error({ type, err: err.message }, 'rejected a configuration push (NACK)'));
  xds.start();
  return {
    identity, certs, who,
    status: () => ({ address, connected }),
    readiness: () => {
      const waiting = CONFIG_TYPES.filter((t) => !synced.has(t));
      const certReady = certs.peek(identity) !== undefined;
      return { ready: waiting.length === 0 && certReady, detail: { config: waiting.map((t) => `waiting for ${t}`), certificate: certReady ? 'ok' : 'waiting for the waypoint certificate' } };
    },
    certificate: () => { const c = certs.peek(identity); return c ? { identity: identity.toString(), notAfter: c.notAfter.toISOString() } : null; },
    close: () => { xds.close(); certs.close(); ca.close(); },
  };
}

export interface WaypointDataPlaneParts {
  state: ProxyState;
  waypoint: WaypointState;
  identity: SpiffeId;
  /** The waypoint's certificate: the controller link's store, or a worker's copy fed by its primary. */
  certs: Pick<CertStore, 'get' | 'peek'>;
  metrics: WaypointMetrics;
  logs: LogLevels;
  log: Logger;
  /** Called for every HBONE tunnel (a worker counts its share). */
  onTunnel?: () => void;
}

/** The data path of one process, listening on 15008: the single process (--workers 1) and each worker run this. */
export async function startWaypointDataPlane(cfg: WaypointConfig, p: WaypointDataPlaneParts) {
  const { state, waypoint, identity, certs, metrics, logs, log } = p;
  const who = `${cfg.namespace}/${cfg.name}`;
  const currentCert = () => {
    const c = certs.peek(identity);
    if (!c) throw new Error('the waypoint has no certificate yet');
    return { keyPem: c.keyPem, certChainPem: c.certChainPem };
  };
  const pool = new HbonePool({
    rootPem: cfg.rootCertPem, connectTimeoutMs: cfg.connectTimeoutMs, logger: logs.child({ part: 'hbone-pool' }),
    onGoaway: (reason) => metrics.hboneGoaway.inc({ reason, side: 'client' }),
  });
  const upstream = new UpstreamClient({ pool, cert: currentCert, identity: identity.toString(), connectTimeoutMs: cfg.connectTimeoutMs });
  const backends = new Backends({
    state, waypoint, now: Date.now, random: Math.random,
    onEject: (cluster, endpoint, untilMs) => {
      metrics.ejections.inc({ cluster });
      metrics.ejected.inc({ cluster });
      log.warn({ cluster, endpoint, until: new Date(untilMs).toISOString() }, 'endpoint ejected (outlier detection)');
    },
    onReadmit: (cluster, endpoint) => { metrics.ejected.dec({ cluster }); log.info({ cluster, endpoint }, 'endpoint readmitted (outlier detection)'); },
  });
  state.on('workloads', () => backends.retain());
  const telemetry = new WaypointTelemetry({
    registry: metrics.registry, accessLog: logs.child({ access: true }), log: logs.child({ part: 'telemetry' }),
    self: {
      nodeId: `waypoint~${cfg.listenAddress}~${cfg.name}.${cfg.namespace}~${cfg.namespace}.svc.cluster.local`,
      canonicalService: cfg.name, canonicalRevision: 'latest', namespace: cfg.namespace, meshId: cfg.trustDomain, clusterId: 'Kubernetes',
    },
  });
  const updateTracing = () => {
    telemetry.updateTracing(waypoint.tracing()).catch((err) => log.error({ err: errorMessage(err) }, 'tracing providers could not be built'));
  };
  waypoint.on('policies', updateTracing);
  if (waypoint.policies.size > 0) updateTracing(); // a worker's snapshot came before this listener
  const handler = new RequestHandler({
    state, waypoint, backends, upstream, telemetry, retryBufferBytes: cfg.retryBufferBytes, retryBufferTotalBytes: cfg.retryBufferTotalBytes, random: Math.random,
    log: logs.child({ part: 'request' }), identity: identity.toString(),
  });
  const websockets = new WebSocketPassthrough({ state, backends, upstream, log: logs.child({ part: 'upgrade' }) });
  const servers = new HttpServers({
    maxHeaderBytes: cfg.maxHeaderBytes, maxConcurrentStreams: 100, keepAliveTimeoutMs: DOWNSTREAM_KEEPALIVE_MS, headersTimeoutMs: DOWNSTREAM_HEADERS_TIMEOUT_MS,
    onRequest: (req, res, ctx, protocol) => handler.handle(req, res, ctx, protocol),
    onUpgrade: (req, socket, head, ctx) => { if (handler.admitUpgrade(req, socket, ctx)) websockets.handle(req, socket, head, ctx); },
    onMalformed: (ctx, status, code) => {
      metrics.malformed.inc({ status: String(status) });
      if (ctx) handler.recordMalformed(ctx, status, code);
    },
    log: logs.child({ part: 'http' }),
  });
  const tracker = new ConnectionTracker(logs.child({ access: true }), metrics.tcp);
  const inbound = new WaypointInbound({ namespace: cfg.namespace, name: cfg.name, state, waypoint, servers, backends, upstream, tracker, log: logs.child({ part: 'inbound' }) });
  const hbone = new HboneServer({
    rootPem: cfg.rootCertPem, trustDomain: cfg.trustDomain,
    // The waypoint presents its own identity on every address (the source ztunnel expects exactly this SAN).
    certFor: async () => {
      const c = await certs.get(identity);
      return { keyPem: c.keyPem, certChainPem: c.certChainPem };
    },
    onConnect: (req) => {
      p.onTunnel?.();
      try {
        inbound.handle(req);
      } catch (err) {
        log.error({ err: errorMessage(err) }, 'BUG: waypoint inbound failed');
        if (!req.answered) req.reject(500, 'internal error');
      }
    },
    logger: logs.child({ part: 'hbone-server' }),
    maxConcurrentStreams: cfg.hboneMaxStreams,
    onRefused: (reason) => metrics.hboneRefused.inc({ reason }),
    onGoaway: (reason) => metrics.hboneGoaway.inc({ reason, side: 'server' }),
  });
  await hbone.listen(cfg.listenAddress, cfg.ports.hbone);
  return {
    live: () => ({ tunnels: inbound.open, http_tunnels: servers.open, hbone_streams: hbone.activeStreams() }),
    tracked: () => ({ live: inbound.open, finished: tracker.finishedCount }),
    stopAccepting: () => { hbone.drain(); servers.drain(); },
    closeAll: async () => {
      servers.closeAll();
      for (const c of tracker.live.values()) c.close('waypoint shutting down');
      await hbone.close();
      upstream.close();
      pool.close();
      backends.close();
      await telemetry.close();
    },
    /** The data path's part of /config_dump. */
    dump: () => ({ clusters: backends.snapshot(), tracing: telemetry.tracingStatus(), tunnels: inbound.open, upstream: upstream.stats() }),
    connections: () => ({ waypoint: who, tunnels: inbound.open, tcp: tracker.snapshot() }),
    sampleMetrics: () => {
      metrics.hbonePoolConnections.set(pool.stats().connections);
      metrics.tunnels.set(inbound.open);
    },
  };
}
export type WaypointDataPlane = Awaited<ReturnType<typeof startWaypointDataPlane>>;

/** The parts of /config_dump that come from the controller link and the states. */
export function waypointControlDump(cfg: WaypointConfig, c: ReturnType<typeof connectWaypointController>, state: ProxyState, waypoint: WaypointState) {
  return {
    waypoint: { namespace: cfg.namespace, name: cfg.name, identity: c.identity.toString(), address: cfg.listenAddress, hbonePort: cfg.ports.hbone },
    controller: c.status(),
    certificate: c.certificate(),
    services: [...state.services.values()].filter((s) => s.waypoint?.namespace === cfg.namespace && s.waypoint.name === cfg.name).map((s) => `${s.namespace}/${s.name}`),
    routes: Object.fromEntries(waypoint.routes),
    policies: Object.fromEntries(waypoint.policies),
  };
}

export async function startWaypoint(cfg: WaypointConfig, given: Logger): Promise<RunningWaypoint> {
  const log = 'waypoint' in given.bindings() ? given : given.child({ waypoint: `${cfg.namespace}/${cfg.name}` });
  const logs = new LogLevels(log);
  const metrics = new WaypointMetrics();
  const state = new ProxyState();
  const waypoint = new WaypointState();
  const controller = connectWaypointController(cfg, { state, subscriptions: waypoint.subscriptions(), metrics, logs, log });
  const { identity, certs } = controller;
  const dp = await startWaypointDataPlane(cfg, { state, waypoint, identity, certs, metrics, logs, log });

  // ---- admin, metrics, readiness, drain ----
  const drain = new Drain({
    drainMs: cfg.drainMs, log, live: dp.live, tracked: dp.tracked, stopAccepting: dp.stopAccepting,
    closeAll: async () => {
      await dp.closeAll();
      controller.close();
      await runtime.close();
    },
  });
  const runtime = new ProxyRuntime({
    address: cfg.listenAddress, ports: cfg.ports, backlog: 511, logLevels: logs, drain, drainMs: cfg.drainMs,
    configDump: async () => ({ ...waypointControlDump(cfg, controller, state, waypoint), ...dp.dump() }),
    connections: dp.connections,
    metrics: async () => {
      dp.sampleMetrics();
      return { body: await metrics.registry.metrics(), contentType: metrics.registry.contentType };
    },
    readiness: controller.readiness,
  });
  const { admin } = await runtime.listen();
  log.info({ address: cfg.listenAddress, hbone: cfg.ports.hbone, admin: formatHostPort(admin), identity: identity.toString() }, 'waypoint listening');
  return { state, waypoint, identity: identity.toString(), stopped: drain.stopped, drain: () => drain.start(), close: () => drain.close() };
}
