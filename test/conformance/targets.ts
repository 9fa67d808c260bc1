/**
 * Servers to run the conformance tables against, on loopback port 0, all with mesh certificates and client
 * certificates required:
 * - the HBONE server (HboneServer): CONNECT is relayed to the target named in :authority, anything else is
 *   answered 405 (a response, which is all the suite's GET/POST cases need);
 * - node:http2's secure server as the reference: it answers every request (200 and a short body) and relays
 *   CONNECT the same way;
 * - the upstream both relay CONNECT to: it writes GREETING at once, echoes, and closes its side after ours.
 */
import net from 'node:net';
import http2 from 'node:http2';
import { join } from 'node:path';
import { once } from 'node:events';
import { CertificateAuthority, SpiffeId, createKeyAndCsr } from '../../src/identity/index.js';
import { HboneServer, relay, type HboneInboundRequest, type WorkloadCert } from '../../src/hbone/index.js';

import { GREETING, type ServerTarget } from './case.js';
import { tempDir } from '../helpers/temp-dir.js';

export const SERVER_ID = 'spiffe://cluster.local/ns/conformance/sa/server';
export const CLIENT_ID = 'spiffe://cluster.local/ns/conformance/sa/client';

export interface MeshCerts {
  rootPem: string;
  server: WorkloadCert;
  client: WorkloadCert;
  cleanup(): Promise<void>;
}

/** A mesh CA in a temporary directory, and a server and a client certificate from it. */
export async function makeMeshCerts(): Promise<MeshCerts> {
  const dir = tempDir('h2-conformance');
  const ca = await CertificateAuthority.loadOrCreate({ dataDir: join(dir.path, 'ca') });
  const issue = async (id: string): Promise<WorkloadCert> => {
    const { keyPem, csrPem } = await createKeyAndCsr();
    return { keyPem, certChainPem: ca.signWorkload(csrPem, SpiffeId.parse(id)).certChainPem };
  };
  return { rootPem: ca.rootCertPem, server: await issue(SERVER_ID), client: await issue(CLIENT_ID), cleanup: async () => dir.remove() };
}

export interface Running {
  target: ServerTarget;
  close(): Promise<void>;
}

/** The upstream behind every CONNECT: greets, echoes, half-closes after us. */
export async function startUpstream(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    s.write(GREETING);
    s.pipe(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function clientTls(certs: MeshCerts): ServerTarget['tls'] {
  return { cert: certs.client.certChainPem, key: certs.client.keyPem, ca: certs.rootPem };
}

/** HboneServer with certificates from `certs`; CONNECT to host:port is relayed, answered 200 once connected. */
export async function startHboneTarget(certs: MeshCerts, upstreamPort: number, opts: { maxConcurrentStreams?: number } = {}): Promise<Running> {
  const server = new HboneServer({
    rootPem: certs.rootPem,
    certFor: () => certs.server,
    onConnect: relayConnect,
    ...(opts.maxConcurrentStreams !== undefined ? { maxConcurrentStreams: opts.maxConcurrentStreams } : {}),
  });
  const { port } = await server.listen('127.0.0.1', 0);
  return {
    target: {
      name: 'HBONE server',
      host: '127.0.0.1',
      port,
      tls: clientTls(certs),
      authority: `127.0.0.1:${port}`,
      connectAuthority: `127.0.0.1:${upstreamPort}`,
    },
    close: () => server.close(),
  };
}

function relayConnect(req: HboneInboundRequest): void {
  const upstream = net.connect({ host: req.targetHost, port: req.targetPort });
  upstream.once('connect', () => {
    upstream.removeAllListeners('error');
    void relay(req.accept(), upstream);
  });
  upstream.once('error', (err) => req.reject(503, `cannot reach ${req.authority}: ${err.message}`));
}

/** node:http2's secure server, the reference: every request answered 200 with a body, CONNECT relayed. */
export async function startNodeTarget(certs: MeshCerts, upstreamPort: number, opts: { maxConcurrentStreams?: number } = {}): Promise<Running> {
  const server = http2.createSecureServer({
    key: certs.server.keyPem,
    cert: certs.server.certChainPem.join('\n'),
    ca: certs.rootPem,
    requestCert: true,
    rejectUnauthorized: true,
    settings: { maxConcurrentStreams: opts.maxConcurrentStreams ?? 100 },
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
    s.on('error', () => undefined);
  });
  server.on('sessionError', () => undefined);
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    if (headers[':method'] === 'CONNECT') {
      const [host, port] = String(headers[':authority']).split(':');
      const upstream = net.connect({ host: host!, port: Number(port), allowHalfOpen: true });
      upstream.on('error', () => {
        if (!stream.headersSent && !stream.destroyed) stream.respond({ ':status': 503 }, { endStream: true });
        else stream.destroy();
      });
      upstream.once('connect', () => {
        if (stream.destroyed) {
          upstream.destroy();
          return;
        }
        stream.respond({ ':status': 200 });
        stream.pipe(upstream);
        upstream.pipe(stream);
        stream.on('close', () => upstream.destroy());
      });
      return;
    }
    const head = headers[':method'] === 'HEAD';
    stream.respond({ ':status': 200, 'content-type': 'text/plain' }, { endStream: head });
    if (!head) stream.end('hello from node:http2\n');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  return {
    target: {
      name: 'node:http2',
      host: '127.0.0.1',
      port,
      tls: clientTls(certs),
      authority: `127.0.0.1:${port}`,
      connectAuthority: `127.0.0.1:${upstreamPort}`,
    },
    async close() {
      for (const s of sessions) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
