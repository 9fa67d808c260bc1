/**
 * The waypoint's configuration (DESIGN §6): which Gateway it is, where the controller is, where it listens, and
 * its limits. Pure apart from reading the token and root files it is pointed at; flags win over the environment.
 */
import { isIP } from 'node:net';
import { configFail, configValues } from '../common/config-values.js';
import { parseByteSize } from '../common/byte-size.js';
import { parseHostPort, type HostPort } from '../common/net.js';
import { DEFAULT_XDS_MAX_RECEIVE_BYTES } from '../common/xds/xds-client.js';
import { parseWorkers } from '../dataplane/workers/workers-flag.js';
import { HBONE_PORT } from '../hbone/wire.js';

export const ENV_WAYPOINT = 'STRAIT_WAYPOINT';
export const ENV_XDS_ADDRESS = 'STRAIT_XDS_ADDRESS';
export const ENV_TOKEN = 'STRAIT_TOKEN';
export const ENV_TOKEN_FILE = 'STRAIT_TOKEN_FILE';
export const ENV_ROOT_CERT = 'STRAIT_ROOT_CERT';
export const ENV_LISTEN_ADDRESS = 'STRAIT_LISTEN_ADDRESS';
export const ENV_SERVICE_ACCOUNT = 'STRAIT_SERVICE_ACCOUNT';
export const ENV_TRUST_DOMAIN = 'STRAIT_TRUST_DOMAIN';
export const ENV_DRAIN = 'STRAIT_DRAIN_DURATION';
export const ENV_CERT_TTL = 'STRAIT_CERT_TTL';
export const ENV_CONNECT_TIMEOUT = 'STRAIT_CONNECT_TIMEOUT';
export const ENV_MAX_HEADER_SIZE = 'STRAIT_MAX_HEADER_SIZE';
export const ENV_RETRY_BUFFER = 'STRAIT_RETRY_BUFFER';
export const ENV_RETRY_BUFFER_TOTAL = 'STRAIT_RETRY_BUFFER_TOTAL';
export const ENV_XDS_MAX_MESSAGE_SIZE = 'STRAIT_XDS_MAX_MESSAGE_SIZE';
export const ENV_HBONE_MAX_STREAMS = 'STRAIT_HBONE_MAX_STREAMS';
/** Data-plane workers (issue 14): a number, or auto. */
export const ENV_WORKERS = 'STRAIT_WORKERS';

/**
 * Node options the waypoint process should be started with (they size V8's heap, so they cannot be set from inside):
 * a 2 MB semi-space, as the ztunnel's. Measured at 1,000 req/s through the waypoint (bench/waypoint.ts): peak RSS
 * 105.5 MB with it, about 160 MB without. `strait up` passes them; a Deployment passes them on its command line.
 */
export const WAYPOINT_NODE_OPTIONS: readonly string[] = ['--max-semi-space-size=2'];

/**
 * V8 settings the waypoint process applies to itself at start (process-wide, so the command does it): route and
 * policy regexes come from users' manifests, and JavaScript's backtracking engine can take exponential time on a
 * hostile path where Envoy's RE2 takes linear time ("(a+)+b" against 30 a's: 7 s here, 2 ms with this fallback to
 * V8's linear engine).
 */
export const WAYPOINT_V8_FLAGS: readonly string[] = ['--enable-experimental-regexp-engine-on-excessive-backtracks'];

export const PORT_ADMIN = 15000;
export const PORT_METRICS = 15020;
export const PORT_READY = 15021;
export const DEFAULT_XDS_ADDRESS = '127.0.0.1:15012';
export const DEFAULT_LISTEN_ADDRESS = '127.0.0.1';
export const DEFAULT_TRUST_DOMAIN = 'cluster.local';
export const DEFAULT_DRAIN_MS = 5_000;
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** Request headers larger than this (all of them, bytes) get 431 (Envoy's default max_request_headers_kb is 60). */
export const DEFAULT_MAX_HEADER_BYTES = 60 * 1024;
/**
 * A request body is kept up to this size so that a retry can send it again; a larger body is streamed and its
 * request is not retried after the first byte went out (Envoy's per-request buffer limit plays the same role).
 */
export const DEFAULT_RETRY_BUFFER_BYTES = 64 * 1024;
/** All request bodies held for retries at once; past it, new requests stream their bodies (and are not retried). */
export const DEFAULT_RETRY_BUFFER_TOTAL_BYTES = 64 * 1024 * 1024;
/** Streams each client HBONE connection may open (SETTINGS_MAX_CONCURRENT_STREAMS). */
export const DEFAULT_HBONE_MAX_STREAMS = 100;

export interface WaypointPorts {
  hbone: number;
  admin: number;
  metrics: number;
  ready: number;
}

export interface WaypointConfig {
  /** The Gateway this waypoint is. */
  namespace: string;
  name: string;
  /** The service account whose identity it presents (default: the Gateway's name, as Istio's waypoints). */
  serviceAccount: string;
  trustDomain: string;
  xdsAddress: HostPort;
  token: string;
  /**
   * Where `token` was read from (--token-file): re-read at every (re)connect and certificate request, because a
   * Kubernetes projected token rotates. Absent when the token was given directly (--token / STRAIT_TOKEN).
   */
  tokenFile?: string;
  rootCertPem: string;
  listenAddress: string;
  ports: WaypointPorts;
  drainMs: number;
  certTtlMs: number;
  connectTimeoutMs: number;
  maxHeaderBytes: number;
  retryBufferBytes: number;
  retryBufferTotalBytes: number;
  hboneMaxStreams: number;
  xdsMaxMessageBytes: number;
  /** Data-plane worker processes (--workers); 1 = one process, no cluster (dataplane/workers). */
  workers: number;
}

export interface WaypointFlags {
  waypoint?: string;
  serviceAccount?: string;
  trustDomain?: string;
  xdsAddress?: string;
  token?: string;
  tokenFile?: string;
  rootCert?: string;
  listenAddress?: string;
  portOffset?: string;
  drain?: string;
  certTtl?: string;
  connectTimeout?: string;
  maxHeaderSize?: string;
  retryBuffer?: string;
  retryBufferTotal?: string;
  hboneMaxStreams?: string;
  xdsMaxMessageSize?: string;
  workers?: string;
}

const fail = configFail;

export function parseWaypointConfig(env: Record<string, string | undefined>, flags: WaypointFlags = {}): WaypointConfig {
  const { pick, readFile, duration, int, size } = configValues(env);
  const which = pick(flags.waypoint, ENV_WAYPOINT);
  if (!which) throw fail(`no waypoint named: pass --waypoint NAMESPACE/NAME (the Gateway with gatewayClassName istio-waypoint) or set ${ENV_WAYPOINT}`);
  const [namespace, name, ...rest] = which.split('/');
  if (!namespace || !name || rest.length > 0) throw fail(`--waypoint must be NAMESPACE/NAME, got "${which}"`);
  const tokenFile = pick(flags.tokenFile, ENV_TOKEN_FILE);
  const token = (pick(flags.token, ENV_TOKEN) ?? (tokenFile ? readFile(tokenFile, '--token-file') : '')).trim();
  if (!token) throw fail(`no bootstrap token: pass --token-file FILE (the controller writes <data-dir>/tokens/waypoint-${namespace}-${name}.token; \`strait token --waypoint ${namespace}/${name}\` prints it) or set ${ENV_TOKEN}`);
  const rootPath = pick(flags.rootCert, ENV_ROOT_CERT);
  if (!rootPath) throw fail(`no mesh root certificate: pass --root-cert FILE (the controller's <data-dir>/root-cert.pem) or set ${ENV_ROOT_CERT}`);
  const rootCertPem = readFile(rootPath, '--root-cert');
  if (!rootCertPem.includes('BEGIN CERTIFICATE')) throw fail(`--root-cert ${rootPath} holds no PEM certificate`);
  const listenAddress = pick(flags.listenAddress, ENV_LISTEN_ADDRESS) ?? DEFAULT_LISTEN_ADDRESS;
  if (!isIP(listenAddress)) throw fail(`--listen-address: "${listenAddress}" is not an IP address`);
  const offset = int(flags.portOffset, '--port-offset', 0, -15000, 50000);
  const maxMsgRaw = pick(flags.xdsMaxMessageSize, ENV_XDS_MAX_MESSAGE_SIZE);
  const xdsMaxMessageBytes = maxMsgRaw === undefined ? DEFAULT_XDS_MAX_RECEIVE_BYTES : parseByteSize(maxMsgRaw);
  if (xdsMaxMessageBytes === undefined || xdsMaxMessageBytes < 1024) throw fail(`--xds-max-message-size: "${maxMsgRaw}" is not a size of at least 1KiB (e.g. 64MiB)`);
  return {
    namespace,
    name,
    serviceAccount: pick(flags.serviceAccount, ENV_SERVICE_ACCOUNT) ?? name,
    trustDomain: pick(flags.trustDomain, ENV_TRUST_DOMAIN) ?? DEFAULT_TRUST_DOMAIN,
    xdsAddress: parseHostPort(pick(flags.xdsAddress, ENV_XDS_ADDRESS) ?? DEFAULT_XDS_ADDRESS, '--xds-address'),
    token,
    ...(pick(flags.token, ENV_TOKEN) === undefined && tokenFile ? { tokenFile } : {}),
    rootCertPem,
    listenAddress,
    ports: { hbone: HBONE_PORT + offset, admin: PORT_ADMIN + offset, metrics: PORT_METRICS + offset, ready: PORT_READY + offset },
    drainMs: duration(pick(flags.drain, ENV_DRAIN), '--drain', DEFAULT_DRAIN_MS),
    certTtlMs: duration(pick(flags.certTtl, ENV_CERT_TTL), '--cert-ttl', 0),
    connectTimeoutMs: duration(pick(flags.connectTimeout, ENV_CONNECT_TIMEOUT), '--connect-timeout', DEFAULT_CONNECT_TIMEOUT_MS),
    maxHeaderBytes: size(pick(flags.maxHeaderSize, ENV_MAX_HEADER_SIZE), '--max-header-size', DEFAULT_MAX_HEADER_BYTES, 1024, 1024 * 1024),
    retryBufferBytes: size(pick(flags.retryBuffer, ENV_RETRY_BUFFER), '--retry-buffer', DEFAULT_RETRY_BUFFER_BYTES, 0, 64 * 1024 * 1024),
    retryBufferTotalBytes: size(pick(flags.retryBufferTotal, ENV_RETRY_BUFFER_TOTAL), '--retry-buffer-total', DEFAULT_RETRY_BUFFER_TOTAL_BYTES, 0, 4 * 1024 * 1024 * 1024),
    hboneMaxStreams: int(pick(flags.hboneMaxStreams, ENV_HBONE_MAX_STREAMS), '--hbone-max-streams', DEFAULT_HBONE_MAX_STREAMS, 1, 10_000),
    workers: parseWorkers(pick(flags.workers, ENV_WORKERS)),
    xdsMaxMessageBytes,
  };
}
