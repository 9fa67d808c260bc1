/**
 * The HBONE server side (the destination ztunnel's port 15008, later the waypoint): mutual TLS 1.3 with ALPN
 * "h2", then HTTP/2 CONNECT streams, each one handed to the owner to accept (200, then raw bytes) or refuse.
 *
 * Invariants:
 * - the certificate presented is chosen from the address the client dialled (certFor), never a node-wide one;
 * - a connection reaches HTTP/2 only after OpenSSL verified the client's chain to the mesh root AND verifyPeer
 *   found a SPIFFE id in the trust domain; onConnect only ever sees CONNECT streams with a valid ip:port target;
 * - every socket, TLS connection and session is tracked until it closes, so close() leaves nothing behind.
 *
 * How: one net.Server per listen address; each accepted socket gets its certificate from certFor, then is handed
 * to a (non-listening) tls.Server made for that certificate (Node's own server-side handshake path: client
 * certificate required and checked, handshake timeout); the verified TLS socket then gets its own
 * H2Connection (./h2: HBONE's lean HTTP/2, server side).
 */
import net from 'node:net';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { StraitError, bug, errorMessage } from '../common/errors.js';
import { silentLogger, type Logger } from '../common/log.js';
import { normalizeIp } from '../common/net.js';
import { RateLimitedLog } from '../common/rate-limited-log.js';
import { certificatesFromPem, tlsContextOptions } from '../identity/index.js';
import { DEFAULT_TRUST_DOMAIN } from '../identity/spiffe.js';
import { DEFAULT_SECURE_CONTEXT_CACHE_SIZE, type WorkloadCert } from './secure-context-cache.js';
import { PeerVerifier } from './peer-verifier.js';
import { H2Connection, type GoawayInfo } from './h2/connection.js';
import { H2Code, codeName } from './h2/frames.js';
import { checkCount, checkH2Limits, defaultH2Limits, type GoawayReason, type H2Limits } from './h2/limits.js';
import type { H2Headers, H2Stream } from './h2/stream.js';
import {
  HBONE_ALPN,
  HBONE_CONNECTION_WINDOW_BYTES,
  HBONE_STREAM_WINDOW_BYTES,
  HEADER_BAGGAGE,
  HEADER_FORWARDED,
  HEADER_REASON,
  HEADER_TRACEPARENT,
  formatAuthority,
  parseAuthority,
  parseForwardedFor,
  sanitizeReason,
} from './wire.js';

export const DEFAULT_HBONE_HANDSHAKE_TIMEOUT_MS = 10_000;
export const DEFAULT_HBONE_MAX_CONCURRENT_STREAMS = 100;
export const DEFAULT_HBONE_KEEPALIVE_DELAY_MS = 30_000;
/** A server session without streams for this long is closed: twice the clients' pool idle (5 min, as Istio), so a
 *  client normally closes first and never races a GOAWAY with a new stream. */
export const DEFAULT_HBONE_SERVER_IDLE_MS = 10 * 60_000;
/** A client that opened no stream this long after its handshake is closed (clients connect to send a CONNECT). */
export const DEFAULT_HBONE_FIRST_STREAM_TIMEOUT_MS = 30_000;
/** TCP connections between accept and a verified TLS session, in all and from one source address. */
export const DEFAULT_HBONE_MAX_PENDING_HANDSHAKES = 512;
export const DEFAULT_HBONE_MAX_PENDING_HANDSHAKES_PER_SOURCE = 128;
/** HTTP/2 sessions one client identity may hold at once (a pool opens one per 100 streams). */
export const DEFAULT_HBONE_MAX_SESSIONS_PER_IDENTITY = 128;

/** Why a connection was closed before it reached HTTP/2, as counted (`strait_hbone_connections_refused_total{reason}`). */
export type HboneRefusedReason = 'pending_handshakes' | 'pending_handshakes_per_source' | 'handshake_timeout' | 'handshake_failed' | 'peer_refused';
/** What a non-CONNECT request gets with its 405: HBONE is a tunnel, not a web server. */
const NOT_CONNECT_BODY = 'This is an HBONE endpoint (HTTP/2 CONNECT over mutual TLS); it accepts only CONNECT.\n';

export interface HboneServerOptions {
  /** The mesh root(s): the only trust anchors for client certificates. */
  rootPem: string | string[];
  /**
   * Chooses the certificate to present from the address the client dialled (in the local mesh each pod's
   * address has its own listener; under capture the original destination). Return undefined to refuse (the
   * connection is closed).
   */
  certFor: (localAddress: string, localPort: number) => WorkloadCert | undefined | Promise<WorkloadCert | undefined>;
  /** Client ids must be in this trust domain (default cluster.local). */
  trustDomain?: string;
  /** Called for every well-formed CONNECT; the owner answers with req.accept() or req.reject(status, reason). */
  onConnect: (req: HboneInboundRequest) => void | Promise<void>;
  logger?: Logger;
  /** Time from accepting the TCP connection to a verified TLS session. */
  handshakeTimeoutMs?: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS announced to clients. */
  maxConcurrentStreams?: number;
  /** HTTP/2 budgets and timeouts per client connection (./h2/limits.ts); idleTimeoutMs defaults to 10 min. */
  limits?: Partial<H2Limits>;
  /** Called for every GOAWAY this server sends, with why (for `strait_hbone_goaway_total{reason}`). */
  onGoaway?: (reason: GoawayReason) => void;
  /** Called for every connection closed before HTTP/2, with why. */
  onRefused?: (reason: HboneRefusedReason) => void;
  /** Connections between accept and a verified TLS session: in all, and from one source address. */
  maxPendingHandshakes?: number;
  maxPendingHandshakesPerSource?: number;
  /** HTTP/2 sessions one client identity may hold; the next one gets GOAWAY(ENHANCE_YOUR_CALM). */
  maxSessionsPerIdentity?: number;
}

/** One CONNECT stream waiting for the owner's decision. */
export interface HboneInboundRequest {
  /** The `:authority` as received, e.g. "10.0.0.5:8080" or "[fd00::5]:8080". */
  readonly authority: string;
  /** The target address without brackets. */
  readonly targetHost: string;
  readonly targetPort: number;
  /** All request headers, pseudo-headers included. */
  readonly headers: H2Headers;
  /** The client's SPIFFE id (spiffe://...), verified. */
  readonly peerIdentity: string;
  /** The client's leaf certificate. */
  readonly peerCertificate: X509Certificate;
  /** The TCP peer (the source node's ztunnel, or a waypoint). */
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** The address the client dialled (the pod address whose certificate was presented). */
  readonly localAddress: string;
  readonly localPort: number;
  /** The original source address from the `forwarded` header (bare IP), when it carries one. */
  readonly forwardedFor?: string;
  readonly baggage?: string;
  readonly traceparent?: string;
  /** True once accept() or reject() was called. */
  readonly answered: boolean;
  /** Aborted when the client resets or abandons the stream before it was answered: stop dialling the target. */
  readonly signal: AbortSignal;
  /** Answers 200 and returns the stream: from here on it carries the raw TCP bytes both ways. */
  accept(): Duplex;
  /** Answers `status` (400..599) with the reason in `x-strait-reason`, and ends the stream. */
  reject(status: number, reason?: string): void;
}

interface ConnectionInfo {
  peerIdentity: string;
  peerCertificateDer: Buffer;
  /** Parsed on first use (parsing costs more than the rest of a cached peer check). */
  peerCertificate?: X509Certificate;
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  localPort: number;
}

/** A socket between accept and a verified TLS session. */
interface PendingSocket {
  socket: net.Socket;
  localAddress: string;
  localPort: number;
  /** The client's address, without port (the per-source handshake count). */
  source: string;
  timer: NodeJS.Timeout;
}

class InboundRequest implements HboneInboundRequest {
  readonly authority: string;
  readonly targetHost: string;
  readonly targetPort: number;
  readonly headers: H2Headers;
  readonly peerIdentity: string;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  readonly forwardedFor?: string;
  readonly baggage?: string;
  readonly traceparent?: string;
  #answered = false;
  readonly #stream: H2Stream;
  readonly #info: ConnectionInfo;
  readonly #abort = new AbortController();

  constructor(stream: H2Stream, headers: H2Headers, authority: string, target: { host: string; port: number }, info: ConnectionInfo) {
    this.#stream = stream;
    this.authority = authority;
    this.targetHost = target.host;
    this.targetPort = target.port;
    this.headers = headers;
    this.#info = info;
    this.peerIdentity = info.peerIdentity;
    this.remoteAddress = info.remoteAddress;
    this.remotePort = info.remotePort;
    this.localAddress = info.localAddress;
    this.localPort = info.localPort;
    const forwarded = headers[HEADER_FORWARDED];
    const fwd = parseForwardedFor(typeof forwarded === 'number' ? String(forwarded) : forwarded);
    if (fwd !== undefined) this.forwardedFor = fwd;
    const baggage = headers[HEADER_BAGGAGE];
    if (typeof baggage === 'string') this.baggage = baggage;
    const traceparent = headers[HEADER_TRACEPARENT];
    if (typeof traceparent === 'string') this.traceparent = traceparent;
    stream.once('close', () => {
      if (!this.#answered) this.#abort.abort(new Error('the HBONE client reset the stream before it was answered'));
    });
  }

  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  get peerCertificate(): X509Certificate {
    this.#info.peerCertificate ??= new X509Certificate(this.#info.peerCertificateDer);
    return this.#info.peerCertificate;
  }

  get answered(): boolean {
    return this.#answered;
  }

  accept(): Duplex {
    this.#answer('accept');
    const s = this.#stream;
    // A stream the client already cancelled is returned as it is: relay() sees it closed and stops at once.
    if (!s.destroyed && !s.wireClosed) s.respond({ ':status': 200 });
    return s;
  }

  reject(status: number, reason?: string): void {
    if (!Number.isInteger(status) || status < 400 || status > 599) {
      throw bug(`HBONE reject() needs a 4xx or 5xx status, got ${status}`);
    }
    this.#answer('reject');
    respondAndEnd(this.#stream, status, reason);
  }

  #answer(how: string): void {
    if (this.#answered) throw bug(`HBONE request for ${this.authority} answered twice (${how} after an earlier answer)`);
    this.#answered = true;
  }
}

function respondAndEnd(stream: H2Stream, status: number, reason?: string, body?: string): void {
  if (stream.destroyed || stream.wireClosed || stream.headersSent) return;
  const headers: Record<string, string | number> = { ':status': status };
  if (reason !== undefined && reason !== '') headers[HEADER_REASON] = sanitizeReason(reason);
  if (body === undefined) {
    stream.respond(headers, { endStream: true });
    return;
  }
  headers['content-type'] = 'text/plain; charset=utf-8';
  headers['content-length'] = Buffer.byteLength(body);
  stream.respond(headers);
  stream.end(body);
}

function tupleOf(s: net.Socket): string {
  return `${s.remoteAddress}|${s.remotePort}|${s.localAddress}|${s.localPort}`;
}

function listenHint(code: string | undefined, host: string): string {
  switch (code) {
    case 'EADDRINUSE':
      return 'another process (or another ztunnel) already listens there';
    case 'EADDRNOTAVAIL':
      return `${host} is not an address of this node (in the local mesh the pod address must be on the loopback interface)`;
    case 'EACCES':
      return 'ports below 1024 need privileges';
    default:
      return 'check the address and port';
  }
}


export class HboneServer {
  readonly #rootPem: string | string[];
  readonly #certFor: HboneServerOptions['certFor'];
  readonly #peers: PeerVerifier;
  readonly #onConnect: HboneServerOptions['onConnect'];
  readonly #log: Logger;
  readonly #handshakeTimeoutMs: number;
  readonly #maxConcurrentStreams: number;
  readonly #limits: Partial<H2Limits>;
  readonly #onGoaway: ((reason: GoawayReason) => void) | undefined;
  readonly #onRefused: ((reason: HboneRefusedReason) => void) | undefined;
  readonly #maxPending: number;
  readonly #maxPendingPerSource: number;
  readonly #maxSessionsPerIdentity: number;
  readonly #pendingBySource = new Map<string, number>();
  readonly #sessionsByIdentity = new Map<string, number>();
  /** Connections that never reach HTTP/2 are logged a few per 10 s, the rest in a summary: anyone can open them. */
  readonly #refusals: RateLimitedLog;
  /** GOAWAYs for a peer's misbehaviour, likewise (a peer can reconnect and misbehave again at TLS speed). */
  readonly #calmLog: RateLimitedLog;
  readonly #protocolLog: RateLimitedLog;
  /** "ip:port" of every accepted socket, for log lines written after Node let go of it. */
  readonly #remotes = new WeakMap<net.Socket, string>();
  /** A non-listening tls.Server per presented certificate (LRU, keyed by the certificate PEM). */
  readonly #tlsServers = new Map<string, tls.Server>();
  readonly #listeners = new Map<string, net.Server>();
  readonly #pending = new Map<string, PendingSocket>();
  readonly #sessions = new Map<H2Connection, ConnectionInfo>();
  readonly #streams = new Set<H2Stream>();
  #draining = false;
  #closed = false;

  constructor(opts: HboneServerOptions) {
    certificatesFromPem(Array.isArray(opts.rootPem) ? opts.rootPem.join('\n') : opts.rootPem); // STRAIT_ERR_CERT_INVALID now, not per connection
    this.#rootPem = opts.rootPem;
    this.#certFor = opts.certFor;
    this.#peers = new PeerVerifier(opts.rootPem, opts.trustDomain ?? DEFAULT_TRUST_DOMAIN);
    this.#onConnect = opts.onConnect;
    this.#log = opts.logger ?? silentLogger();
    this.#handshakeTimeoutMs = checkCount('HboneServer', 'handshakeTimeoutMs', opts.handshakeTimeoutMs ?? DEFAULT_HBONE_HANDSHAKE_TIMEOUT_MS);
    this.#maxConcurrentStreams = checkCount('HboneServer', 'maxConcurrentStreams', opts.maxConcurrentStreams ?? DEFAULT_HBONE_MAX_CONCURRENT_STREAMS);
    this.#limits = checkH2Limits({
      ...defaultH2Limits(), idleTimeoutMs: DEFAULT_HBONE_SERVER_IDLE_MS, firstStreamTimeoutMs: DEFAULT_HBONE_FIRST_STREAM_TIMEOUT_MS, ...opts.limits,
    }, 'HboneServer');
    this.#onGoaway = opts.onGoaway;
    this.#onRefused = opts.onRefused;
    this.#maxPending = checkCount('HboneServer', 'maxPendingHandshakes', opts.maxPendingHandshakes ?? DEFAULT_HBONE_MAX_PENDING_HANDSHAKES);
    this.#maxPendingPerSource = checkCount('HboneServer', 'maxPendingHandshakesPerSource', opts.maxPendingHandshakesPerSource ?? DEFAULT_HBONE_MAX_PENDING_HANDSHAKES_PER_SOURCE);
    this.#maxSessionsPerIdentity = checkCount('HboneServer', 'maxSessionsPerIdentity', opts.maxSessionsPerIdentity ?? DEFAULT_HBONE_MAX_SESSIONS_PER_IDENTITY);
    this.#refusals = new RateLimitedLog({ logger: this.#log, level: 'info', msg: 'HBONE connection closed before HTTP/2', what: 'HBONE connections closed before HTTP/2', burst: 5 });
    this.#calmLog = new RateLimitedLog({ logger: this.#log, level: 'warn', msg: 'HBONE client went past a limit; sent GOAWAY and closed the connection', what: 'HBONE connections closed for going past a limit', burst: 5 });
    this.#protocolLog = new RateLimitedLog({ logger: this.#log, level: 'info', msg: 'HBONE client broke the HTTP/2 protocol; sent GOAWAY and closed the connection', what: 'HBONE connections closed for protocol errors', burst: 5 });
  }

  /** Counts and logs (at a bounded rate) a connection that did not reach HTTP/2. */
  #refused(reason: HboneRefusedReason, fields: Record<string, unknown>, msg?: string): void {
    this.#onRefused?.(reason);
    this.#refusals.record(reason, fields, msg);
  }

  /** Listens on host:port (port 0: any free port); may be called once per address. Returns the bound address. */
  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    if (this.#closed || this.#draining) throw new StraitError('STRAIT_ERR_LISTEN', `cannot listen for HBONE on ${formatAuthority(host, port)}: the server is ${this.#closed ? 'closed' : 'draining'}`);
    const server = net.createServer({ noDelay: true, keepAlive: true, keepAliveInitialDelay: DEFAULT_HBONE_KEEPALIVE_DELAY_MS });
    server.on('connection', (socket) => {
      this.handleSocket(socket, normalizeIp(socket.localAddress ?? host), socket.localPort ?? port);
    });
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(new StraitError('STRAIT_ERR_LISTEN', `cannot listen for HBONE on ${formatAuthority(host, port)}: ${err.message}; ${listenHint(err.code, host)}`, { cause: err }));
      };
      server.once('error', onError);
      // Not exclusive: in a data-plane worker (dataplane/workers) every worker accepts on the one socket the primary bound.
      server.listen({ host, port, exclusive: false }, () => {
        server.removeListener('error', onError);
        resolve();
      });
    });
    server.on('error', (err) => this.#log.error({ err, address: formatAuthority(host, port) }, 'HBONE listener failed'));
    const bound = server.address() as net.AddressInfo;
    const key = formatAuthority(normalizeIp(bound.address), bound.port);
    if (this.#closed || this.#draining) {
      server.close();
      throw new StraitError('STRAIT_ERR_LISTEN', `HBONE listener on ${key} closed again: the server was closed while it started`);
    }
    this.#listeners.set(key, server);
    this.#log.debug({ address: key }, 'HBONE listening');
    return { host: normalizeIp(bound.address), port: bound.port };
  }

  /** Stops one listener (its pod left the node); connections already accepted on it continue. */
  async closeListener(host: string, port: number): Promise<void> {
    const key = formatAuthority(normalizeIp(host), port);
    const server = this.#listeners.get(key);
    if (server === undefined) return;
    this.#listeners.delete(key);
    server.close(); // the listening socket closes now; the 'close' event waits for accepted connections, so no await
    this.#log.debug({ address: key }, 'HBONE listener closed');
  }

  /** The addresses currently listened on, "ip:port". */
  listening(): string[] {
    return [...this.#listeners.keys()];
  }

  /**
   * Takes a TCP connection accepted elsewhere (capture redirect): `localAddress:localPort` is the address the
   * client dialled (the original destination), which chooses the certificate.
   */
  handleSocket(socket: net.Socket, localAddress: string, localPort: number): void {
    if (this.#closed || this.#draining) {
      socket.destroy();
      return;
    }
    const source = normalizeIp(socket.remoteAddress ?? '?');
    const remote = formatAuthority(source, socket.remotePort ?? 0);
    const fromSource = this.#pendingBySource.get(source) ?? 0;
    // Before TLS anyone may connect: what they hold (a socket, a descriptor, a handshake) is bounded per source and
    // in all, so that they cannot take what the node's pods need.
    if (this.#pending.size >= this.#maxPending || fromSource >= this.#maxPendingPerSource) {
      const perSource = fromSource >= this.#maxPendingPerSource;
      this.#refused(perSource ? 'pending_handshakes_per_source' : 'pending_handshakes', {
        remote, local: formatAuthority(localAddress, localPort), pending: perSource ? fromSource : this.#pending.size,
        limit: perSource ? this.#maxPendingPerSource : this.#maxPending,
      }, 'HBONE connection refused: too many TLS handshakes in progress');
      socket.on('error', () => undefined);
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    socket.setKeepAlive(true, DEFAULT_HBONE_KEEPALIVE_DELAY_MS);
    const tuple = tupleOf(socket);
    this.#remotes.set(socket, remote);
    this.#pendingBySource.set(source, fromSource + 1);
    const pending: PendingSocket = {
      socket,
      localAddress,
      localPort,
      source,
      timer: setTimeout(() => {
        this.#refused('handshake_timeout', { remote, local: formatAuthority(localAddress, localPort), timeoutMs: this.#handshakeTimeoutMs },
          'HBONE connection did not complete its TLS handshake in time; closing it');
        socket.destroy();
      }, this.#handshakeTimeoutMs),
    };
    this.#pending.set(tuple, pending);
    socket.on('error', (err) => this.#log.debug({ err: errorMessage(err), remote }, 'HBONE socket error before TLS'));
    socket.once('close', () => {
      clearTimeout(pending.timer);
      if (this.#pending.get(tuple) === pending) {
        this.#forgetPending(tuple, pending);
        this.#log.debug({ remote, local: formatAuthority(localAddress, localPort) },
          'HBONE connection closed before TLS completed (no certificate for the address, the client certificate was refused, or the client gave up)');
      }
    });
    Promise.resolve()
      .then(() => this.#certFor(localAddress, localPort))
      .then((cert) => {
        if (socket.destroyed) return;
        if (cert === undefined) {
          this.#log.debug({ remote, local: formatAuthority(localAddress, localPort) }, 'no workload certificate for the dialled address; refusing the HBONE connection');
          socket.destroy();
          return;
        }
        this.#tlsServerFor(cert).emit('connection', socket);
      })
      .catch((err: unknown) => {
        this.#log.warn({ err: errorMessage(err), remote, local: formatAuthority(localAddress, localPort) }, 'cannot choose a certificate for an HBONE connection; closing it');
        socket.destroy();
      });
  }

  #forgetPending(tuple: string, p: PendingSocket): void {
    this.#pending.delete(tuple);
    const n = (this.#pendingBySource.get(p.source) ?? 1) - 1;
    if (n <= 0) this.#pendingBySource.delete(p.source);
    else this.#pendingBySource.set(p.source, n);
  }

  /** Number of CONNECT streams open (answered or not). */
  activeStreams(): number {
    return this.#streams.size;
  }

  /** Number of HTTP/2 sessions (verified TLS connections). */
  activeSessions(): number {
    return this.#sessions.size;
  }

  /** Stops listening and sends GOAWAY on every session; streams already open continue to their end. */
  drain(): void {
    if (this.#draining) return;
    this.#draining = true;
    this.#stopListening();
    for (const session of this.#sessions.keys()) session.close();
  }

  /** Stops listening and destroys every connection and stream. */
  async close(): Promise<void> {
    this.#draining = true;
    this.#closed = true;
    this.#stopListening();
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.socket.destroy();
    }
    this.#pending.clear();
    this.#pendingBySource.clear();
    for (const l of [this.#refusals, this.#calmLog, this.#protocolLog]) l.flush();
    for (const session of this.#sessions.keys()) session.destroy();
    this.#tlsServers.clear();
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  #stopListening(): void {
    for (const server of this.#listeners.values()) server.close();
    this.#listeners.clear();
  }

  #tlsServerFor(cert: WorkloadCert): tls.Server {
    const key = cert.certChainPem.join('\n');
    let server = this.#tlsServers.get(key);
    if (server !== undefined) {
      this.#tlsServers.delete(key);
      this.#tlsServers.set(key, server);
      return server;
    }
    const o = tlsContextOptions(cert, this.#rootPem);
    server = tls.createServer({
      key: o.key,
      cert: o.cert,
      ca: o.ca,
      minVersion: o.minVersion,
      maxVersion: o.maxVersion,
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: [HBONE_ALPN],
      handshakeTimeout: this.#handshakeTimeoutMs,
    });
    server.on('secureConnection', (s: tls.TLSSocket) => this.#onSecure(s));
    server.on('tlsClientError', (err: Error, s: tls.TLSSocket) => {
      // A client chain that does not verify: Node sets authorizationError and drops the socket ("socket hang up").
      // By now the TLS socket may have let go of its handle: the address comes from the socket we accepted.
      const why = s.authorizationError ? `client certificate rejected: ${String(s.authorizationError)} (it must chain to the mesh root)` : errorMessage(err);
      this.#refused('handshake_failed', { err: why, remote: this.#remoteOf(s) }, 'HBONE TLS handshake failed');
    });
    if (this.#tlsServers.size >= DEFAULT_SECURE_CONTEXT_CACHE_SIZE) this.#tlsServers.delete(this.#tlsServers.keys().next().value!);
    this.#tlsServers.set(key, server);
    return server;
  }

  #remoteOf(s: tls.TLSSocket): string {
    const parent = (s as unknown as { _parent?: net.Socket })._parent;
    const known = parent !== undefined ? this.#remotes.get(parent) : undefined;
    if (known !== undefined) return known;
    return s.remoteAddress !== undefined ? formatAuthority(normalizeIp(s.remoteAddress), s.remotePort ?? 0) : 'unknown';
  }

  /** A TLS connection whose client chain OpenSSL verified (Node destroys it otherwise): check the SPIFFE id, start HTTP/2. */
  #onSecure(socket: tls.TLSSocket): void {
    const tuple = tupleOf(socket);
    const pending = this.#pending.get(tuple);
    const remote = this.#remoteOf(socket);
    if (pending === undefined) {
      this.#log.error({ remote }, 'BUG: verified HBONE connection not found among pending sockets; closing it');
      socket.destroy();
      return;
    }
    this.#forgetPending(tuple, pending);
    clearTimeout(pending.timer);
    if (this.#closed || this.#draining) {
      socket.destroy();
      return;
    }
    if (socket.alpnProtocol !== HBONE_ALPN) {
      this.#log.info({ remote, alpn: socket.alpnProtocol }, 'HBONE client did not negotiate ALPN h2; closing the connection');
      socket.destroy();
      return;
    }
    let info: ConnectionInfo;
    try {
      const peer = this.#peers.verify(socket, []);
      info = {
        peerIdentity: peer.id,
        peerCertificateDer: peer.leafDer,
        remoteAddress: normalizeIp(socket.remoteAddress ?? ''),
        remotePort: socket.remotePort ?? 0,
        localAddress: pending.localAddress,
        localPort: pending.localPort,
      };
    } catch (err) {
      this.#refused('peer_refused', { err: errorMessage(err), remote }, 'HBONE client certificate refused');
      socket.destroy();
      return;
    }
    // Synchronously, so that no byte after the handshake is read before HTTP/2 owns the socket.
    const session = new H2Connection(socket, {
      role: 'server',
      settings: { maxConcurrentStreams: this.#maxConcurrentStreams, initialWindowSize: HBONE_STREAM_WINDOW_BYTES },
      connectionWindow: HBONE_CONNECTION_WINDOW_BYTES,
      limits: this.#limits,
    });
    this.#sessions.set(session, info);
    session.on('error', (err: Error) => this.#log.debug({ err: errorMessage(err), peer: info.peerIdentity }, 'HBONE session error'));
    session.on('goawaySent', (g: GoawayInfo) => this.#onGoawaySent(info, g));
    const held = this.#sessionsByIdentity.get(info.peerIdentity) ?? 0;
    this.#sessionsByIdentity.set(info.peerIdentity, held + 1);
    session.once('close', () => {
      const n = (this.#sessionsByIdentity.get(info.peerIdentity) ?? 1) - 1;
      if (n <= 0) this.#sessionsByIdentity.delete(info.peerIdentity);
      else this.#sessionsByIdentity.set(info.peerIdentity, n);
    });
    if (held >= this.#maxSessionsPerIdentity) {
      session.calm('sessions_per_identity', `${info.peerIdentity} already holds ${held} HBONE sessions here (limit ${this.#maxSessionsPerIdentity})`);
      return;
    }
    session.on('malformed', (streamId: number, why: string) => this.#log.debug({ peer: info.peerIdentity, streamId, err: why }, 'HBONE request malformed; stream reset (PROTOCOL_ERROR)'));
    session.once('close', () => this.#sessions.delete(session));
    session.on('stream', (stream: H2Stream, headers: H2Headers) => this.#onStream(info, stream, headers));
    this.#log.debug({ peer: info.peerIdentity, remote: `${info.remoteAddress}:${info.remotePort}`, local: formatAuthority(info.localAddress, info.localPort) }, 'HBONE session started');
  }

  /** One log line and one count per GOAWAY we send; a peer past a budget is a warning. */
  #onGoawaySent(info: ConnectionInfo, g: GoawayInfo): void {
    this.#onGoaway?.(g.reason);
    const fields = { peer: info.peerIdentity, remote: formatAuthority(info.remoteAddress, info.remotePort), reason: g.reason, code: codeName(g.code), detail: g.message };
    if (g.code === H2Code.ENHANCE_YOUR_CALM) this.#calmLog.record(g.reason, fields);
    else if (g.code !== H2Code.NO_ERROR) this.#protocolLog.record(g.reason, fields);
    else this.#log.debug(fields, 'HBONE connection closing (GOAWAY)');
  }

  #onStream(info: ConnectionInfo, stream: H2Stream, headers: H2Headers): void {
    stream.on('error', (err) => this.#log.debug({ err: errorMessage(err) }, 'HBONE stream error'));
    this.#streams.add(stream);
    stream.once('close', () => this.#streams.delete(stream));
    const method = headers[':method'];
    if (method !== 'CONNECT') {
      respondAndEnd(stream, 405, `HBONE accepts only CONNECT, not ${String(method)}`, method === 'HEAD' ? undefined : NOT_CONNECT_BODY);
      return;
    }
    const rawAuthority = headers[':authority'];
    const authority = typeof rawAuthority === 'string' ? rawAuthority : '';
    const target = parseAuthority(authority);
    if (target === undefined) {
      this.#log.debug({ authority, peer: info.peerIdentity }, 'HBONE CONNECT with a malformed :authority (answered 400)');
      respondAndEnd(stream, 400, `malformed :authority "${authority}": HBONE expects ip:port or [ipv6]:port of the target`);
      return;
    }
    // The owner hears of the stream once the rest of this read is processed (a microtask runs after the socket's
    // 'data' callback, before the next read): a stream the client reset in the same read (Rapid Reset) never
    // reaches it, so nothing is dialled for it.
    queueMicrotask(() => {
      if (stream.destroyed || stream.wireClosed) return;
      this.#dispatch(new InboundRequest(stream, headers, authority, target, info), stream, info);
    });
  }

  #dispatch(req: InboundRequest, stream: H2Stream, info: ConnectionInfo): void {
    const authority = req.authority;
    const failed = (err: unknown): void => {
      this.#log.error({ err: errorMessage(err), authority, peer: info.peerIdentity }, 'HBONE onConnect handler failed; answering 500 (or resetting the stream)');
      if (!req.answered) req.reject(500, 'internal error in the HBONE server');
      else if (!stream.wireClosed) stream.close(H2Code.INTERNAL_ERROR);
    };
    try {
      const done = this.#onConnect(req);
      if (done instanceof Promise) done.catch(failed);
    } catch (err) {
      failed(err);
    }
  }
}
