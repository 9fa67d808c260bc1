/**
 * One HTTP try to one endpoint, over HBONE (DESIGN §6: "upstream HBONE to pod:15008 with the waypoint's identity",
 * the endpoint's identity verified). HTTP/1.1 goes through `node:http` with one keep-alive Agent per endpoint whose
 * connections are HBONE streams; HTTP/2 (gRPC included) through one `node:http2` session per endpoint over an HBONE
 * stream. Failures come back as an UpstreamFailure whose `kind` the retry policy and the response flags use.
 *
 * Invariants: every Agent and session is keyed by (endpoint address, port, expected identity), so a connection is
 * only ever reused for the peer it was verified against; close() destroys all of them.
 */
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import { errorMessage } from '../../common/errors.js';
import { formatHostPort } from '../../common/net.js';
import { HBONE_PORT } from '../../hbone/wire.js';
import { HboneRefusedError, type HbonePool, type WorkloadCert } from '../../hbone/index.js';

export type UpstreamFailureKind = 'connect-failure' | 'reset' | 'refused-stream' | 'timeout' | 'overflow';

export class UpstreamFailure extends Error {
  constructor(readonly kind: UpstreamFailureKind, message: string, override readonly cause?: unknown) {
    super(message);
  }
}

export interface UpstreamTarget {
  /** The endpoint's address and the port its app listens on. */
  address: string;
  port: number;
  /** SPIFFE id the endpoint's ztunnel must present (the workload's). */
  identity: string;
  protocol: 'http1' | 'h2';
  /** The endpoint is not in the mesh (its pod is not enrolled): plain TCP to it, as Istio's waypoint does. */
  plaintext?: boolean;
  /** DestinationRule tcp.connectTimeout: a new connection not up within this fails the try (connect-failure). */
  connectTimeoutMs?: number;
}

export interface UpstreamRequest {
  method: string;
  /** Path and query. */
  path: string;
  authority: string;
  /** Lower-case names; no pseudo-headers, no hop-by-hop headers. */
  headers: Record<string, string | string[]>;
  /** The whole body when it was buffered (retries possible), else a stream read once. */
  body: Buffer | Readable | undefined;
  /** Headers for the HBONE CONNECT (forwarded, traceparent, baggage). */
  tunnelHeaders?: Record<string, string>;
  signal: AbortSignal;
  /** DestinationRule maxRequestsPerConnection: a connection that carried this many requests is not reused (0 = no limit). */
  maxRequestsPerConnection?: number;
}

export interface UpstreamResponse {
  status: number;
  headers: Record<string, string | string[]>;
  body: Readable;
  /** Resolves with the trailers (gRPC status) once the body ended, or undefined. */
  trailers: Promise<Record<string, string | string[]> | undefined>;
  /** Counts response body bytes as they pass. */
  connectionReused: boolean;
  /** HTTP/2: the response was its HEADERS alone (END_STREAM on them), as a trailers-only gRPC answer is. */
  headersOnly?: boolean;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'host', 'http2-settings']);

/** A Duplex that http.Agent can keep as a socket: the socket-only calls the Agent and ClientRequest make are no-ops. */
export function asSocket(stream: Duplex): Duplex {
  const s = stream as Duplex & Record<string, unknown>;
  for (const m of ['setKeepAlive', 'setNoDelay', 'setTimeout', 'ref', 'unref'] as const) {
    if (typeof s[m] !== 'function') s[m] = function noop(this: Duplex) { return this; };
  }
  return stream;
}

export interface UpstreamClientOptions {
  pool: HbonePool;
  /** The waypoint's own certificate (current one: it rotates). */
  cert: () => WorkloadCert;
  identity: string;
  connectTimeoutMs: number;
  /** Idle keep-alive connections per endpoint kept open. */
  maxIdlePerEndpoint?: number;
}

interface H2Entry {
  session: http2.ClientHttp2Session;
  active: number;
  /** Requests started on the session (maxRequestsPerConnection). */
  started: number;
}

/** Requests each upstream HTTP/1.1 connection carried (maxRequestsPerConnection). */
const requestsOnSocket = new WeakMap<object, number>();

export class UpstreamClient {
  private readonly agents = new Map<string, http.Agent>();
  private readonly sessions = new Map<string, Promise<H2Entry>>();
  private closed = false;

  constructor(private readonly o: UpstreamClientOptions) {}

  /** Upstream connections open (HTTP/1.1 sockets held by agents, HTTP/2 sessions). */
  stats(): { http1Sockets: number; h2Sessions: number } {
    let http1Sockets = 0;
    for (const a of this.agents.values()) {
      for (const list of Object.values(a.sockets)) http1Sockets += list?.length ?? 0;
      for (const list of Object.values(a.freeSockets)) http1Sockets += list?.length ?? 0;
    }
    return { http1Sockets, h2Sessions: this.sessions.size };
  }

  request(target: UpstreamTarget, req: UpstreamRequest): Promise<UpstreamResponse> {
    if (this.closed) return Promise.reject(new UpstreamFailure('connect-failure', 'the waypoint is shutting down'));
    return target.protocol === 'h2' ? this.requestH2(target, req) : this.requestHttp1(target, req);
  }

  close(): void {
    this.closed = true;
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
    for (const p of this.sessions.values()) void p.then((e) => e.session.destroy(), () => undefined);
    this.sessions.clear();
  }

  /** Drops pooled connections to endpoints no longer in `keep` ("address:port" keys). */
  retain(keep: ReadonlySet<string>): void {
    for (const [k, a] of this.agents) if (!keep.has(k.split('|')[0]!)) { a.destroy(); this.agents.delete(k); }
    for (const [k, p] of this.sessions) if (!keep.has(k.split('|')[0]!)) { void p.then((e) => e.session.close(), () => undefined); this.sessions.delete(k); }
  }

  private key(t: UpstreamTarget): string {
    return `${formatHostPort({ host: t.address, port: t.port })}|${t.plaintext ? 'plaintext' : t.identity}`;
  }

  /** An HBONE stream to the endpoint's app (plain TCP through the waypoint). */
  openTunnel(t: Omit<UpstreamTarget, 'protocol'>, headers?: Record<string, string>): Promise<Duplex> {
    // A TCP relay: the endpoint's app speaks whatever the client does.
    return this.tunnel({ ...t, protocol: 'http1' }, headers);
  }

  private async tunnel(t: UpstreamTarget, headers: Record<string, string> | undefined): Promise<Duplex> {
    if (t.plaintext) return this.plain(t);
    if (t.connectTimeoutMs === undefined) return this.hbone(t, headers);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new UpstreamFailure('connect-failure', `HBONE to endpoint ${formatHostPort({ host: t.address, port: t.port })} not up within the DestinationRule's connectTimeout (${t.connectTimeoutMs} ms)`)), t.connectTimeoutMs);
    });
    const opening = this.hbone(t, headers);
    try {
      return await Promise.race([opening, late]);
    } catch (err) {
      // A stream that arrives after the deadline is not used.
      opening.then((s) => s.destroy(), () => undefined);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  private async hbone(t: UpstreamTarget, headers: Record<string, string> | undefined): Promise<Duplex> {
    try {
      const c = await this.o.pool.connect({
        key: `${this.o.identity}|${t.identity}|${t.address}`,
        address: { host: t.address, port: HBONE_PORT },
        cert: this.o.cert(),
        expectedPeerSans: [t.identity],
        authority: formatHostPort({ host: t.address, port: t.port }),
        ...(headers ? { headers } : {}),
      });
      return c.stream;
    } catch (err) {
      // The endpoint's ztunnel answered but could not reach the app (503), or no HBONE at all: both are connect failures.
      if (err instanceof HboneRefusedError) throw new UpstreamFailure('connect-failure', `endpoint ${formatHostPort({ host: t.address, port: t.port })} refused the tunnel: ${err.status} ${err.reason ?? ''}`.trim(), err);
      throw new UpstreamFailure('connect-failure', `cannot open HBONE to endpoint ${formatHostPort({ host: t.address, port: t.port })}: ${errorMessage(err)}`, err);
    }
  }

  private plain(t: UpstreamTarget): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: t.address, port: t.port });
      const timer = setTimeout(() => { s.destroy(); reject(new UpstreamFailure('connect-failure', `connect to ${formatHostPort({ host: t.address, port: t.port })} timed out`)); }, this.o.connectTimeoutMs);
      s.once('connect', () => { clearTimeout(timer); resolve(s); });
      s.once('error', (err) => { clearTimeout(timer); reject(new UpstreamFailure('connect-failure', `cannot connect to ${formatHostPort({ host: t.address, port: t.port })} (not in the mesh, plain TCP): ${errorMessage(err)}`, err)); });
    });
  }

  private agentFor(t: UpstreamTarget, tunnelHeaders: Record<string, string> | undefined): http.Agent {
    const k = this.key(t);
    let a = this.agents.get(k);
    if (!a) {
      a = new http.Agent({ keepAlive: true, maxFreeSockets: this.o.maxIdlePerEndpoint ?? 64, scheduling: 'lifo' });
      (a as unknown as { createConnection: unknown }).createConnection = (_opts: unknown, cb: (err: Error | null, s?: Duplex) => void) => {
        this.tunnel(t, tunnelHeaders).then((s) => {
          // The backend closed its side: the tunnel is done, whatever the agent thinks (a half-open stream stays in
          // its pool, and the next request on it would wait for an answer that never comes).
          s.once('end', () => setImmediate(() => s.destroy()));
          cb(null, asSocket(s));
        }, (err: Error) => cb(err));
        return undefined;
      };
      this.agents.set(k, a);
    }
    return a;
  }

  private requestHttp1(t: UpstreamTarget, req: UpstreamRequest): Promise<UpstreamResponse> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string | string[]> = { ...req.headers, host: req.authority };
      let connected = false;
      let settled = false;
      const fail = (f: UpstreamFailure) => { if (!settled) { settled = true; reject(f); } };
      const cr = http.request({
        agent: this.agentFor(t, req.tunnelHeaders), host: t.address, port: t.port, method: req.method, path: req.path, headers,
        signal: req.signal, setHost: false,
      });
      cr.on('socket', (s) => {
        const sock = s as unknown as Duplex;
        // A pooled socket is connected already; a new one once its tunnel is up (the agent hands it over then).
        connected = true;
        // Once per connection (not per request: a pooled socket would collect a listener, and so a request, each time).
        if (!requestsOnSocket.has(sock)) sock.on('error', () => undefined);
        const n = (requestsOnSocket.get(sock) ?? 0) + 1;
        requestsOnSocket.set(sock, n);
        // Its last request: once the response is read, the connection is closed instead of going back to the pool.
        if (req.maxRequestsPerConnection && n >= req.maxRequestsPerConnection) cr.once('response', (res) => res.once('end', () => sock.destroy()));
      });
      cr.on('error', (err: NodeJS.ErrnoException) => {
        if (err instanceof UpstreamFailure) return fail(err);
        if (err.name === 'AbortError') return fail(new UpstreamFailure('timeout', 'the try was cancelled', err));
        fail(new UpstreamFailure(connected ? 'reset' : 'connect-failure', `upstream ${formatHostPort({ host: t.address, port: t.port })}: ${errorMessage(err)}`, err));
      });
      cr.on('response', (res) => {
        settled = true;
        const trailers = new Promise<Record<string, string | string[]> | undefined>((done) => {
          res.once('end', () => done(Object.keys(res.trailers).length > 0 ? stripHopByHop(res.trailers as Record<string, string | string[]>) : undefined));
          res.once('close', () => done(undefined));
        });
        resolve({ status: res.statusCode ?? 502, headers: stripHopByHop(res.headers as Record<string, string | string[]>), body: res, trailers, connectionReused: cr.reusedSocket });
      });
      writeBody(cr, req.body);
    });
  }

  private async session(t: UpstreamTarget, tunnelHeaders: Record<string, string> | undefined): Promise<H2Entry> {
    const k = this.key(t);
    const existing = this.sessions.get(k);
    if (existing) {
      const e = await existing.catch(() => undefined);
      if (e && !e.session.closed && !e.session.destroyed) return e;
      if (this.sessions.get(k) === existing) this.sessions.delete(k);
    }
    const p = (async () => {
      const stream = await this.tunnel(t, tunnelHeaders);
      const session = http2.connect(`http://${formatHostPort({ host: t.address, port: t.port })}`, { createConnection: () => stream as never });
      const entry: H2Entry = { session, active: 0, started: 0 };
      const forget = () => { if (this.sessions.get(k) === p) this.sessions.delete(k); };
      session.on('close', forget);
      session.on('goaway', forget);
      session.on('error', () => forget());
      return entry;
    })();
    this.sessions.set(k, p);
    p.catch(() => { if (this.sessions.get(k) === p) this.sessions.delete(k); });
    return p;
  }

  private async requestH2(t: UpstreamTarget, req: UpstreamRequest): Promise<UpstreamResponse> {
    const entry = await this.session(t, req.tunnelHeaders);
    entry.started++;
    if (req.maxRequestsPerConnection && entry.started >= req.maxRequestsPerConnection) {
      // Its last request: no new stream goes on this session; it closes once its streams are done.
      const k = this.key(t);
      if (this.sessions.has(k)) { const p = this.sessions.get(k)!; void p.then((e) => { if (e === entry) { this.sessions.delete(k); setImmediate(() => entry.session.close()); } }); }
    }
    return new Promise((resolve, reject) => {
      const headers: http2.OutgoingHttpHeaders = { ...req.headers, ':method': req.method, ':path': req.path, ':authority': req.authority, ':scheme': 'http' };
      let stream: http2.ClientHttp2Stream;
      try {
        stream = entry.session.request(headers, { signal: req.signal, endStream: req.body === undefined || (Buffer.isBuffer(req.body) && req.body.length === 0) });
      } catch (err) {
        reject(new UpstreamFailure('reset', `upstream session to ${formatHostPort({ host: t.address, port: t.port })} is gone: ${errorMessage(err)}`, err));
        return;
      }
      entry.active++;
      let settled = false;
      let trailersSeen: Record<string, string | string[]> | undefined;
      stream.on('trailers', (tr) => { trailersSeen = stripPseudo(tr as Record<string, string | string[]>); });
      stream.on('close', () => { entry.active--; });
      stream.on('error', (err: NodeJS.ErrnoException) => {
        if (settled) return;
        settled = true;
        if (err.name === 'AbortError') return reject(new UpstreamFailure('timeout', 'the try was cancelled', err));
        const refused = stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM;
        reject(new UpstreamFailure(refused ? 'refused-stream' : 'reset', `upstream ${formatHostPort({ host: t.address, port: t.port })}: ${errorMessage(err)}`, err));
      });
      stream.on('response', (h, flags: number) => {
        settled = true;
        const status = Number(h[':status']);
        const trailers = new Promise<Record<string, string | string[]> | undefined>((done) => {
          stream.once('end', () => setImmediate(() => done(trailersSeen)));
          stream.once('close', () => done(trailersSeen));
        });
        const headersOnly = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
        resolve({ status, headers: stripPseudo(h as Record<string, string | string[]>), body: stream, trailers, connectionReused: entry.active > 1, ...(headersOnly ? { headersOnly } : {}) });
      });
      stream.on('close', () => {
        if (settled) return;
        settled = true;
        const refused = stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM;
        reject(new UpstreamFailure(refused ? 'refused-stream' : 'reset', `upstream ${formatHostPort({ host: t.address, port: t.port })} reset the stream (code ${stream.rstCode})`));
      });
      if (!(req.body === undefined || (Buffer.isBuffer(req.body) && req.body.length === 0))) writeBody(stream, req.body);
    });
  }
}

function writeBody(to: NodeJS.WritableStream & { end(chunk?: unknown): unknown }, body: Buffer | Readable | undefined): void {
  if (body === undefined) { to.end(); return; }
  if (Buffer.isBuffer(body)) { to.end(body); return; }
  body.pipe(to);
}

export function stripHopByHop(h: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const named = new Set<string>();
  const conn = h['connection'];
  if (typeof conn === 'string') for (const n of conn.split(',')) named.add(n.trim().toLowerCase());
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || HOP_BY_HOP.has(k) || named.has(k) || k.startsWith(':')) continue;
    out[k] = v;
  }
  return out;
}

function stripPseudo(h: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !k.startsWith(':')) out[k] = v;
  return out;
}
