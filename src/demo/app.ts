/**
 * The built-in demo app (`strait demo-app`, image `strait/demo-app` in the local mesh): an HTTP server that knows
 * nothing of the mesh, speaking HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on one port. `GET /healthz` answers
 * "ok"; every other path answers JSON saying which app, version and pod answered, who called (as the node's ztunnel
 * saw the caller) and what the request looked like when it arrived:
 *
 *   { "app": "catalog", "version": "v2", "pod": "catalog-v2", "namespace": "backend", "node": "node-a", "path": "/",
 *     "caller": { "address": "127.0.100.1", "identity": "spiffe://cluster.local/ns/shop/sa/client" },
 *     "status": 200, "method": "GET", "query": {}, "protocol": "HTTP/1.1", "authority": "catalog.backend",
 *     "headers": { ... }, "bodyBytes": 0 }
 *
 * `caller.identity` is null when the connection did not come through the mesh. Requests ask for a status, a delay
 * or a body size (behaviour.ts); the pod's faults (its strait.dev/demo-* annotations) apply to every path but
 * /healthz. With `grpc`, HTTP/2 connections go to the gRPC service Echo instead (grpc-echo.ts).
 */
import { createServer as createHttp1Server, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createH2Server, type Http2ServerRequest, type Http2ServerResponse, type Http2Session } from 'node:http2';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { StraitError, bug, errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { PID_HEADER } from '../common/admin.js';
import type { DemoBehaviour } from '../local/demo-annotations.js';
import { CallerLookup, normalizePeer } from './caller-lookup.js';
import { MAX_REQUEST_KEY_BYTES, PodFaults, REQUEST_KEY_HEADER, requestAsk } from './behaviour.js';
import { echoServer } from './grpc-echo.js';

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
  /** The pod's faults (from its strait.dev/demo-* annotations). */
  behaviour?: DemoBehaviour;
  /** HTTP/2 connections are gRPC (service strait.demo.v1.Echo); HTTP/1.1 still answers /healthz and JSON. */
  grpc?: boolean;
}

export interface DemoAppAnswer {
  app: string;
  version: string;
  pod: string;
  namespace: string;
  node: string;
  path: string;
  caller: { address: string | null; identity: string | null };
  /** The status of this answer (the asked one, or the pod's fail status). */
  status: number;
  method: string;
  /** Query parameters as received; a repeated name gives an array. */
  query: Record<string, string | string[]>;
  protocol: 'HTTP/1.1' | 'HTTP/2';
  /** Host header (HTTP/1.1) or :authority (HTTP/2). */
  authority: string | null;
  /** Request headers as received, names lower case (HTTP/2 pseudo-headers left out). */
  headers: Record<string, string | string[]>;
  /** Length of the request body. */
  bodyBytes: number;
  /** 1-based count of requests this pod saw with this request's x-request-key (absent without the header). */
  attempt?: number;
  /** `/echo` only: the request body as UTF-8, its first ECHO_BODY_MAX_BYTES. */
  body?: string;
}

export interface RunningDemoApp {
  address: string;
  port: number;
  close(): Promise<void>;
}

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/** Idle keep-alive connections are closed after this; the demo's clients send one request per connection anyway. */
const KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** Say at most once per this period that the ztunnel could not be asked, not once per request. */
const LOOKUP_WARN_INTERVAL_MS = 30_000;
/** `/echo` answers at most this much of the body (the rest is counted in bodyBytes, not kept). */
export const ECHO_BODY_MAX_BYTES = 64 * 1024;
/** Requests waiting out a delay at once; more are answered 503 at once (each holds a timer and a connection). */
export const MAX_DELAYED_REQUESTS = 10_000;
/** A connection that sends nothing for this long, before its protocol is known, is closed. */
const FIRST_BYTES_TIMEOUT_MS = 30_000;
const H2_PREFACE_START = Buffer.from('PRI ');
const FILLER = Buffer.alloc(64 * 1024, 'x');

export async function startDemoApp(opts: DemoAppOptions, log: Logger): Promise<RunningDemoApp> {
  const lookup = new CallerLookup(opts.ztunnelAdmin);
  const faults = new PodFaults(opts.behaviour ?? {});
  const who = { app: opts.app, version: opts.version, pod: opts.pod, namespace: opts.namespace, node: opts.node };
  /** "ip:port" of each open connection → when it was accepted (for the caller lookup). */
  const acceptedAt = new Map<string, number>();
  const sockets = new Set<Socket>();
  let lastLookupWarning = 0;
  let delayed = 0;

  const answer = async (req: Req, res: Res) => {
    const receivedAt = Date.now();
    const url = new URL(req.url ?? '/', 'http://demo-app');
    if (url.pathname === '/healthz') return send(res, req.method, 200, 'ok\n', 'text/plain');
    const ask = requestAsk(url.pathname, req.headers);
    if (ask.kind === 'bad') return sendJson(res, req.method, 400, { error: ask.error });
    const keyHeader = req.headers[REQUEST_KEY_HEADER];
    const key = Array.isArray(keyHeader) ? keyHeader[0] : keyHeader;
    if (key !== undefined && Buffer.byteLength(key) > MAX_REQUEST_KEY_BYTES) {
      return sendJson(res, req.method, 400, { error: `${REQUEST_KEY_HEADER} is longer than ${MAX_REQUEST_KEY_BYTES} bytes` });
    }
    const decision = faults.decide(key);
    const body = await readBody(req, url.pathname === '/echo' || url.pathname === '/echo/');
    const s = req.socket;
    const address = s.remoteAddress ? normalizePeer(s.remoteAddress) : null;
    const peer = `${address}:${s.remotePort}`;
    const local = s.localAddress ? `${normalizePeer(s.localAddress)}:${s.localPort}` : undefined;
    const found = await lookup.identityOf(peer, acceptedAt.get(peer) ?? receivedAt, receivedAt, local);
    if (found.error && receivedAt - lastLookupWarning > LOOKUP_WARN_INTERVAL_MS) {
      lastLookupWarning = receivedAt;
      log.warn({ err: found.error }, 'cannot look up callers\' identities; answering with identity null');
    }
    const delayMs = faults.delayMs + ask.delayMs;
    if (delayMs > 0) {
      if (delayed >= MAX_DELAYED_REQUESTS) return sendJson(res, req.method, 503, { error: `more than ${MAX_DELAYED_REQUESTS} requests are waiting out a delay` });
      delayed++;
      const completed = await new Promise<boolean>((resolve) => {
        const t = setTimeout(() => resolve(true), delayMs);
        res.once('close', () => { clearTimeout(t); resolve(false); });
      }).finally(() => delayed--);
      if (!completed) return;
    }
    const status = decision.failStatus ?? (ask.kind === 'answer' ? ask.status : 200);
    if (ask.kind === 'bytes' && decision.failStatus === undefined) {
      sendBytes(res, req.method, ask.n);
    } else {
      const a: DemoAppAnswer = {
        ...who, path: url.pathname, caller: { address, identity: found.identity }, status, method: req.method ?? '',
        query: queryOf(url), protocol: req.httpVersionMajor === 2 ? 'HTTP/2' : 'HTTP/1.1', authority: authorityOf(req),
        headers: headersOf(req), bodyBytes: body.bytes,
        ...(decision.attempt !== undefined ? { attempt: decision.attempt } : {}), ...(body.text !== undefined ? { body: body.text } : {}),
      };
      sendJson(res, req.method, status, a);
    }
    log.debug({ method: req.method, path: url.pathname, status, 'src.addr': peer, 'src.identity': found.identity, duration_ms: Date.now() - receivedAt }, 'request');
  };

  const handler = (req: Req, res: Res) => {
    answer(req, res).catch((err) => {
      log.error({ err: errorMessage(err) }, 'BUG: demo app request failed');
      if (!res.headersSent) sendJson(res, req.method, 500, { error: errorMessage(err) });
      else res.destroy();
    });
  };

  const http1 = createHttp1Server(handler);
  http1.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  http1.on('clientError', (err, s: Socket) => {
    log.debug({ err: errorMessage(err) }, 'bad request');
    s.destroy();
  });
  const sessions = new Set<Http2Session>();
  let h2: (s: Socket) => void;
  let grpcServer: grpc.Server | undefined;
  let closeH2: () => void;
  if (opts.grpc) {
    grpcServer = echoServer(who, faults);
    const injector = grpcServer.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    h2 = (s) => injector.injectConnection(s);
    closeH2 = () => { injector.destroy(); grpcServer!.forceShutdown(); };
  } else {
    const server = createH2Server();
    server.on('request', handler);
    server.on('session', (session: Http2Session) => {
      sessions.add(session);
      session.once('close', () => sessions.delete(session));
    });
    h2 = (s) => server.emit('connection', s);
    closeH2 = () => { for (const session of sessions) session.destroy(); };
  }

  // Both protocols on one port: HTTP/2 prior knowledge starts with its preface ("PRI * HTTP/2.0"), HTTP/1.1 never does.
  const server: NetServer = createNetServer((s: Socket) => {
    sockets.add(s);
    const peer = `${s.remoteAddress ? normalizePeer(s.remoteAddress) : null}:${s.remotePort}`;
    acceptedAt.set(peer, Date.now());
    s.once('close', () => { sockets.delete(s); acceptedAt.delete(peer); });
    s.on('error', () => undefined);
    s.setTimeout(FIRST_BYTES_TIMEOUT_MS, () => s.destroy());
    let first: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      first = first.length ? Buffer.concat([first, chunk]) : chunk;
      const n = Math.min(first.length, H2_PREFACE_START.length);
      const h2ish = first.subarray(0, n).equals(H2_PREFACE_START.subarray(0, n));
      if (h2ish && first.length < H2_PREFACE_START.length) return;
      s.off('data', onData);
      s.setTimeout(0);
      s.pause();
      s.unshift(first);
      if (h2ish) {
        h2(s);
      } else {
        http1.emit('connection', s);
        s.resume();
      }
    };
    s.on('data', onData);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.address, () => resolve());
  }).catch((err) => {
    throw new StraitError('STRAIT_ERR_LISTEN', `demo app cannot listen on ${opts.address}:${opts.port}: ${errorMessage(err)} (is the address on this machine and the port free?)`, { cause: err });
  });
  const bound = server.address();
  if (!bound || typeof bound === 'string') throw bug('demo app server has no address');
  log.info({ address: `${bound.address}:${bound.port}`, app: opts.app, version: opts.version, ztunnelAdmin: opts.ztunnelAdmin ?? null, grpc: !!opts.grpc, behaviour: opts.behaviour ?? {} }, 'demo app listening');

  return {
    address: bound.address,
    port: bound.port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      closeH2();
      http1.closeAllConnections();
      for (const s of sockets) s.destroy();
    }),
  };
}

/** Counts the body; keeps its first ECHO_BODY_MAX_BYTES as text when asked. */
function readBody(req: Req, keep: boolean): Promise<{ bytes: number; text?: string }> {
  return new Promise((resolve) => {
    let bytes = 0;
    const kept: Buffer[] = [];
    let keptBytes = 0;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (keep && keptBytes < ECHO_BODY_MAX_BYTES) {
        const part = chunk.subarray(0, ECHO_BODY_MAX_BYTES - keptBytes);
        kept.push(part);
        keptBytes += part.length;
      }
    });
    const done = () => resolve({ bytes, ...(keep ? { text: Buffer.concat(kept).toString('utf8') } : {}) });
    req.once('end', done);
    req.once('close', done);
    req.once('error', done);
  });
}

function queryOf(url: URL): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of url.searchParams) {
    const had = out[k];
    out[k] = had === undefined ? v : Array.isArray(had) ? [...had, v] : [had, v];
  }
  return out;
}

function headersOf(req: Req): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(req.headers)) if (!k.startsWith(':') && v !== undefined) out[k] = v;
  return out;
}

function authorityOf(req: Req): string | null {
  const v = req.headers[':authority'] ?? req.headers.host;
  return typeof v === 'string' ? v : null;
}

const NO_BODY = new Set([204, 304]);

function send(res: Res, method: string | undefined, status: number, body: string, contentType: string): void {
  // The pid tells `strait up` that /healthz was answered by the app it started, not by another mesh's on this address.
  const noBody = method === 'HEAD' || NO_BODY.has(status);
  const headers: Record<string, string | number> = { 'content-type': contentType, 'cache-control': 'no-store', [PID_HEADER]: String(process.pid) };
  if (!NO_BODY.has(status)) headers['content-length'] = Buffer.byteLength(body);
  res.writeHead(status, headers);
  if (noBody) res.end();
  else res.end(body);
}

function sendJson(res: Res, method: string | undefined, status: number, body: unknown): void {
  send(res, method, status, JSON.stringify(body) + '\n', 'application/json');
}

/** n filler bytes, written as the client takes them (never n bytes in memory). */
function sendBytes(res: Res, method: string | undefined, n: number): void {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n, 'cache-control': 'no-store', [PID_HEADER]: String(process.pid) });
  if (method === 'HEAD') return void res.end();
  let left = n;
  const pump = () => {
    while (left > 0) {
      const c = left >= FILLER.length ? FILLER : FILLER.subarray(0, left);
      left -= c.length;
      if (!(res as ServerResponse).write(c)) return void res.once('drain', pump);
    }
    res.end();
  };
  pump();
}
