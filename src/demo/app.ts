/**
 * The built-in demo app (`strait demo-app`, image `strait/demo-app` in the local mesh): a plain HTTP/1.1
 * server that knows nothing of the mesh. `GET /healthz` answers "ok"; every other path answers JSON saying
 * which app, version and pod answered, and who called, as the node's ztunnel saw the caller:
 *
 *   { "app": "catalog", "version": "v2", "pod": "catalog-v2", "namespace": "backend", "node": "node-a", "path": "/",
 *     "caller": { "address": "127.0.100.1", "identity": "spiffe://cluster.local/ns/shop/sa/client" } }
 *
 * `caller.identity` is null when the connection did not come through the mesh.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { StraitError, bug, errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { PID_HEADER } from '../common/admin.js';
import { CallerLookup, normalizePeer } from './caller-lookup.js';

export interface DemoAppOptions {
  address: string;
  port: number;
  app: string;
  version: string;
  pod: string;
  namespace: string;
  node: string;
  /** "ip:port" of the node's ztunnel admin endpoint. */
  ztunnelAdmin?: string;
}

export interface DemoAppAnswer {
  app: string;
  version: string;
  pod: string;
  namespace: string;
  node: string;
  path: string;
  caller: { address: string | null; identity: string | null };
}

export interface RunningDemoApp {
  address: string;
  port: number;
  close(): Promise<void>;
}

/** Idle keep-alive connections are closed after this; the demo's clients send one request per connection anyway. */
const KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** Say at most once per this period that the ztunnel could not be asked, not once per request. */
const LOOKUP_WARN_INTERVAL_MS = 30_000;

export async function startDemoApp(opts: DemoAppOptions, log: Logger): Promise<RunningDemoApp> {
  const lookup = new CallerLookup(opts.ztunnelAdmin);
  const acceptedAt = new WeakMap<Socket, number>();
  let lastLookupWarning = 0;

  const answer = async (req: IncomingMessage, res: ServerResponse) => {
    const receivedAt = Date.now();
    const url = new URL(req.url ?? '/', 'http://demo-app');
    if (url.pathname === '/healthz') return send(res, 200, 'ok\n', 'text/plain');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return send(res, 405, JSON.stringify({ error: `${req.method} not allowed; the demo app answers GET` }) + '\n', 'application/json');
    }
    const s = req.socket;
    const address = s.remoteAddress ? normalizePeer(s.remoteAddress) : null;
    const peer = `${address}:${s.remotePort}`;
    const found = await lookup.identityOf(peer, acceptedAt.get(s) ?? receivedAt, receivedAt);
    if (found.error && receivedAt - lastLookupWarning > LOOKUP_WARN_INTERVAL_MS) {
      lastLookupWarning = receivedAt;
      log.warn({ err: found.error }, 'cannot look up callers\' identities; answering with identity null');
    }
    const body: DemoAppAnswer = {
      app: opts.app, version: opts.version, pod: opts.pod, namespace: opts.namespace, node: opts.node, path: url.pathname,
      caller: { address, identity: found.identity },
    };
    send(res, 200, JSON.stringify(body) + '\n', 'application/json');
    log.debug({ method: req.method, path: url.pathname, 'src.addr': peer, 'src.identity': found.identity, duration_ms: Date.now() - receivedAt }, 'request');
  };

  const server: Server = createServer((req, res) => {
    answer(req, res).catch((err) => {
      log.error({ err: errorMessage(err) }, 'BUG: demo app request failed');
      if (!res.headersSent) send(res, 500, JSON.stringify({ error: errorMessage(err) }) + '\n', 'application/json');
      else res.destroy();
    });
  });
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.on('connection', (s: Socket) => acceptedAt.set(s, Date.now()));
  server.on('clientError', (err, s: Socket) => {
    log.debug({ err: errorMessage(err) }, 'bad request');
    s.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.address, () => resolve());
  }).catch((err) => {
    throw new StraitError('STRAIT_ERR_LISTEN', `demo app cannot listen on ${opts.address}:${opts.port}: ${errorMessage(err)} (is the address on this machine and the port free?)`, { cause: err });
  });
  const bound = server.address();
  if (!bound || typeof bound === 'string') throw bug('demo app server has no address');
  log.info({ address: `${bound.address}:${bound.port}`, app: opts.app, version: opts.version, ztunnelAdmin: opts.ztunnelAdmin ?? null }, 'demo app listening');

  return {
    address: bound.address,
    port: bound.port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

function send(res: ServerResponse, status: number, body: string, contentType: string): void {
  // The pid tells `strait up` that /healthz was answered by the app it started, not by another mesh's on this address.
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', [PID_HEADER]: String(process.pid) });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
