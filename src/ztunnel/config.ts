import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { StraitError, errorMessage } from '../common/errors.js';
import { parseDurationMs } from '../common/model/duration.js';
import { parseHostPort, type HostPort } from '../common/net.js';
import { parseByteSize } from '../common/byte-size.js';
import { DEFAULT_XDS_MAX_RECEIVE_BYTES } from '../common/xds/xds-client.js';

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
export const ENV_CERT_TTL = 'STRAIT_CERT_TTL';
export const ENV_CONNECT_TIMEOUT = 'STRAIT_CONNECT_TIMEOUT';
export const ENV_CAPTURE_MARK = 'STRAIT_CAPTURE_MARK';
export const ENV_GC = 'STRAIT_GC';
export const ENV_XDS_MAX_MESSAGE_SIZE = 'STRAIT_XDS_MAX_MESSAGE_SIZE';

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
export const PORT_HBONE = 15008;
export const PORT_SOCKS5 = 15080;
export const PORT_ADMIN = 15000;
export const PORT_METRICS = 15020;
export const PORT_READY = 15021;

export const DEFAULT_XDS_ADDRESS = '127.0.0.1:15012';
export const DEFAULT_LISTEN_ADDRESS = '127.0.0.1';
export const DEFAULT_DRAIN_MS = 5_000;
export const DEFAULT_POOL_IDLE_MS = 30_000;
export const DEFAULT_POOL_MAX_STREAMS = 100;
/** 0 = the controller's default lifetime. */
export const DEFAULT_CERT_TTL_MS = 0;
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

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
  rootCertPem: string;
  /** The node's address: every standard listener binds here. */
  listenAddress: string;
  ports: ZtunnelPorts;
  /**
   * Local mesh: also listen for HBONE on each local pod's own address (port `ports.hbone`), presenting that pod's
   * certificate. Under capture the kernel redirects pod:15008 to the node listener instead.
   */
  localPodListeners: boolean;
  drainMs: number;
  poolIdleMs: number;
  poolMaxStreams: number;
  certTtlMs: number;
  connectTimeoutMs: number;
  /**
   * Under capture (scripts/iptables): the fwmark the ztunnel puts on its own connections to pods, which the
   * capture rules skip (Istio's 1337 = 0x539). Undefined in the local mesh, where nothing is captured.
   */
  captureMark?: number;
  gc: GcMode;
  /** Largest xDS response accepted (bytes); a larger one ends the stream before it is read in full. */
  xdsMaxMessageBytes: number;
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
  certTtl?: string;
  connectTimeout?: string;
  captureMark?: string;
  gc?: string;
  xdsMaxMessageSize?: string;
}

const fail = (msg: string) => new StraitError('STRAIT_ERR_CONFIG', msg);

/** Pure apart from reading the token and root files it is pointed at. Flags win over the environment. */
export function parseConfig(env: Record<string, string | undefined>, flags: ZtunnelFlags = {}): ZtunnelConfig {
  const pick = (flag: string | undefined, envName: string) => flag ?? (env[envName] || undefined);
  const nodeName = pick(flags.node, ENV_NODE_NAME);
  if (!nodeName) throw fail(`no node name: pass --node NAME or set ${ENV_NODE_NAME} (in Kubernetes, from spec.nodeName)`);
  const readFile = (path: string, what: string) => {
    try {
      return readFileSync(resolve(path), 'utf8');
    } catch (err) {
      throw fail(`${what} ${path} cannot be read: ${errorMessage(err)}`);
    }
  };
  const tokenFile = pick(flags.tokenFile, ENV_TOKEN_FILE);
  const token = (pick(flags.token, ENV_TOKEN) ?? (tokenFile ? readFile(tokenFile, '--token-file') : '')).trim();
  if (!token) throw fail(`no bootstrap token: pass --token-file FILE (the controller writes <data-dir>/tokens/node-${nodeName}.token) or set ${ENV_TOKEN}`);
  const rootPath = pick(flags.rootCert, ENV_ROOT_CERT);
  if (!rootPath) throw fail(`no mesh root certificate: pass --root-cert FILE (the controller's <data-dir>/root-cert.pem) or set ${ENV_ROOT_CERT}`);
  const rootCertPem = readFile(rootPath, '--root-cert');
  if (!rootCertPem.includes('BEGIN CERTIFICATE')) throw fail(`--root-cert ${rootPath} holds no PEM certificate`);
  const listenAddress = pick(flags.listenAddress, ENV_LISTEN_ADDRESS) ?? DEFAULT_LISTEN_ADDRESS;
  if (!isIP(listenAddress)) throw fail(`--listen-address: "${listenAddress}" is not an IP address`);
  const duration = (raw: string | undefined, what: string, dflt: number) => {
    if (raw === undefined) return dflt;
    const ms = parseDurationMs(raw);
    if (ms === undefined) throw fail(`${what}: "${raw}" is not a duration (use forms like 500ms, 5s, 1m)`);
    return ms;
  };
  const int = (raw: string | undefined, what: string, dflt: number, min: number, max: number) => {
    if (raw === undefined) return dflt;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) throw fail(`${what}: "${raw}" must be a whole number from ${min} to ${max}`);
    return n;
  };
  const offset = int(flags.portOffset, '--port-offset', 0, -15000, 50000);
  const ports: ZtunnelPorts = {
    outbound: PORT_OUTBOUND + offset, inboundPlaintext: PORT_INBOUND_PLAINTEXT + offset, hbone: PORT_HBONE + offset,
    socks5: PORT_SOCKS5 + offset, admin: int(flags.adminPort, '--admin-port', PORT_ADMIN + offset, 0, 65535),
    metrics: PORT_METRICS + offset, ready: PORT_READY + offset,
  };
  const markRaw = pick(flags.captureMark, ENV_CAPTURE_MARK);
  let captureMark: number | undefined;
  if (markRaw !== undefined) {
    captureMark = Number(markRaw);
    if (!Number.isInteger(captureMark) || captureMark <= 0 || captureMark > 0xffffffff) throw fail(`--capture-mark: "${markRaw}" must be a positive 32-bit number (e.g. 0x539)`);
  }
  const gc = pick(flags.gc, ENV_GC) ?? 'atomic';
  if (!(GC_MODES as readonly string[]).includes(gc)) throw fail(`--gc: "${gc}" is not one of ${GC_MODES.join(', ')}`);
  const maxMsgRaw = pick(flags.xdsMaxMessageSize, ENV_XDS_MAX_MESSAGE_SIZE);
  const xdsMaxMessageBytes = maxMsgRaw === undefined ? DEFAULT_XDS_MAX_RECEIVE_BYTES : parseByteSize(maxMsgRaw);
  if (xdsMaxMessageBytes === undefined || xdsMaxMessageBytes < 1024) throw fail(`--xds-max-message-size: "${maxMsgRaw}" is not a size of at least 1KiB (e.g. 64MiB)`);
  return {
    ...(captureMark !== undefined ? { captureMark } : {}),
    xdsMaxMessageBytes,
    gc: gc as GcMode,
    nodeName,
    xdsAddress: parseHostPort(pick(flags.xdsAddress, ENV_XDS_ADDRESS) ?? DEFAULT_XDS_ADDRESS, '--xds-address'),
    token,
    rootCertPem,
    listenAddress,
    ports,
    localPodListeners: flags.localPodListeners ?? env[ENV_LOCAL_POD_LISTENERS] === 'true',
    drainMs: duration(pick(flags.drain, ENV_DRAIN), '--drain', DEFAULT_DRAIN_MS),
    poolIdleMs: duration(pick(flags.poolIdle, ENV_POOL_IDLE), '--pool-idle', DEFAULT_POOL_IDLE_MS),
    poolMaxStreams: int(pick(flags.poolMaxStreams, ENV_POOL_MAX_STREAMS), '--pool-max-streams', DEFAULT_POOL_MAX_STREAMS, 1, 10_000),
    certTtlMs: duration(pick(flags.certTtl, ENV_CERT_TTL), '--cert-ttl', DEFAULT_CERT_TTL_MS),
    connectTimeoutMs: duration(pick(flags.connectTimeout, ENV_CONNECT_TIMEOUT), '--connect-timeout', DEFAULT_CONNECT_TIMEOUT_MS),
  };
}
