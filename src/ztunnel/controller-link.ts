/**
 * The ztunnel's controller link (the single process, or the primary with data-plane workers): the one xDS stream
 * (the state's one writer), the one CA client, and the certificates of the local pods. Never loaded in a worker.
 */
import net from 'node:net';
import { tls13ChannelCredentials } from '../common/grpc.js';
import type { Logger } from '../common/log.js';
import { formatHostPort } from '../common/net.js';
import { TYPE_AUTHORIZATION, TYPE_SERVICE, TYPE_WORKLOAD } from '../common/xds/resources.js';
import type { LogLevels } from '../dataplane/runtime/log-levels.js';
import type { ProxyState } from '../dataplane/state/proxy-state.js';
import { startStateSync } from '../dataplane/state/state-sync.js';
import { tokenSource } from '../dataplane/token-source.js';
import { CaClient } from '../identity/ca-client.js';
import type { ZtunnelConfig } from './config.js';
import { ZtunnelIdentities, caFetch } from './identities.js';
import type { ZtunnelMetrics } from './metrics.js';

/** A DNS name in the controller's serving certificate (see controller/app.ts). */
export const CONTROLLER_TLS_NAME = 'strait-controller';

const CONFIG_TYPES = [TYPE_WORKLOAD, TYPE_SERVICE, TYPE_AUTHORIZATION] as const;

/** The controller link: xDS (the state's one writer), the CA, and the certificates of the local pods. */
export function connectController(cfg: ZtunnelConfig, state: ProxyState, metrics: ZtunnelMetrics, logs: LogLevels, log: Logger, onSynced: (type: string) => void) {
  const credentials = tls13ChannelCredentials(cfg.rootCertPem);
  const address = formatHostPort(cfg.xdsAddress);
  // TLS sends no IP as server name (RFC 6066): for an IP address, check the controller's certificate by the DNS
  // name its serving certificate carries.
  const channelOptions = net.isIP(cfg.xdsAddress.host) ? { 'grpc.ssl_target_name_override': CONTROLLER_TLS_NAME, 'grpc.default_authority': CONTROLLER_TLS_NAME } : {};
  const token = tokenSource({ token: cfg.token, ...(cfg.tokenFile ? { file: cfg.tokenFile } : {}), logger: log });
  const ca = new CaClient({ address, credentials, channelOptions, metadata: () => ({ authorization: `Bearer ${token()}`, 'x-strait-node': cfg.nodeName }) });
  const identities = new ZtunnelIdentities(state, cfg.nodeName, caFetch(ca, Math.floor(cfg.certTtlMs / 1000)), logs.child({ part: 'certs' }), metrics);
  const synced = new Set<string>();
  let connected = false;
  const xds = startStateSync({
    address, credentials, channelOptions, node: cfg.nodeName, token, state, logger: logs.child({ part: 'xds' }),
    limits: { maxReceiveBytes: cfg.xdsMaxMessageBytes },
  });
  xds.on('update', (type) => {
    if (synced.has(type)) return;
    synced.add(type);
    onSynced(type);
  });
  xds.on('connected', () => { connected = true; metrics.xdsConnected.set(1); log.info({ controller: address }, 'connected to the controller'); });
  xds.on('disconnected', (err) => { connected = false; metrics.xdsConnected.set(0); log.warn({ err: err.message }, 'controller unreachable; serving the last configuration'); });
  xds.on('nack', (type, err) => log.error({ type, err: err.message }, 'rejected a configuration push (NACK)'));
  xds.start();
  return {
    identities,
    status: () => ({ address, connected }),
    readiness: () => {
      const waiting = CONFIG_TYPES.filter((t) => !synced.has(t));
      const certsReady = identities.allReady();
      return { ready: waiting.length === 0 && certsReady, detail: { config: waiting.map((t) => `waiting for ${t}`), certificates: certsReady ? 'ok' : 'waiting for workload certificates' } };
    },
    close: () => { xds.close(); identities.close(); ca.close(); },
  };
}

