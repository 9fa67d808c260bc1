/**
 * The ztunnel process (DESIGN §2, §6): the only place its concrete classes are wired together.
 */
import * as grpc from '@grpc/grpc-js';
import net from 'node:net';
import tls from 'node:tls';
import { AdminServer } from '../common/admin.js';
import { errorMessage } from '../common/errors.js';
import { HbonePool, HboneServer } from '../hbone/index.js';
import type { Logger, LogLevel } from '../common/log.js';
import { formatHostPort, normalizeIp } from '../common/net.js';
import { TYPE_AUTHORIZATION, TYPE_SERVICE, TYPE_WORKLOAD } from '../common/xds/resources.js';
import { CaClient } from '../identity/ca-client.js';
import { X509Certificate } from 'node:crypto';
import { acceptSocks5, SOCKS5_REPLY } from './proxy/socks5.js';
import { connectMarked, originalDestination, raiseNofileLimit } from './capture/original-dst.js';
import type { ZtunnelConfig } from './config.js';
import { ZtunnelIdentities } from './identities.js';
import { FdGuard, readProcSelfLimits, resolveFdLimits } from './fd-guard.js';
import { Listeners, kernelListenBacklog } from './listeners.js';
import { ZtunnelMetrics } from './metrics.js';
import { ConnectionTracker } from '../dataplane/connections.js';
import { DEFAULT_EJECTION_MAX_ENTRIES } from './proxy/endpoint-health.js';
import { Ejector } from './proxy/ejector.js';
import { InboundHandler } from './proxy/inbound.js';
import { UpstreamConnector } from '../dataplane/connector.js';
import { OutboundHandler, type OutboundResponder } from './proxy/outbound.js';
import { roundRobin } from './proxy/request.js';
import { ProxyState } from '../dataplane/state/proxy-state.js';
import { startStateSync } from '../dataplane/state/state-sync.js';

/** A DNS name in the controller's serving certificate (see controller/app.ts). */
export const CONTROLLER_TLS_NAME = 'strait-controller';

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

export async function startZtunnel(cfg: ZtunnelConfig, log: Logger): Promise<RunningZtunnel> {
  tls.DEFAULT_MIN_VERSION = 'TLSv1.3';
  const loggers: Logger[] = [log];
  const child = (bindings: Record<string, unknown>) => {
    const l = log.child(bindings);
    loggers.push(l);
    return l;
  };
  // First, so that everything after runs under it: the soft fd limit raised to the hard one.
  const fdLimits = resolveFdLimits(raiseNofileLimit(), readProcSelfLimits());
  if (fdLimits.warning) log.warn({ source: fdLimits.source }, fdLimits.warning);
  const metrics = new ZtunnelMetrics();
  const state = new ProxyState();
  const tracker = new ConnectionTracker(child({ access: true }), metrics.tcp);
  const credentials = grpc.credentials.createSsl(Buffer.from(cfg.rootCertPem));
  const xdsAddress = formatHostPort(cfg.xdsAddress);
  // TLS sends no IP as server name (RFC 6066): for an IP address, check the controller's certificate by the DNS
  // name its serving certificate carries.
  const channelOptions = net.isIP(cfg.xdsAddress.host) ? { 'grpc.ssl_target_name_override': CONTROLLER_TLS_NAME, 'grpc.default_authority': CONTROLLER_TLS_NAME } : {};
  const ca = new CaClient({ address: xdsAddress, credentials, channelOptions, metadata: () => ({ authorization: `Bearer ${cfg.token}`, 'x-strait-node': cfg.nodeName }) });
  const identities = new ZtunnelIdentities(state, cfg.nodeName, ca, child({ part: 'certs' }), Math.floor(cfg.certTtlMs / 1000), metrics);

  const synced = new Set<string>();
  let xdsUp = false;
  const xds = startStateSync({
    address: xdsAddress, credentials, channelOptions, node: cfg.nodeName, token: cfg.token, state, logger: child({ part: 'xds' }),
    limits: { maxReceiveBytes: cfg.xdsMaxMessageBytes },
  });
  xds.on('update', (type) => synced.add(type));
  xds.on('connected', () => { xdsUp = true; metrics.xdsConnected.set(1); log.info({ controller: xdsAddress }, 'connected to the controller'); });
  xds.on('disconnected', (err) => { xdsUp = false; metrics.xdsConnected.set(0); log.warn({ err: err.message }, 'controller unreachable; serving the last configuration'); });
  xds.on('nack', (type, err) => log.error({ type, err: err.message }, 'rejected a configuration push (NACK)'));
  xds.start();

  // Under capture the ztunnel's own sockets to pods carry the mark the iptables rules skip; otherwise they would be
  // redirected straight back to the ztunnel.
  const mark = cfg.captureMark;
  const upstream = new UpstreamConnector({
    ...(mark === undefined ? {} : { open: (host: string, port: number) => connectMarked({ host, port }, mark) }),
    onError: (err) => fd.observe('connect', err),
  });
  const connector = upstream.connect;
  const pool = new HbonePool({
    rootPem: cfg.rootCertPem, maxStreamsPerConnection: cfg.poolMaxStreams, idleTimeoutMs: cfg.poolIdleMs, connectTimeoutMs: cfg.connectTimeoutMs,
    logger: child({ part: 'hbone-pool' }), onGoaway: (reason) => metrics.hboneGoaway.inc({ reason, side: 'client' }),
  });
  const inbound = new InboundHandler({ state, node: cfg.nodeName, tracker, log: child({ part: 'inbound' }), connect: connector, connectTimeoutMs: cfg.connectTimeoutMs });
  const ejector = new Ejector({ baseMs: cfg.ejectionBaseMs, maxMs: cfg.ejectionMaxMs, maxEntries: DEFAULT_EJECTION_MAX_ENTRIES }, metrics, child({ part: 'endpoints' }));
  const outbound = new OutboundHandler({
    state, node: cfg.nodeName, tracker, identities, pool, connect: connector, connectTimeoutMs: cfg.connectTimeoutMs,
    pick: roundRobin(), endpoints: ejector, maxAttempts: cfg.endpointAttempts,
    onFdExhausted: (op, err) => fd.observe(op, err),
    localAddress: cfg.listenAddress, log: child({ part: 'outbound' }),
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
    logger: child({ part: 'hbone-server' }),
    maxConcurrentStreams: cfg.hboneMaxStreams,
    limits: { idleTimeoutMs: cfg.hboneIdleMs },
    onGoaway: (reason) => metrics.hboneGoaway.inc({ reason, side: 'server' }),
  });

  // ---- listeners ----
  const backlog = cfg.listenBacklog ?? kernelListenBacklog();
  const listeners = new Listeners({ backlog, guard: { admit: () => fd.admit(), observe: (op, err) => fd.observe(op, err) }, log: child({ part: 'listeners' }) });
  // What the ztunnel holds, plus one upstream for each connection still being set up (a SOCKS5 handshake, an HBONE
  // CONNECT not yet answered): admitting a client whose upstream cannot be opened only fails it later.
  const settingUp = () => Math.max(0, listeners.waiting - tracker.liveCount('outbound') - tracker.liveCount('inbound-plaintext'))
    + Math.max(0, hbone.activeStreams() - tracker.liveCount('inbound'));
  const fd = new FdGuard({
    limits: fdLimits, metrics, log: child({ part: 'fd' }),
    counted: () => listeners.open + upstream.dialing + upstream.open + pool.stats().connections,
    expected: () => Math.max(0, settingUp() - upstream.dialing),
  });
  const listen = (port: number, what: string, onSocket: (s: net.Socket) => void) => listeners.listen(cfg.listenAddress, port, what, onSocket);
  const captured = (s: net.Socket, what: string) => {
    try {
      return originalDestination(s);
    } catch (err) {
      log.warn({ listener: what, 'src.addr': s.remoteAddress, err: errorMessage(err) }, 'connection without an original destination refused (in the local mesh, use SOCKS5 on 15080)');
      s.resetAndDestroy();
      return undefined;
    }
  };
  const socksResponder = (reply: (code: number, bind?: { host: string; port: number }) => void): OutboundResponder => ({
    connected: (bind) => reply(SOCKS5_REPLY.SUCCEEDED, bind),
    refused: (kind) => reply(kind === 'not-allowed' ? SOCKS5_REPLY.NOT_ALLOWED : kind === 'refused' ? SOCKS5_REPLY.CONNECTION_REFUSED : kind === 'unreachable' ? SOCKS5_REPLY.HOST_UNREACHABLE : SOCKS5_REPLY.GENERAL_FAILURE),
  });
  const captureResponder = (s: net.Socket): OutboundResponder => ({ connected: () => undefined, refused: () => s.resetAndDestroy() });

  await listen(cfg.ports.socks5, 'SOCKS5', (s) => {
    acceptSocks5(s).then(
      (req) => outbound.handle(req.socket, s.remoteAddress ?? '', { host: req.target.host, port: req.target.port }, socksResponder((c, b) => req.reply(c, b))),
      (err) => log.debug({ 'src.addr': s.remoteAddress, err: errorMessage(err) }, 'SOCKS5 handshake failed'),
    ).catch((err) => log.error({ err: errorMessage(err) }, 'BUG: SOCKS5 outbound failed'));
  });
  await listen(cfg.ports.outbound, 'outbound capture', (s) => {
    const orig = captured(s, 'outbound');
    if (orig) void outbound.handle(s, s.remoteAddress ?? '', orig, captureResponder(s));
  });
  await listen(cfg.ports.inboundPlaintext, 'inbound plaintext', (s) => {
    const orig = captured(s, 'inbound-plaintext');
    if (orig) void inbound.handlePlaintext(s, orig);
  });
  await listeners.listen(cfg.listenAddress, cfg.ports.hbone, 'HBONE (node)', (s) => {
    const orig = captured(s, 'hbone');
    if (orig) hbone.handleSocket(s, orig.host, orig.port);
  }, { hbone: true });

  // Local mesh: one HBONE listener per local pod address, presenting that pod's certificate.
  const podListeners = new Set<string>();
  const syncPodListeners = async () => {
    if (!cfg.localPodListeners) return;
    const want = new Set(state.localWorkloads(cfg.nodeName).flatMap((w) => w.addresses));
    for (const addr of want) {
      if (podListeners.has(addr)) continue;
      podListeners.add(addr);
      try {
        await listeners.listen(addr, cfg.ports.hbone, 'HBONE (pod)', (s) => hbone.handleSocket(s, normalizeIp(s.localAddress ?? addr), s.localPort ?? cfg.ports.hbone), { hbone: true });
        log.info({ address: `${addr}:${cfg.ports.hbone}` }, 'HBONE listener for local pod');
      } catch (err) {
        podListeners.delete(addr);
        log.error({ address: addr, err: errorMessage(err) }, 'cannot listen for a local pod (is the address on this machine?)');
      }
    }
    for (const addr of [...podListeners]) {
      if (want.has(addr)) continue;
      podListeners.delete(addr);
      listeners.close(addr, cfg.ports.hbone);
    }
  };
  let podSync = Promise.resolve();
  state.on('workloads', () => { podSync = podSync.then(syncPodListeners); });

  // ---- admin, metrics, readiness ----
  let draining = false;
  const isReady = () => !draining && [TYPE_WORKLOAD, TYPE_SERVICE, TYPE_AUTHORIZATION].every((t) => synced.has(t)) && identities.allReady();
  let quitting: Promise<void> | undefined;
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((r) => (resolveStopped = r));

  const admin = new AdminServer({
    '/config_dump': async () => ({
      status: 200,
      body: {
        node: cfg.nodeName,
        controller: { address: xdsAddress, connected: xdsUp },
        workloads: [...state.workloads.values()],
        services: [...state.services.values()],
        policies: [...state.policies.entries()].map(([key, p]) => ({ key, ...p })),
        certificates: identities.list().map((c) => {
          const leaf = new X509Certificate(c.certChainPem[0]);
          return { identity: c.identity.toString(), notBefore: c.notBefore.toISOString(), notAfter: c.notAfter.toISOString(), serial: leaf.serialNumber, issuer: leaf.issuer, chainLength: c.certChainPem.length };
        }),
        connections: { live: tracker.live.size },
        listeners: listeners.list(),
        fileDescriptors: fd.snapshot(),
        ejectedEndpoints: ejector.health.snapshot().map((e) => ({ endpoint: e.endpoint, until: new Date(e.until).toISOString(), ejections: e.ejections })),
        drainMs: cfg.drainMs,
      },
    }),
    '/connections': async () => ({ status: 200, body: { node: cfg.nodeName, connections: tracker.snapshot() } }),
    '/logging': {
      GET: async () => ({ status: 200, body: { level: log.level } }),
      POST: async (_req, url) => {
        const level = url.searchParams.get('level') as LogLevel | null;
        const levels: string[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
        if (!level || !levels.includes(level)) return { status: 400, body: { error: `give ?level= one of ${levels.join(', ')}` } };
        for (const l of loggers) l.level = level;
        log.info({ level }, 'log level changed');
        return { status: 200, body: { level } };
      },
    },
    '/quitquitquit': { POST: async () => { void quit(); return { status: 200, body: { draining: true, drainMs: cfg.drainMs } }; } },
  }, child({ part: 'admin' }));
  const metricsServer = new AdminServer({
    '/metrics': async () => {
      const ps = pool.stats();
      metrics.hbonePoolConnections.set(ps.connections);
      metrics.hboneHandshakes.set(ps.handshakes);
      return { status: 200, body: await metrics.registry.metrics(), contentType: metrics.registry.contentType };
    },
  }, child({ part: 'metrics' }));
  const readyServer = new AdminServer({
    '/healthz/ready': async () => (isReady() ? { status: 200, body: 'ready\n', contentType: 'text/plain' } : {
      status: 503,
      body: { ready: false, ...(draining ? { draining: true } : {}), config: [TYPE_WORKLOAD, TYPE_SERVICE, TYPE_AUTHORIZATION].filter((t) => !synced.has(t)).map((t) => `waiting for ${t}`), certificates: identities.allReady() ? 'ok' : 'waiting for workload certificates' },
    }),
  }, child({ part: 'ready' }));
  const adminAddr = await admin.listen(cfg.listenAddress, cfg.ports.admin, backlog);
  await metricsServer.listen(cfg.listenAddress, cfg.ports.metrics, backlog);
  await readyServer.listen(cfg.listenAddress, cfg.ports.ready, backlog);

  /** Closes everything; resolves `stopped` only after `last` (the drain's closing line) has run. */
  const close = async (last?: () => void) => {
    xds.close();
    listeners.stopAccepting();
    for (const c of tracker.live.values()) c.close('ztunnel shutting down');
    listeners.destroyAll();
    await hbone.close();
    pool.close();
    ejector.close();
    fd.close();
    identities.close();
    ca.close();
    await Promise.all([admin.close(), metricsServer.close(), readyServer.close()]);
    last?.();
    resolveStopped();
  };

  /**
   * Drain (SIGTERM, SIGINT, /quitquitquit): stop accepting (the kernel refuses new connections), let connections
   * finish for drainMs, then close the rest and stop. Connections still being set up (a SOCKS5 handshake, an HBONE
   * CONNECT awaiting its answer) count as live.
   */
  const quit = () => {
    quitting ??= (async () => {
      draining = true;
      const startedAt = Date.now();
      const finishedBefore = tracker.finishedCount;
      const live = () => tracker.live.size + listeners.waiting + hbone.activeStreams();
      log.info({ drain_ms: cfg.drainMs, connections: tracker.live.size, accepting: listeners.waiting, hbone_streams: hbone.activeStreams() }, 'drain started: no longer accepting; live connections may finish');
      listeners.stopAccepting();
      hbone.drain();
      const until = startedAt + cfg.drainMs;
      while (live() > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      const remaining = tracker.live.size;
      const completed = tracker.finishedCount - finishedBefore;
      if (live() > 0) log.warn({ remaining, drain_ms: cfg.drainMs }, 'drain period over; closing the remaining connections');
      await close(() => log.info({ completed, closed: remaining, duration_ms: Date.now() - startedAt }, 'drain finished; stopped'));
    })();
    return quitting;
  };

  fd.sample(); // everything the ztunnel opens at start is open now
  log.info({ node: cfg.nodeName, address: cfg.listenAddress, admin: formatHostPort(adminAddr), ports: cfg.ports, localPodListeners: cfg.localPodListeners, captureMark: cfg.captureMark, backlog, fd_limit: { soft: fdLimits.soft, hard: fdLimits.hard } }, 'ztunnel listening');
  return { state, stopped, drain: quit, close: () => quitting ?? (quitting = close()) };
}
