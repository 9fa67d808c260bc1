/**
 * The controller's one gRPC listener (xDS + CA, TLS 1.3): server options that bound what a connection may hold,
 * the interceptors, and the bind with an error that says what to check.
 */
import * as grpc from '@grpc/grpc-js';
import { tls13ServerCredentials } from '../common/grpc.js';
import { StraitError, errorMessage } from '../common/errors.js';
import { formatHostPort, type HostPort } from '../common/net.js';
import type { CertificateAuthority } from '../identity/index.js';
import type { CaServer } from './ca-server.js';
import type { DoorLimits } from './door-limits.js';
import { resetAfterStatusInterceptor } from './reset-after-status.js';
import type { XdsServer } from './xds/xds-server.js';

/** DNS names in the controller's serving certificate (proxies addressing it by IP check this one). */
export const CONTROLLER_SERVING_NAMES = ['localhost', 'strait-controller', 'strait-controller.istio-system.svc', 'istiod.istio-system.svc'];

/** The names of the controller's Service in its namespace, as proxies in a cluster dial it. */
export function servingNamesFor(systemNamespace: string): string[] {
  return [...new Set([...CONTROLLER_SERVING_NAMES, `strait-controller.${systemNamespace}.svc`, `strait-controller.${systemNamespace}.svc.cluster.local`])];
}

export async function startGrpcServer(o: { address: HostPort; ca: CertificateAuthority; xds: XdsServer; caServer: CaServer; limits: DoorLimits; dnsNames?: string[] }): Promise<{ server: grpc.Server; port: number }> {
  const { address, ca, xds, caServer, limits } = o;
  const serving = ca.issueServing({
    dnsNames: o.dnsNames ?? CONTROLLER_SERVING_NAMES,
    ips: [...new Set(['127.0.0.1', ...(address.host === '0.0.0.0' || address.host === '::' ? [] : [address.host])])],
  });
  const server = new grpc.Server({
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.max_receive_message_length': xds.grpcReceiveLimit(),
    // A connection with no call open (e.g. TLS without any credential) is closed; one with calls never is: grpc-js
    // has no per-source connection cap (see README "Limits").
    'grpc.max_connection_idle_ms': limits.connectionIdleMs,
    'grpc.max_concurrent_streams': limits.maxCallsPerConnection,
    // The first wraps the transport: every status, the CA interceptor's refusals included, passes through it.
    interceptors: [resetAfterStatusInterceptor(), caServer.interceptor()],
  });
  xds.addTo(server);
  caServer.addTo(server);
  const creds = tls13ServerCredentials({ rootPem: ca.rootCertPem, keyPem: serving.keyPem, certChainPem: serving.certChainPem.join('') });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(formatHostPort(address), creds, (err, p) => (err ? reject(err) : resolve(p)));
  }).catch((err) => {
    throw new StraitError('STRAIT_ERR_LISTEN', `cannot listen for xDS on ${formatHostPort(address)}: ${errorMessage(err)} (is another controller running? use --xds-address)`, { cause: err });
  });
  return { server, port };
}

/** Stops the server: in-flight calls get 2 s to finish, then everything is cut. */
export function stopGrpcServer(server: grpc.Server): Promise<void> {
  return new Promise<void>((resolve) => {
    const t = setTimeout(() => { server.forceShutdown(); resolve(); }, 2000);
    server.tryShutdown(() => { clearTimeout(t); resolve(); });
  });
}
