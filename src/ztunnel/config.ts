import { isIP } from 'node:net';
import { configFail, configValues } from '../common/config-values.js';
import { parseHostPort, type HostPort } from '../common/net.js';
import { DEFAULT_EJECTION_BASE_MS, DEFAULT_EJECTION_MAX_MS } from './proxy/endpoint-health.js';
import {
  DEFAULT_HBONE_MAX_PENDING_HANDSHAKES,
  DEFAULT_HBONE_MAX_PENDING_HANDSHAKES_PER_SOURCE,
  DEFAULT_HBONE_MAX_SESSIONS_PER_IDENTITY,
} from '../hbone/server.js';
import { parseByteSize } from '../common/byte-size.js';
import { HBONE_PORT } from '../hbone/wire.js';
import { DEFAULT_XDS_MAX_RECEIVE_BYTES } from '../common/xds/xds-client.js';
import { parseWorkers } from '../dataplane/workers/workers-flag.js';

export const ENV_NODE_NAME = 'STRAIT_NODE_NAME';
export const ENV_XDS_ADDRESS = 'STRAIT_XDS_ADDRESS';
export const ENV_TOKEN = 'STRAIT_TOKEN';
export const ENV_TOKEN_FILE = 'STRAIT_TOKEN_FILE';
export const ENV_ROOT_CERT = 'STRAIT_ROOT_CERT';
export const ENV_LISTEN_ADDRESS = 'STRAIT_LISTEN_ADDRESS';
export const ENV_LOCAL_POD_LISTENERS = 'STRAIT_LOCAL_POD_LISTENERS';
export const ENV_DRAIN = 'STRAIT_DRAIN_DURATION';
export const ENV_POOL_IDLE = 'STRAIT_POOL_IDLE';
export const ENV_POOL_MAX_STREAMS = 'STRAIT_POOL_MAX_STREAMS';
export const ENV_HBONE_IDLE = 'STRAIT_HBONE_IDLE';
export const ENV_HBONE_MAX_STREAMS = 'STRAIT_HBONE_MAX_STREAMS';
export const ENV_HBONE_MAX_HANDSHAKES = 'STRAIT_HBONE_MAX_HANDSHAKES';
export const ENV_HBONE_MAX_HANDSHAKES_PER_SOURCE = 'STRAIT_HBONE_MAX_HANDSHAKES_PER_SOURCE';
export const ENV_HBONE_MAX_SESSIONS_PER_IDENTITY = 'STRAIT_HBONE_MAX_SESSIONS_PER_IDENTITY';
export const ENV_CERT_TTL = 'STRAIT_CERT_TTL';
export const ENV_CONNECT_TIMEOUT = 'STRAIT_CONNECT_TIMEOUT';
export const ENV_CAPTURE_MARK = 'STRAIT_CAPTURE_MARK';
export const ENV_CAPTURE = 'STRAIT_CAPTURE';
export const ENV_CAPTURE_SCRIPTS = 'STRAIT_CAPTURE_SCRIPTS';
export const ENV_IPTABLES = 'STRAIT_IPTABLES';
export const ENV_ADMIN_ADDRESS = 'STRAIT_ADMIN_ADDRESS';
export const ENV_CAPTURE_RESYNC = 'STRAIT_CAPTURE_RESYNC';
export const ENV_CAPTURE_TEARDOWN = 'STRAIT_CAPTURE_TEARDOWN';
export const ENV_GC = 'STRAIT_GC';
export const ENV_LISTEN_BACKLOG = 'STRAIT_LISTEN_BACKLOG';
export const ENV_ENDPOINT_ATTEMPTS = 'STRAIT_ENDPOINT_ATTEMPTS';
export const ENV_EJECTION_BASE = 'STRAIT_EJECTION_BASE';
export const ENV_EJECTION_MAX = 'STRAIT_EJECTION_MAX';
export const ENV_XDS_MAX_MESSAGE_SIZE = 'STRAIT_XDS_MAX_MESSAGE_SIZE';
/** Data-plane workers (issue 14): a number, or auto. */
export const ENV_WORKERS = 'STRAIT_WORKERS';
export const ENV_SAME_NODE_FAST_PATH = 'STRAIT_SAME_NODE_FAST_PATH';

/**
 * Node options the ztunnel process should be started with (they size V8's heap, so they cannot be set from
 * inside): a 2 MB semi-space keeps the young generation from growing to 32 MB under load. Measured at 1,000
 * req/s: peak RSS 72–73 MB instead of 79–91 MB, same CPU; bulk throughput unchanged. `strait up` passes them; a
 * DaemonSet passes them on its command line or in NODE_OPTIONS.
 */
export const ZTUNNEL_NODE_OPTIONS: readonly string[] = ['--max-semi-space-size=2'];

/**
 * How V8 collects the ztunnel's old generation. `atomic` (the default) turns incremental marking off: the heap
 * is ~15 MB, so a full mark is a few milliseconds, whereas under a bulk transfer incremental marking restarted
 * every ~40 ms (V8 begins it while the old generation is far below its limit) and cost as much CPU as the
 * transfer itself. `incremental` keeps V8's default.
 */
export type GcMode = 'atomic' | 'incremental';
export const GC_MODES: readonly GcMode[] = ['atomic', 'incremental'];

export const PORT_OUTBOUND = 15001;
export const PORT_INBOUND_PLAINTEXT = 15006;
/** 15008: HBONE's own port, defined in hbone/wire.ts. */
export const PORT_HBONE = HBONE_PORT;
export const PORT_SOCKS5 = 15080;
export const PORT_ADMIN = 15000;
export const PORT_METRICS = 15020;
export const PORT_READY = 15021;

export const DEFAULT_XDS_ADDRESS = '127.0.0.1:15012';
export const DEFAULT_LISTEN_ADDRESS = '127.0.0.1';
/** Under capture the kernel redirects to the address of the interface a packet came in on: listen on all of them. */
export const DEFAULT_CAPTURE_LISTEN_ADDRESS = '0.0.0.0';
/** Where admin (15000: /quitquitquit, /logging) listens when the listen address is a wildcard: never reachable from pods. */
export const DEFAULT_WILDCARD_ADMIN_ADDRESS = '127.0.0.1';
/** How often, under capture, the rules on the node are checked against what the ztunnel applied. */
export const DEFAULT_CAPTURE_RESYNC_MS = 30_000;
/** The capture mark when --capture is given without --capture-mark (Istio's 1337; the scripts' default). */
export const DEFAULT_CAPTURE_MARK = 0x539;
export const DEFAULT_DRAIN_MS = 5_000;
/** As Istio's ztunnel (POOL_UNUSED_RELEASE_TIMEOUT). */
export const DEFAULT_POOL_IDLE_MS = 5 * 60_000;
export const DEFAULT_POOL_MAX_STREAMS = 100;
/** Inbound HBONE connections without streams are closed after this (twice the clients' pool idle). */
export const DEFAULT_HBONE_IDLE_MS = 10 * 60_000;
/** SETTINGS_MAX_CONCURRENT_STREAMS the ztunnel announces on 15008. */
export const DEFAULT_HBONE_MAX_STREAMS = 100;
/** 0 = the controller's default lifetime. */
export const DEFAULT_CERT_TTL_MS = 0;
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** Endpoints of a service tried for one connection before the client is refused. */
export const DEFAULT_ENDPOINT_ATTEMPTS = 3;
export { DEFAULT_EJECTION_BASE_MS, DEFAULT_EJECTION_MAX_MS } from './proxy/endpoint-health.js';
/**
 * The ztunnel writes its logs (an access-log line per connection) through a buffer of this size rather than
 * synchronously. Measured at 200 new connections/s with a reader of standard output that pauses 2.7 s in every 3 s:
 * synchronous writes stopped the event loop (accept included) for up to 2.4 s, the SOCKS5 listen queue overflowed
 * (460 SYNs dropped, then retransmitted after 1 s), p99 connect+request 7.4 s; buffered: event loop max 43 ms, no
 * overflow, p99 0.13 s. Past the buffer, lines are dropped and counted.
 */
export const LOG_BUFFER_BYTES = 4 * 1024 * 1024;
/** The longest a Node timer can wait (2^31-1 ms, about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** The largest backlog Linux accepts (the kernel then clamps it to net.core.somaxconn). */
export const MAX_LISTEN_BACKLOG = 65_535;

export interface ZtunnelPorts {
  outbound: number;
  inboundPlaintext: number;
  hbone: number;
  socks5: number;
  admin: number;
  metrics: number;
  ready: number;
}

export interface ZtunnelConfig {
  nodeName: string;
  xdsAddress: HostPort;
  token: string;
  /**
   * Where `token` was read from (--token-file): re-read at every (re)connect and certificate request, because a
   * Kubernetes projected token rotates. Absent when the token was given directly (--token / STRAIT_TOKEN).
   */
  tokenFile?: string;
  rootCertPem: string;
  /** The node's address: every standard listener binds here (admin too, unless it is a wildcard: see adminAddress). */
  listenAddress: string;
  /** Where admin (15000) listens: listenAddress, or 127.0.0.1 when that is a wildcard. */
  adminAddress: string;
  ports: ZtunnelPorts;
  /**
   * Local mesh: also listen for HBONE on each local pod's own address (port `ports.hbone`), presenting that pod's
   * certificate. Under capture the kernel redirects pod:15008 to the node listener instead.
   */
  localPodListeners: boolean;
  drainMs: number;
  poolIdleMs: number;
  poolMaxStreams: number;
  /** Inbound (15008) HTTP/2 connections: closed after this long without streams; streams announced per connection. */
  hboneIdleMs: number;
  hboneMaxStreams: number;
  /** Inbound connections between accept and verified TLS, in all and per source address; sessions per client identity. */
  hboneMaxHandshakes: number;
  hboneMaxHandshakesPerSource: number;
  hboneMaxSessionsPerIdentity: number;
  certTtlMs: number;
  connectTimeoutMs: number;
  /**
   * Under capture (scripts/iptables): the fwmark the ztunnel puts on its own connections to pods, which the
   * capture rules skip (Istio's 1337 = 0x539). Undefined in the local mesh, where nothing is captured.
   */
  captureMark?: number;
  /** `--capture`: the ztunnel installs and removes the node's iptables capture itself (scripts/iptables). */
  /**
   * `teardown`: remove the node's rules when the ztunnel stops (--capture-teardown). Off by default: during a restart
   * or rolling update the rules stay, so enrolled pods' traffic is refused (fail closed) rather than sent in
   * plaintext, and the next ztunnel reconciles them; `strait uninstall` removes them for good.
   */
  capture?: { scriptsDir?: string; iptables?: string; resyncMs: number; teardown: boolean };
  gc: GcMode;
  /** listen() backlog of every listener; undefined = as large as the kernel allows (net.core.somaxconn). */
  listenBacklog?: number;
  /** Endpoints of a service tried for one connection (1 = no retry on another endpoint). */
  endpointAttempts: number;
  /** Passive ejection of endpoints that fail to connect: first period, and the cap of its doubling. */
  ejectionBaseMs: number;
  ejectionMaxMs: number;
  /** Largest xDS response accepted (bytes); a larger one ends the stream before it is read in full. */
  xdsMaxMessageBytes: number;
  /** Data-plane worker processes (--workers); 1 = one process, no cluster (dataplane/workers). */
  workers: number;
  /**
   * Same-node fast path (proxy/local-path.ts): traffic between two pods of this node skips TLS + HTTP/2 to this
   * ztunnel's own 15008, same decisions and telemetry. false = mTLS on the loopback too.
   */
  sameNodeFastPath: boolean;
}

export interface ZtunnelFlags {
  node?: string;
  xdsAddress?: string;
  token?: string;
  tokenFile?: string;
  rootCert?: string;
  listenAddress?: string;
  localPodListeners?: boolean;
  portOffset?: string;
  adminPort?: string;
  drain?: string;
  poolIdle?: string;
  poolMaxStreams?: string;
  hboneIdle?: string;
  hboneMaxStreams?: string;
  hboneMaxHandshakes?: string;
  hboneMaxHandshakesPerSource?: string;
  hboneMaxSessionsPerIdentity?: string;
  certTtl?: string;
  connectTimeout?: string;
  captureMark?: string;
  capture?: boolean;
  captureScripts?: string;
  iptables?: string;
  captureResync?: string;
  captureTeardown?: boolean;
  adminAddress?: string;
  gc?: string;
  listenBacklog?: string;
  endpointAttempts?: string;
  ejectionBase?: string;
  ejectionMax?: string;
  xdsMaxMessageSize?: string;
  workers?: string;
  /** --same-node-fast-path (true) / --no-same-node-fast-path (false); undefined when neither was given. */
  sameNodeFastPath?: boolean;
}

const fail = configFail;

/** Pure apart from reading the token and root files it is pointed at. Flags win over the environment. */
export function parseConfig(env: Record<string, string | undefined>, flags: ZtunnelFlags = {}): ZtunnelConfig {
  const { pick, readFile, duration, int } = configValues(env);
  const nodeName = pick(flags.node, ENV_NODE_NAME);
  if (!nodeName) throw fail(`no node name: pass --node NAME or set ${ENV_NODE_NAME} (in Kubernetes, from spec.nodeName)`);
  const tokenFile = pick(flags.tokenFile, ENV_TOKEN_FILE);
  const token = (pick(flags.token, ENV_TOKEN) ?? (tokenFile ? readFile(tokenFile, '--token-file') : '')).trim();
  if (!token) throw fail(`no bootstrap token: pass --token-file FILE (the controller writes <data-dir>/tokens/node-${nodeName}.token) or set ${ENV_TOKEN}`);
  const rootPath = pick(flags.rootCert, ENV_ROOT_CERT);
  if (!rootPath) throw fail(`no mesh root certificate: pass --root-cert FILE (the controller's <data-dir>/root-cert.pem) or set ${ENV_ROOT_CERT}`);
  const rootCertPem = readFile(rootPath, '--root-cert');
  if (!rootCertPem.includes('BEGIN CERTIFICATE')) throw fail(`--root-cert ${rootPath} holds no PEM certificate`);
  const captureRaw = flags.capture === true ? 'true' : env[ENV_CAPTURE];
  if (captureRaw !== undefined && captureRaw !== 'true' && captureRaw !== 'false') throw fail(`${ENV_CAPTURE}: "${captureRaw}" must be true or false`);
  const capture = captureRaw === 'true';
  const listenAddress = pick(flags.listenAddress, ENV_LISTEN_ADDRESS) ?? (capture ? DEFAULT_CAPTURE_LISTEN_ADDRESS : DEFAULT_LISTEN_ADDRESS);
  if (!isIP(listenAddress)) throw fail(`--listen-address: "${listenAddress}" is not an IP address`);
  const wildcard = listenAddress === '0.0.0.0' || listenAddress === '::';
  if (capture && !wildcard) {
    throw fail(`--capture needs the ztunnel to listen on every address (0.0.0.0, the default under capture), not ${listenAddress}: ` +
      'REDIRECT hands each captured connection to the address of the interface it came in on; drop --listen-address (use --admin-address for admin)');
  }
  const adminAddress = pick(flags.adminAddress, ENV_ADMIN_ADDRESS) ?? (wildcard ? DEFAULT_WILDCARD_ADMIN_ADDRESS : listenAddress);
  if (!isIP(adminAddress)) throw fail(`--admin-address: "${adminAddress}" is not an IP address`);
  const localPodListeners = flags.localPodListeners ?? env[ENV_LOCAL_POD_LISTENERS] === 'true';
  if (capture && localPodListeners) {
    throw fail('--capture and --local-pod-listeners exclude each other: under capture the kernel redirects pod:15008 to the node listener; drop --local-pod-listeners');
  }
  const captureScripts = pick(flags.captureScripts, ENV_CAPTURE_SCRIPTS);
  const iptables = pick(flags.iptables, ENV_IPTABLES);
  const teardownRaw = flags.captureTeardown === true ? 'true' : env[ENV_CAPTURE_TEARDOWN];
  if (teardownRaw !== undefined && teardownRaw !== 'true' && teardownRaw !== 'false') throw fail(`${ENV_CAPTURE_TEARDOWN}: "${teardownRaw}" must be true or false`);
  const captureOnly = (['captureScripts', 'iptables', 'captureResync', 'captureTeardown'] as const).find((k) => flags[k] !== undefined);
  if (!capture && captureOnly) {
    const name = { captureScripts: '--capture-scripts', iptables: '--iptables', captureResync: '--capture-resync', captureTeardown: '--capture-teardown' }[captureOnly];
    throw fail(`${name} only applies with --capture (the ztunnel installs the capture rules itself): add --capture, or drop it`);
  }
  const resyncMs = duration(pick(flags.captureResync, ENV_CAPTURE_RESYNC), '--capture-resync', DEFAULT_CAPTURE_RESYNC_MS);
  if (resyncMs > MAX_TIMER_MS) throw fail(`--capture-resync: at most 24d (a timer's range), or 0 for never`);
  if (iptables !== undefined && !/^[\w./-]+$/.test(iptables)) throw fail(`--iptables: "${iptables}" is not a program name or path (e.g. iptables-nft, iptables-legacy)`);
  const offset = int(flags.portOffset, '--port-offset', 0, -15000, 50000);
  const ports: ZtunnelPorts = {
    outbound: PORT_OUTBOUND + offset, inboundPlaintext: PORT_INBOUND_PLAINTEXT + offset, hbone: PORT_HBONE + offset,
    socks5: PORT_SOCKS5 + offset, admin: int(flags.adminPort, '--admin-port', PORT_ADMIN + offset, 0, 65535),
    metrics: PORT_METRICS + offset, ready: PORT_READY + offset,
  };
  const markRaw = pick(flags.captureMark, ENV_CAPTURE_MARK);
  let captureMark: number | undefined = capture ? DEFAULT_CAPTURE_MARK : undefined;
  if (markRaw !== undefined) {
    captureMark = Number(markRaw);
    if (!Number.isInteger(captureMark) || captureMark <= 0 || captureMark > 0xffffffff) throw fail(`--capture-mark: "${markRaw}" must be a positive 32-bit number (e.g. 0x539)`);
  }
  const backlogRaw = pick(flags.listenBacklog, ENV_LISTEN_BACKLOG);
  const listenBacklog = backlogRaw === undefined ? undefined : int(backlogRaw, '--listen-backlog', 0, 1, MAX_LISTEN_BACKLOG);
  const ejectionBaseMs = duration(pick(flags.ejectionBase, ENV_EJECTION_BASE), '--ejection-base', DEFAULT_EJECTION_BASE_MS);
  const ejectionMaxMs = duration(pick(flags.ejectionMax, ENV_EJECTION_MAX), '--ejection-max', DEFAULT_EJECTION_MAX_MS);
  if (ejectionBaseMs <= 0) throw fail(`--ejection-base: must be longer than 0 (e.g. 5s)`);
  if (ejectionMaxMs < ejectionBaseMs) throw fail(`--ejection-max (${ejectionMaxMs} ms) must be at least --ejection-base (${ejectionBaseMs} ms)`);
  const hboneIdleMs = duration(pick(flags.hboneIdle, ENV_HBONE_IDLE), '--hbone-idle', DEFAULT_HBONE_IDLE_MS);
  if (hboneIdleMs > MAX_TIMER_MS) throw fail(`--hbone-idle: at most 24d (a timer's range), or 0 for never`);
  const poolIdleMs = duration(pick(flags.poolIdle, ENV_POOL_IDLE), '--pool-idle', DEFAULT_POOL_IDLE_MS);
  if (poolIdleMs < 1 || poolIdleMs > MAX_TIMER_MS) throw fail(`--pool-idle: from 1ms to 24d (a timer's range)`);
  const gc = pick(flags.gc, ENV_GC) ?? 'atomic';
  if (!(GC_MODES as readonly string[]).includes(gc)) throw fail(`--gc: "${gc}" is not one of ${GC_MODES.join(', ')}`);
  const maxMsgRaw = pick(flags.xdsMaxMessageSize, ENV_XDS_MAX_MESSAGE_SIZE);
  const xdsMaxMessageBytes = maxMsgRaw === undefined ? DEFAULT_XDS_MAX_RECEIVE_BYTES : parseByteSize(maxMsgRaw);
  if (xdsMaxMessageBytes === undefined || xdsMaxMessageBytes < 1024) throw fail(`--xds-max-message-size: "${maxMsgRaw}" is not a size of at least 1KiB (e.g. 64MiB)`);
  const fastPathRaw = flags.sameNodeFastPath === undefined ? env[ENV_SAME_NODE_FAST_PATH] : String(flags.sameNodeFastPath);
  if (fastPathRaw !== undefined && fastPathRaw !== 'true' && fastPathRaw !== 'false') throw fail(`${ENV_SAME_NODE_FAST_PATH}: "${fastPathRaw}" must be true or false`);
  return {
    sameNodeFastPath: fastPathRaw !== 'false',
    ...(captureMark !== undefined ? { captureMark } : {}),
    ...(capture ? { capture: { resyncMs, teardown: teardownRaw === 'true', ...(captureScripts ? { scriptsDir: captureScripts } : {}), ...(iptables ? { iptables } : {}) } } : {}),
    adminAddress,
    ...(listenBacklog !== undefined ? { listenBacklog } : {}),
    endpointAttempts: int(pick(flags.endpointAttempts, ENV_ENDPOINT_ATTEMPTS), '--endpoint-attempts', DEFAULT_ENDPOINT_ATTEMPTS, 1, 10),
    ejectionBaseMs,
    ejectionMaxMs,
    xdsMaxMessageBytes,
    workers: parseWorkers(pick(flags.workers, ENV_WORKERS)),
    gc: gc as GcMode,
    nodeName,
    xdsAddress: parseHostPort(pick(flags.xdsAddress, ENV_XDS_ADDRESS) ?? DEFAULT_XDS_ADDRESS, '--xds-address'),
    token,
    ...(pick(flags.token, ENV_TOKEN) === undefined && tokenFile ? { tokenFile } : {}),
    rootCertPem,
    listenAddress,
    ports,
    localPodListeners,
    drainMs: duration(pick(flags.drain, ENV_DRAIN), '--drain', DEFAULT_DRAIN_MS),
    poolIdleMs,
    poolMaxStreams: int(pick(flags.poolMaxStreams, ENV_POOL_MAX_STREAMS), '--pool-max-streams', DEFAULT_POOL_MAX_STREAMS, 1, 10_000),
    hboneIdleMs,
    hboneMaxStreams: int(pick(flags.hboneMaxStreams, ENV_HBONE_MAX_STREAMS), '--hbone-max-streams', DEFAULT_HBONE_MAX_STREAMS, 1, 10_000),
    hboneMaxHandshakes: int(pick(flags.hboneMaxHandshakes, ENV_HBONE_MAX_HANDSHAKES), '--hbone-max-handshakes', DEFAULT_HBONE_MAX_PENDING_HANDSHAKES, 1, 1_000_000),
    hboneMaxHandshakesPerSource: int(pick(flags.hboneMaxHandshakesPerSource, ENV_HBONE_MAX_HANDSHAKES_PER_SOURCE), '--hbone-max-handshakes-per-source', DEFAULT_HBONE_MAX_PENDING_HANDSHAKES_PER_SOURCE, 1, 1_000_000),
    hboneMaxSessionsPerIdentity: int(pick(flags.hboneMaxSessionsPerIdentity, ENV_HBONE_MAX_SESSIONS_PER_IDENTITY), '--hbone-max-sessions-per-identity', DEFAULT_HBONE_MAX_SESSIONS_PER_IDENTITY, 1, 1_000_000),
    certTtlMs: duration(pick(flags.certTtl, ENV_CERT_TTL), '--cert-ttl', DEFAULT_CERT_TTL_MS),
    connectTimeoutMs: duration(pick(flags.connectTimeout, ENV_CONNECT_TIMEOUT), '--connect-timeout', DEFAULT_CONNECT_TIMEOUT_MS),
  };
}
