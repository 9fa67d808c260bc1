/**
 * The HBONE client side: a pool of mutual-TLS 1.3 HTTP/2 connections, one CONNECT stream per proxied TCP
 * connection.
 *
 * Invariants:
 * - every unique key (source identity, destination identity, destination address; built by the caller) gets
 *   its own connections: a stream never rides a connection made for another key or another client certificate;
 * - a connection carries streams only after OpenSSL verified the peer's chain to the mesh root AND the leaf's
 *   SPIFFE id is one of the caller's expectedPeerSans;
 * - a connection carries at most min(maxStreamsPerConnection, the peer's SETTINGS_MAX_CONCURRENT_STREAMS)
 *   streams, counting callers still waiting for its handshake; a connection that errored or got GOAWAY takes
 *   no new streams; one without streams for idleTimeoutMs is closed.
 */
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { StraitError, bug, errorMessage } from '../common/errors.js';
import { silentLogger, type Logger } from '../common/log.js';
import { certificatesFromPem } from '../identity/index.js';
import { DEFAULT_TRUST_DOMAIN } from '../identity/spiffe.js';
import { SecureContextCache, type WorkloadCert } from './secure-context-cache.js';
import { PeerVerifier } from './peer-verifier.js';
import { H2Connection, type GoawayInfo, type H2RemoteSettings } from './h2/connection.js';
import { H2Code, codeName } from './h2/frames.js';
import { checkCount, checkH2Limits, defaultH2Limits, type GoawayReason, type H2Limits } from './h2/limits.js';
import type { H2Headers, H2Stream } from './h2/stream.js';
import { HBONE_ALPN, HBONE_CONNECTION_WINDOW_BYTES, HBONE_STREAM_WINDOW_BYTES, HEADER_REASON, formatAuthority } from './wire.js';

export const DEFAULT_HBONE_MAX_STREAMS_PER_CONNECTION = 100;
/** As Istio's ztunnel (POOL_UNUSED_RELEASE_TIMEOUT): a connection without streams for 5 min is closed. */
export const DEFAULT_HBONE_POOL_IDLE_MS = 5 * 60_000;
export const DEFAULT_HBONE_CONNECT_TIMEOUT_MS = 10_000;
const KEEPALIVE_DELAY_MS = 30_000;
/** How often connect() tries again when the connection it picked went away before its stream was sent. */
const MAX_PICK_ATTEMPTS = 3;

export interface HbonePoolOptions {
  /** The mesh root(s): the only trust anchors for peer certificates. */
  rootPem: string | string[];
  trustDomain?: string;
  maxStreamsPerConnection?: number;
  /** A connection without streams for this long is closed. */
  idleTimeoutMs?: number;
  /** Limit for TCP connect + TLS handshake, and again for the answer to each CONNECT. */
  connectTimeoutMs?: number;
  logger?: Logger;
  /** HTTP/2 budgets per connection against a hostile server (./h2/limits.ts); the pool does the idle timeout. */
  limits?: Partial<H2Limits>;
  /** Called for every GOAWAY the pool sends, with why (for `strait_hbone_goaway_total{reason}`). */
  onGoaway?: (reason: GoawayReason) => void;
}

export interface HboneConnectRequest {
  /** Pool key: (source identity, destination identity, destination address); the caller builds it. */
  key: string;
  /** Where to dial (the peer's HBONE port, 15008). */
  address: { host: string; port: number };
  /** Bind the client socket to this source address. */
  localAddress?: string;
  /** The source workload's certificate. */
  cert: WorkloadCert;
  /** The peer's leaf SPIFFE id must be one of these (at least one). */
  expectedPeerSans: string[];
  /** The CONNECT target, "ip:port" or "[v6]:port". */
  authority: string;
  /** Extra request headers (forwarded, baggage, traceparent, ...), passed through as given. */
  headers?: Record<string, string>;
}

export interface HboneConnection {
  /** The CONNECT stream, answered 200: raw TCP bytes both ways. */
  stream: Duplex;
  /** The peer's verified SPIFFE id. */
  peerIdentity: string;
  /** False when this call opened (or was the first to wait for) a new TLS connection. */
  reused: boolean;
  /** Which pooled connection carries the stream (stable for the connection's life). */
  connectionId: number;
}

export interface HbonePoolStats {
  /** Open TLS connections (including ones still handshaking or draining). */
  connections: number;
  /** Streams open or being opened. */
  streams: number;
  /** TLS handshakes completed since the pool was made. */
  handshakes: number;
}

/** A non-200 answer to CONNECT: `status` and the peer's `x-strait-reason`, if any. */
export class HboneRefusedError extends StraitError {
  readonly status: number;
  readonly reason: string | undefined;
  constructor(status: number, reason: string | undefined, message: string) {
    super('STRAIT_ERR_HBONE_REFUSED', message);
    this.status = status;
    this.reason = reason;
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), status: this.status, reason: this.reason };
  }
}

interface PooledConnection {
  readonly id: number;
  readonly key: string;
  /** "ip:port" dialled. */
  readonly address: string;
  state: 'connecting' | 'ready' | 'draining' | 'closed';
  ready: Promise<void>;
  socket?: tls.TLSSocket;
  session?: H2Connection;
  peerIdentity?: string;
  /** Streams open plus callers holding a slot (waiting for the handshake or the CONNECT answer). */
  streams: number;
  /** The peer's SETTINGS_MAX_CONCURRENT_STREAMS. */
  peerMaxStreams: number;
  idleTimer?: NodeJS.Timeout;
}

const STATUS_HINTS: Record<number, string> = {
  400: 'the destination does not know that target (is the pod on that node and enrolled in the mesh?)',
  401: 'the destination requires another identity (check its PeerAuthentication and AuthorizationPolicy)',
  403: 'denied by an AuthorizationPolicy of the destination',
  405: 'the peer does not speak HBONE CONNECT',
  503: 'the destination could not reach the target (is the application listening on that port?)',
  504: 'the destination timed out connecting to the target',
};

/** Why a peer may reset a CONNECT before answering it, from its RST_STREAM code. */
function earlyCloseHint(code: number | undefined): string {
  switch (code) {
    case H2Code.PROTOCOL_ERROR:
      return 'it found the CONNECT malformed (is it an HBONE endpoint? HBONE sends only :method CONNECT and :authority, RFC 9113 §8.5)';
    case H2Code.REFUSED_STREAM:
      return 'it refused the stream without processing it (at its stream limit, or shutting down); the connection may be retried';
    case H2Code.ENHANCE_YOUR_CALM:
      return 'it says we went past one of its limits';
    default:
      // Under TLS 1.3 a refused client certificate shows only as the connection closing right after the handshake.
      return 'it may have refused our client certificate (check both sides trust the same mesh root) or be shutting down';
  }
}


export class HbonePool {
  readonly #peers: PeerVerifier;
  readonly #maxStreams: number;
  readonly #idleTimeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly #log: Logger;
  readonly #contexts: SecureContextCache;
  readonly #limits: Partial<H2Limits>;
  readonly #onGoaway: ((reason: GoawayReason) => void) | undefined;
  readonly #byKey = new Map<string, PooledConnection[]>();
  /** Every connection not yet closed, including draining ones no longer in #byKey. */
  readonly #all = new Set<PooledConnection>();
  #nextId = 0;
  #handshakes = 0;
  #closed = false;

  constructor(opts: HbonePoolOptions) {
    certificatesFromPem(Array.isArray(opts.rootPem) ? opts.rootPem.join('\n') : opts.rootPem); // STRAIT_ERR_CERT_INVALID now, not per connection
    this.#peers = new PeerVerifier(opts.rootPem, opts.trustDomain ?? DEFAULT_TRUST_DOMAIN);
    this.#maxStreams = checkCount('HbonePool', 'maxStreamsPerConnection', opts.maxStreamsPerConnection ?? DEFAULT_HBONE_MAX_STREAMS_PER_CONNECTION);
    this.#idleTimeoutMs = checkCount('HbonePool', 'idleTimeoutMs', opts.idleTimeoutMs ?? DEFAULT_HBONE_POOL_IDLE_MS);
    this.#connectTimeoutMs = checkCount('HbonePool', 'connectTimeoutMs', opts.connectTimeoutMs ?? DEFAULT_HBONE_CONNECT_TIMEOUT_MS);
    this.#log = opts.logger ?? silentLogger();
    this.#contexts = new SecureContextCache(opts.rootPem);
    this.#limits = checkH2Limits({ ...defaultH2Limits(), ...opts.limits, idleTimeoutMs: 0 }, 'HbonePool');
    this.#onGoaway = opts.onGoaway;
  }

  /**
   * Opens a CONNECT stream to `authority` through a pooled connection to `address` (made if needed). Rejects
   * with STRAIT_ERR_PEER_VERIFY (wrong or untrusted peer), STRAIT_ERR_HBONE_REFUSED (non-200 answer, with
   * status and reason), STRAIT_ERR_HBONE_CONNECT_TIMEOUT or STRAIT_ERR_HBONE_CONNECT.
   */
  async connect(req: HboneConnectRequest): Promise<HboneConnection> {
    if (req.expectedPeerSans.length === 0) throw bug('HbonePool.connect needs at least one expected peer SAN');
    for (let attempt = 1; ; attempt++) {
      if (this.#closed) {
        throw new StraitError('STRAIT_ERR_HBONE_CONNECT', `cannot open HBONE stream to ${req.authority}: the pool is closed (the proxy is shutting down)`);
      }
      let conn = this.#pick(req.key, req.expectedPeerSans);
      const reused = conn !== undefined;
      conn ??= this.#dial(req);
      this.#hold(conn);
      try {
        await conn.ready;
      } catch (err) {
        this.#release(conn);
        throw err;
      }
      if (conn.state !== 'ready' || conn.session === undefined) {
        // It went away (GOAWAY, error, idle close) between the handshake and our turn: pick again.
        this.#release(conn);
        if (attempt < MAX_PICK_ATTEMPTS) continue;
        throw new StraitError('STRAIT_ERR_HBONE_CONNECT', `HBONE connection to ${conn.address} closed before the CONNECT for ${req.authority} could be sent; the peer may be restarting`);
      }
      if (!req.expectedPeerSans.includes(conn.peerIdentity!)) {
        this.#release(conn);
        throw new StraitError('STRAIT_ERR_PEER_VERIFY', `peer at ${conn.address} presented ${conn.peerIdentity} but ${req.expectedPeerSans.join(' or ')} was expected (pool key "${req.key}" is shared by different destinations)`);
      }
      const stream = await this.#open(conn, req);
      return { stream, peerIdentity: conn.peerIdentity!, reused, connectionId: conn.id };
    }
  }

  stats(): HbonePoolStats {
    let streams = 0;
    for (const c of this.#all) streams += c.streams;
    return { connections: this.#all.size, streams, handshakes: this.#handshakes };
  }

  /** Destroys every connection (and so every stream); later connect() calls fail. */
  close(): void {
    this.#closed = true;
    for (const c of [...this.#all]) {
      this.#forget(c);
      c.session?.destroy();
      c.socket?.destroy();
    }
  }

  #pick(key: string, expectedPeerSans: string[]): PooledConnection | undefined {
    for (const c of this.#byKey.get(key) ?? []) {
      if (c.state !== 'ready' && c.state !== 'connecting') continue;
      if (c.peerIdentity !== undefined && !expectedPeerSans.includes(c.peerIdentity)) continue;
      if (c.streams < Math.min(this.#maxStreams, c.peerMaxStreams)) return c;
    }
    return undefined;
  }

  #hold(c: PooledConnection): void {
    c.streams++;
    if (c.idleTimer !== undefined) {
      clearTimeout(c.idleTimer);
      c.idleTimer = undefined;
    }
  }

  #release(c: PooledConnection): void {
    c.streams--;
    if (c.streams < 0) {
      this.#log.error({ connectionId: c.id }, 'BUG: HBONE pool released more streams than it held');
      c.streams = 0;
    }
    if (c.streams > 0) return;
    if (c.state === 'ready') {
      c.idleTimer = setTimeout(() => {
        c.idleTimer = undefined;
        if (c.streams > 0 || c.state !== 'ready') return;
        this.#log.debug({ connectionId: c.id, address: c.address }, 'closing idle HBONE connection');
        this.#forget(c);
        c.session?.close('idle');
      }, this.#idleTimeoutMs);
      c.idleTimer.unref();
    } else if (c.state === 'draining') {
      this.#forget(c);
      c.session?.close();
    }
  }

  /** Takes `c` out of the pool for new streams (GOAWAY, error): its open streams continue. */
  #retire(c: PooledConnection): void {
    if (c.state === 'closed' || c.state === 'draining') return;
    c.state = 'draining';
    this.#unlist(c);
    if (c.streams === 0) {
      this.#forget(c);
      c.session?.close();
    }
  }

  #unlist(c: PooledConnection): void {
    const list = this.#byKey.get(c.key);
    if (list === undefined) return;
    const i = list.indexOf(c);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.#byKey.delete(c.key);
  }

  /** Removes `c` from every index; the caller closes or destroys it. */
  #forget(c: PooledConnection): void {
    c.state = 'closed';
    if (c.idleTimer !== undefined) clearTimeout(c.idleTimer);
    c.idleTimer = undefined;
    this.#unlist(c);
    this.#all.delete(c);
  }

  #dial(req: HboneConnectRequest): PooledConnection {
    const c: PooledConnection = {
      id: ++this.#nextId,
      key: req.key,
      address: formatAuthority(req.address.host, req.address.port),
      state: 'connecting',
      ready: Promise.resolve(),
      streams: 0,
      peerMaxStreams: Number.POSITIVE_INFINITY,
    };
    const list = this.#byKey.get(req.key);
    if (list === undefined) this.#byKey.set(req.key, [c]);
    else list.push(c);
    this.#all.add(c);
    c.ready = this.#handshake(c, req).catch((err: unknown) => {
      this.#forget(c);
      throw err;
    });
    c.ready.catch(() => undefined); // every waiter handles the rejection; this one only keeps it from being "unhandled"
    return c;
  }

  /** TCP + TLS, then the peer checks, then HTTP/2 over the verified socket. */
  #handshake(c: PooledConnection, req: HboneConnectRequest): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const { host, port } = req.address;
      let socket: tls.TLSSocket;
      try {
        socket = tls.connect({
          host,
          port,
          ...(req.localAddress !== undefined ? { localAddress: req.localAddress } : {}),
          secureContext: this.#contexts.get(req.cert),
          ALPNProtocols: [HBONE_ALPN],
          rejectUnauthorized: true,
          // Workload certificates carry no host names: the identity check is verifyPeer below.
          checkServerIdentity: () => undefined,
        });
      } catch (err) {
        reject(err instanceof StraitError ? err : new StraitError('STRAIT_ERR_HBONE_CONNECT', `cannot start HBONE connection to ${c.address}: ${errorMessage(err)}`, { cause: err }));
        return;
      }
      c.socket = socket;
      socket.setNoDelay(true);
      socket.setKeepAlive(true, KEEPALIVE_DELAY_MS);
      const fail = (err: StraitError): void => {
        clearTimeout(timer);
        socket.removeListener('error', onError);
        socket.on('error', () => undefined); // destroy() below may still report; nobody else listens
        socket.destroy();
        reject(err);
      };
      const timer = setTimeout(() => {
        fail(new StraitError('STRAIT_ERR_HBONE_CONNECT_TIMEOUT',
          `HBONE connection to ${c.address} (TCP connect and TLS handshake) timed out after ${this.#connectTimeoutMs} ms; ` +
          `maybe a NetworkPolicy or firewall is blocking HBONE port ${port}, or the node is down`));
      }, this.#connectTimeoutMs);
      const onError = (err: NodeJS.ErrnoException): void => fail(this.#connectError(err, socket, c, req));
      socket.on('error', onError);
      socket.once('secureConnect', () => {
        if (socket.alpnProtocol !== HBONE_ALPN) {
          fail(new StraitError('STRAIT_ERR_HBONE_CONNECT', `peer at ${c.address} did not negotiate ALPN "h2"; is ${c.address} an HBONE port (15008)?`));
          return;
        }
        let peerIdentity: string;
        try {
          peerIdentity = this.#peers.verify(socket, req.expectedPeerSans).id;
        } catch (err) {
          const msg = errorMessage(err);
          fail(new StraitError('STRAIT_ERR_PEER_VERIFY',
            msg.startsWith('peer ') ? `peer at ${c.address} ${msg.slice('peer '.length)}` : `peer at ${c.address}: ${msg}`, { cause: err }));
          return;
        }
        clearTimeout(timer);
        this.#handshakes++;
        // Synchronously, so no byte the peer sends after the handshake is read before HTTP/2 owns the socket.
        const session = new H2Connection(socket, {
          role: 'client',
          settings: { initialWindowSize: HBONE_STREAM_WINDOW_BYTES },
          connectionWindow: HBONE_CONNECTION_WINDOW_BYTES,
          limits: this.#limits,
        });
        socket.removeListener('error', onError);
        c.session = session;
        c.peerIdentity = peerIdentity;
        if (c.state === 'connecting') c.state = 'ready';
        this.#watch(c, session);
        this.#log.debug({ connectionId: c.id, address: c.address, peer: peerIdentity, key: c.key }, 'HBONE connection established');
        resolve();
      });
    });
  }

  #watch(c: PooledConnection, session: H2Connection): void {
    session.on('remoteSettings', (settings: H2RemoteSettings) => {
      c.peerMaxStreams = settings.maxConcurrentStreams;
    });
    session.on('goawaySent', (g: GoawayInfo) => {
      this.#onGoaway?.(g.reason);
      const fields = { connectionId: c.id, address: c.address, peer: c.peerIdentity, reason: g.reason, code: codeName(g.code), detail: g.message };
      if (g.code === H2Code.ENHANCE_YOUR_CALM) this.#log.warn(fields, 'HBONE server went past a limit; sent GOAWAY and closed the connection');
      else if (g.code !== H2Code.NO_ERROR) this.#log.info(fields, 'HBONE server broke the HTTP/2 protocol; sent GOAWAY and closed the connection');
    });
    session.on('goaway', (code: number) => {
      this.#log.debug({ connectionId: c.id, address: c.address, code }, 'HBONE peer sent GOAWAY');
      this.#retire(c);
    });
    session.on('error', (err: Error) => {
      this.#log.debug({ connectionId: c.id, address: c.address, err: errorMessage(err) }, 'HBONE connection error');
      this.#retire(c);
    });
    session.once('close', () => {
      this.#forget(c);
      c.socket?.destroy();
    });
  }

  /** Sends CONNECT on `c` (holding one slot) and waits for the answer; the slot is released when the stream closes. */
  #open(c: PooledConnection, req: HboneConnectRequest): Promise<Duplex> {
    return new Promise<Duplex>((resolve, reject) => {
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        this.#release(c);
      };
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers ?? {})) {
        if (!name.startsWith(':')) headers[name.toLowerCase()] = value;
      }
      headers[':method'] = 'CONNECT';
      headers[':authority'] = req.authority;
      let stream: H2Stream;
      try {
        stream = c.session!.request(headers, { endStream: false });
      } catch (err) {
        release();
        reject(new StraitError('STRAIT_ERR_HBONE_CONNECT', `cannot send CONNECT ${req.authority} to ${c.address}: ${errorMessage(err)}`, { cause: err }));
        return;
      }
      stream.once('close', release);
      // Errors after the answer belong to whoever relays the stream; this keeps an early one from crashing us.
      stream.on('error', (err) => this.#log.debug({ connectionId: c.id, authority: req.authority, err: errorMessage(err) }, 'HBONE stream error'));
      let answered = false;
      const settle = (err?: StraitError): void => {
        if (answered) return;
        answered = true;
        clearTimeout(timer);
        stream.removeListener('close', onEarlyClose);
        stream.removeListener('error', onEarlyError);
        if (err === undefined) {
          resolve(stream);
          return;
        }
        if (!stream.wireClosed && !stream.destroyed) stream.close(H2Code.CANCEL);
        reject(err);
      };
      const timer = setTimeout(() => {
        settle(new StraitError('STRAIT_ERR_HBONE_CONNECT_TIMEOUT',
          `HBONE peer at ${c.address} did not answer CONNECT ${req.authority} within ${this.#connectTimeoutMs} ms; the destination may be overloaded or stalled`));
      }, this.#connectTimeoutMs);
      let earlyError: Error | undefined;
      const onEarlyError = (err: Error): void => {
        earlyError = err;
      };
      const onEarlyClose = (): void => {
        const code = stream.rstCode;
        const detail = earlyError !== undefined ? errorMessage(earlyError) : `RST_STREAM ${code === undefined ? 'without a code' : codeName(code)}`;
        settle(new StraitError('STRAIT_ERR_HBONE_CONNECT',
          `HBONE peer at ${c.address} closed the stream before answering CONNECT ${req.authority} (${detail}); ${earlyCloseHint(code)}`,
          earlyError ? { cause: earlyError } : undefined));
      };
      stream.on('error', onEarlyError);
      stream.once('close', onEarlyClose);
      stream.once('response', (h: H2Headers) => {
        const status = Number(h[':status']);
        if (status === 200) {
          settle();
          return;
        }
        const raw = h[HEADER_REASON];
        const reason = typeof raw === 'string' && raw !== '' ? raw : undefined;
        settle(new HboneRefusedError(status, reason,
          `HBONE peer at ${c.address} refused CONNECT ${req.authority} with status ${status}: ${reason ?? STATUS_HINTS[status] ?? 'no reason given'}`));
      });
    });
  }

  #connectError(err: NodeJS.ErrnoException, socket: tls.TLSSocket, c: PooledConnection, req: HboneConnectRequest): StraitError {
    const port = req.address.port;
    const opts = { cause: err };
    if (socket.authorizationError) {
      return new StraitError('STRAIT_ERR_PEER_VERIFY',
        `peer at ${c.address} presented a certificate that does not chain to the mesh root (${String(socket.authorizationError)}: ${err.message}); ` +
        'check that both sides trust the same mesh root', opts);
    }
    const base = `cannot connect to HBONE peer at ${c.address}`;
    switch (err.code) {
      case 'ECONNREFUSED':
        return new StraitError('STRAIT_ERR_HBONE_CONNECT', `${base}: connection refused; is the ztunnel or waypoint there running and listening on port ${port}?`, opts);
      case 'EHOSTUNREACH':
      case 'ENETUNREACH':
        return new StraitError('STRAIT_ERR_HBONE_CONNECT', `${base}: ${err.code}; check routing to ${req.address.host}, maybe a NetworkPolicy is blocking HBONE port ${port}`, opts);
      case 'ETIMEDOUT':
        return new StraitError('STRAIT_ERR_HBONE_CONNECT_TIMEOUT', `${base}: timed out; maybe a NetworkPolicy or firewall is blocking HBONE port ${port}, or the node is down`, opts);
      case 'EADDRNOTAVAIL':
        return new StraitError('STRAIT_ERR_HBONE_CONNECT', `${base}: cannot use source address ${req.localAddress ?? '(any)'}: ${err.message}; is it an address of this node?`, opts);
      case 'ECONNRESET':
      case 'EPIPE':
        return new StraitError('STRAIT_ERR_HBONE_CONNECT',
          `${base}: the peer closed the connection during the TLS handshake (${err.message}); it may have no certificate for that address ` +
          '(is the destination pod on that node?) or refuse our certificate (check both sides trust the same mesh root)', opts);
      default:
        if (err.code?.startsWith('ERR_SSL_') === true) {
          return new StraitError('STRAIT_ERR_HBONE_CONNECT',
            `${base}: TLS handshake failed (${err.message.trim()}); the peer may refuse our certificate (check both sides trust the same mesh root) or not speak TLS 1.3`, opts);
        }
        return new StraitError('STRAIT_ERR_HBONE_CONNECT', `${base}: ${err.message}`, opts);
    }
  }
}
