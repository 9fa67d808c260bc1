/**
 * The waypoint's HTTP servers: one `node:http` server for HTTP/1.1 and one `node:http2` server for HTTP/2 prior
 * knowledge (gRPC included), neither listening: each gets the tunnels the inbound side detected as its protocol.
 * Node's parsers reject malformed requests (bad header bytes, conflicting Content-Length / Transfer-Encoding,
 * oversized headers) before the waypoint sees them; such a client gets 400 (431 for oversized headers) and never
 * reaches a backend.
 *
 * Invariants: every request handed to `onRequest` carries the DownstreamContext of the tunnel it came on (looked
 * up by its socket or session, never from a header); every tunnel given is tracked until it closes.
 */
import http from 'node:http';
import http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../common/log.js';
import { RateLimitedLog } from '../../common/rate-limited-log.js';
import type { DownstreamContext } from './downstream.js';

export type DownstreamRequest = http.IncomingMessage | http2.Http2ServerRequest;
export type DownstreamResponse = http.ServerResponse | http2.Http2ServerResponse;
export type DownstreamProtocol = 'http1' | 'h2';

export interface HttpServersOptions {
  maxHeaderBytes: number;
  /** Streams one HTTP/2 client may have open at once. */
  maxConcurrentStreams: number;
  /** A keep-alive HTTP/1.1 connection without a request for this long is closed. */
  keepAliveTimeoutMs: number;
  /** Headers of one request must arrive within this. */
  headersTimeoutMs: number;
  onRequest: (req: DownstreamRequest, res: DownstreamResponse, ctx: DownstreamContext, protocol: DownstreamProtocol) => void;
  /** An HTTP/1.1 `Upgrade` request (WebSocket): passed through as bytes once the backend agrees. */
  onUpgrade: (req: http.IncomingMessage, socket: Duplex, head: Buffer, ctx: DownstreamContext) => void;
  /** A request refused by the parser (counted as response code 400/431 with flag "DPE"). */
  onMalformed: (ctx: DownstreamContext | undefined, status: number, code: string) => void;
  log: Logger;
}

export class HttpServers {
  private readonly http1: http.Server;
  private readonly h2: http2.Http2Server;
  private readonly ctxBySocket = new WeakMap<object, DownstreamContext>();
  private readonly ctxBySession = new WeakMap<object, DownstreamContext>();
  private readonly tunnels = new Set<Duplex>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  /** The context of the tunnel being handed to the HTTP/2 server (its 'session' event fires synchronously). */
  private handing: DownstreamContext | undefined;
  private draining = false;
  private readonly malformedLog: RateLimitedLog;
  /** HTTP/1.1 connections already answered for a parse error. */
  private readonly refused = new WeakSet<object>();

  constructor(private readonly o: HttpServersOptions) {
    this.malformedLog = new RateLimitedLog({ logger: o.log, level: 'warn', msg: 'refused a malformed HTTP/1.1 request', what: 'malformed requests' });
    this.http1 = http.createServer({
      maxHeaderSize: o.maxHeaderBytes,
      keepAliveTimeout: o.keepAliveTimeoutMs,
      headersTimeout: o.headersTimeoutMs,
      requestTimeout: 0,
      insecureHTTPParser: false,
      joinDuplicateHeaders: true,
    }, (req, res) => {
      const ctx = this.ctxBySocket.get(req.socket);
      if (!ctx) { res.writeHead(500).end(); return; }
      // Draining: this response closes its connection (`connection: close`), so the client opens its next elsewhere.
      if (this.draining) res.shouldKeepAlive = false;
      o.onRequest(req, res, ctx, 'http1');
    });
    this.http1.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      const ctx = this.ctxBySocket.get(req.socket);
      if (!ctx) { socket.destroy(); return; }
      if (String(req.headers.upgrade).trim().toLowerCase() === 'h2c') {
        // An upgrade to HTTP/2 (Java's HttpClient and `curl --http2` ask for one on http:// by default): ignored, as
        // Envoy does. The request goes back to the parser without the headers that ask for it and is served as
        // HTTP/1.1 on the same connection, body and keep-alive included.
        socket.unshift(Buffer.concat([withoutH2cUpgrade(req), head]));
        this.http1.emit('connection', socket);
        return;
      }
      o.onUpgrade(req, socket, head, ctx);
    });
    this.http1.on('clientError', (err: NodeJS.ErrnoException & { code?: string }, socket: Duplex) => {
      // Node's parser reports its error again for every later chunk on the connection: one request, one count.
      if (this.refused.has(socket)) { socket.destroy(); return; }
      this.refused.add(socket);
      const ctx = this.ctxBySocket.get(socket);
      const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
      const status = tooLarge ? 431 : 400;
      o.onMalformed(ctx, status, err.code ?? 'unknown');
      this.malformedLog.record(err.code ?? 'unknown', { err: err.message, src: ctx?.peerIdentity });
      if ((socket as Duplex & { writable: boolean }).writable && !(socket as { _httpMessage?: unknown })._httpMessage) {
        socket.end(`HTTP/1.1 ${status} ${tooLarge ? 'Request Header Fields Too Large' : 'Bad Request'}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      } else {
        socket.destroy();
      }
    });
    this.h2 = http2.createServer({
      maxSessionMemory: 16,
      maxHeaderListPairs: 256,
      settings: { maxConcurrentStreams: o.maxConcurrentStreams, maxHeaderListSize: o.maxHeaderBytes, enablePush: false },
    }, (req, res) => {
      const ctx = this.ctxBySession.get(req.stream.session as object);
      if (!ctx) { res.writeHead(500).end(); return; }
      o.onRequest(req, res, ctx, 'h2');
    });
    this.h2.on('session', (session: http2.ServerHttp2Session) => {
      if (this.handing) this.ctxBySession.set(session, this.handing);
      this.sessions.add(session);
      session.once('close', () => this.sessions.delete(session));
      session.on('error', () => undefined);
    });
    this.h2.on('sessionError', () => undefined);
  }

  serveHttp1(tunnel: Duplex, ctx: DownstreamContext): void {
    this.track(tunnel);
    this.ctxBySocket.set(tunnel, ctx);
    this.http1.emit('connection', tunnel);
  }

  serveH2(tunnel: Duplex, ctx: DownstreamContext): void {
    this.track(tunnel);
    this.handing = ctx;
    try {
      this.h2.emit('connection', tunnel);
    } finally {
      this.handing = undefined;
    }
  }

  /** Tunnels carrying HTTP now. */
  get open(): number {
    return this.tunnels.size;
  }

  /** Stop taking new requests on kept-alive connections: HTTP/2 clients get GOAWAY, HTTP/1.1 ones `connection: close`. */
  drain(): void {
    this.draining = true;
    for (const s of this.sessions) s.close();
    this.http1.closeIdleConnections?.();
  }

  closeAll(): void {
    for (const s of this.sessions) s.destroy();
    for (const t of this.tunnels) t.destroy();
  }

  private track(t: Duplex): void {
    this.tunnels.add(t);
    t.once('close', () => this.tunnels.delete(t));
    t.on('error', () => undefined);
  }
}

/** The request head of an `Upgrade: h2c` request as it would be without the upgrade: Upgrade, HTTP2-Settings and their Connection tokens gone. */
function withoutH2cUpgrade(req: http.IncomingMessage): Buffer {
  const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!;
    const value = req.rawHeaders[i + 1]!;
    const lower = name.toLowerCase();
    if (lower === 'upgrade' || lower === 'http2-settings') continue;
    if (lower === 'connection') {
      const kept = value.split(',').map((t) => t.trim()).filter((t) => t !== '' && !['upgrade', 'http2-settings'].includes(t.toLowerCase()));
      if (kept.length > 0) lines.push(`${name}: ${kept.join(', ')}`);
      continue;
    }
    lines.push(`${name}: ${value}`);
  }
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
}
