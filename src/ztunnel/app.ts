/**
 * The ztunnel process (DESIGN §2, §6): the only place its concrete classes are wired together.
 */
import * as grpc from '@grpc/grpc-js';
import net from 'node:net';
import tls from 'node:tls';
import { AdminServer } from '../common/admin.js';
import { StraitError, errorMessage } from '../common/errors.js';
import { HbonePool, HboneServer } from '../common/hbone/index.js';
import type { Logger, LogLevel } from '../common/log.js';
import { formatHostPort } from '../common/net.js';
import { TYPE_AUTHORIZATION, TYPE_SERVICE, TYPE_WORKLOAD } from '../common/xds/resources.js';
import { CaClient } from '../identity/ca-client.js';
import { X509Certificate } from 'node:crypto';
import { acceptSocks5, SOCKS5_REPLY } from './proxy/socks5.js';
import { connectMarked, originalDestination } from './capture/original-dst.js';
import type { ZtunnelConfig } from './config.js';
import { ZtunnelIdentities } from './identities.js';
import { ZtunnelMetrics } from './metrics.js';
import { ConnectionTracker } from './proxy/connections.js';
import { InboundHandler, connectWith, plainConnector, type TargetConnector } from './proxy/inbound.js';
import { OutboundHandler, type OutboundResponder } from './proxy/outbound.js';
import { roundRobin } from './proxy/request.js';
import { ZtunnelState } from './state/state.js';
import { startZtunnelXds } from './xds-client.js';

/** A DNS name in the controller's serving certificate (see controller/app.ts). */
export const CONTROLLER_TLS_NAME = 'strait-controller';

export interface RunningZtunnel {
  state: ZtunnelState;
  /** Resolves when the ztunnel has stopped (after close() or /quitquitquit). */
  stopped: Promise<void>;
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
  const metrics = new ZtunnelMetrics();
  const state = new ZtunnelState();
  const tracker = new ConnectionTracker(child({ access: true }), metrics);
  const credentials = grpc.credentials.createSsl(Buffer.from(cfg.rootCertPem));
  const xdsAddress = formatHostPort(cfg.xdsAddress);
  // TLS sends no IP as server name (RFC 6066): for an IP address, check the controller's certificate by the DNS
  // name its serving certificate carries.
  const channelOptions = net.isIP(cfg.xdsAddress.host) ? { 'grpc.ssl_target_name_override': CONTROLLER_TLS_NAME, 'grpc.default_authority': CONTROLLER_TLS_NAME } : {};
  const ca = new CaClient({ address: xdsAddress, credentials, channelOptions, metadata: () => ({ authorization: `Bearer ${cfg.token}`, 'x-strait-node': cfg.nodeName }) });
  const identities = new ZtunnelIdentities(state, cfg.nodeName, ca, child({ part: 'certs' }), Math.floor(cfg.certTtlMs / 1000), metrics);

  const synced = new Set<string>();
  let xdsUp = false;
  const xds = startZtunnelXds({
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
  const connector: TargetConnector = mark === undefined ? plainConnector : (host, port, timeoutMs) => connectWith(() => connectMarked({ host, port }, mark), host, port, timeoutMs);
  const pool = new HbonePool({ rootPem: cfg.rootCertPem, maxStreamsPerConnection: cfg.poolMaxStreams, idleTimeoutMs: cfg.poolIdleMs, connectTimeoutMs: cfg.connectTimeoutMs, logger: child({ part: 'hbone-pool' }) });
  const inbound = new InboundHandler({ state, node: cfg.nodeName, tracker, log: child({ part: 'inbound' }), connect: connector, connectTimeoutMs: cfg.connectTimeoutMs });
  const outbound = new OutboundHandler({
    state, node: cfg.nodeName, tracker, identities, pool, connect: connector, connectTimeoutMs: cfg.connectTimeoutMs,
    pick: roundRobin(), localAddress: cfg.listenAddress, log: child({ part: 'outbound' }),
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
  });

  // ---- listeners ----
  const servers: net.Server[] = [];
  const listen = async (port: number, what: string, onSocket: (s: net.Socket) => void, host = cfg.listenAddress) => {
    const server = net.createServer({ pauseOnConnect: false, noDelay: true }, (s) => {
      s.on('error', () => undefined);
      onSocket(s);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    }).catch((err) => {
      throw new StraitError('STRAIT_ERR_LISTEN', `${what} cannot listen on ${host}:${port}: ${errorMessage(err)} (is another ztunnel running on this address?)`, { cause: err });
    });
    servers.push(server);
  };
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
  await listen(cfg.ports.hbone, 'HBONE (node)', (s) => {
    const orig = captured(s, 'hbone');
    if (orig) hbone.handleSocket(s, orig.host, orig.port);
  });

  // Local mesh: one HBONE listener per local pod address, presenting that pod's certificate.
  const podListeners = new Set<string>();
  const syncPodListeners = async () => {
    if (!cfg.localPodListeners) return;
    const want = new Set(state.localWorkloads(cfg.nodeName).flatMap((w) => w.addresses));
    for (const addr of want) {
      if (podListeners.has(addr)) continue;
      podListeners.add(addr);
      try {
        await hbone.listen(addr, cfg.ports.hbone);
        log.info({ address: `${addr}:${cfg.ports.hbone}` }, 'HBONE listener for local pod');
      } catch (err) {
        podListeners.delete(addr);
        log.error({ address: addr, err: errorMessage(err) }, 'cannot listen for a local pod (is the address on this machine?)');
      }
    }
    for (const addr of [...podListeners]) {
      if (want.has(addr)) continue;
      podListeners.delete(addr);
      await hbone.closeListener(addr, cfg.ports.hbone).catch(() => undefined);
    }
  };
  let podSync = Promise.resolve();
  state.on('workloads', () => { podSync = podSync.then(syncPodListeners); });

  // ---- admin, metrics, readiness ----
  const isReady = () => [TYPE_WORKLOAD, TYPE_SERVICE, TYPE_AUTHORIZATION].every((t) => synced.has(t)) && identities.allReady();
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
      body: { ready: false, config: [TYPE_WORKLOAD, TYPE_SERVICE, TYPE_AUTHORIZATION].filter((t) => !synced.has(t)).map((t) => `waiting for ${t}`), certificates: identities.allReady() ? 'ok' : 'waiting for workload certificates' },
    }),
  }, child({ part: 'ready' }));
  const adminAddr = await admin.listen(cfg.listenAddress, cfg.ports.admin);
  await metricsServer.listen(cfg.listenAddress, cfg.ports.metrics);
  await readyServer.listen(cfg.listenAddress, cfg.ports.ready);

  const close = async () => {
    xds.close();
    for (const s of servers) s.close();
    for (const c of tracker.live.values()) c.close('ztunnel shutting down');
    await hbone.close();
    pool.close();
    identities.close();
    ca.close();
    await Promise.all([admin.close(), metricsServer.close(), readyServer.close()]);
    resolveStopped();
  };

  /** Drain: stop accepting, let connections finish for drainMs, then close the rest and stop. */
  const quit = () => {
    quitting ??= (async () => {
      log.info({ drainMs: cfg.drainMs, live: tracker.live.size }, 'draining');
      for (const s of servers) s.close();
      hbone.drain();
      const until = Date.now() + cfg.drainMs;
      while (tracker.live.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      if (tracker.live.size > 0) log.warn({ live: tracker.live.size }, 'drain period over; closing the remaining connections');
      await close();
    })();
    return quitting;
  };

  log.info({ node: cfg.nodeName, address: cfg.listenAddress, admin: formatHostPort(adminAddr), ports: cfg.ports, localPodListeners: cfg.localPodListeners, captureMark: cfg.captureMark }, 'ztunnel listening');
  return { state, stopped, close: () => quitting ?? (quitting = close()) };
}
