/**
 * The load client of the data-path benchmark: HTTP/1.1 keep-alive connections on raw sockets (a minimal
 * response parser, no agent, no allocation per request beyond the socket's own chunks), so that what it adds
 * is small and identical on every path. Each path is a `Dialer` that hands back a connected socket (straight
 * to the server, through the ztunnel's SOCKS5 port, or into the stunnel client).
 *
 * Latency is measured two ways:
 * - sequential: one connection, the next request written as soon as the previous response is complete;
 * - open loop: requests scheduled at a fixed rate, independent of responses, over several connections; the
 *   latency of a request runs from its *scheduled* send time (so a stall delays the clock of every request
 *   queued behind it: no coordinated omission), and also, for comparison, from the moment it was written.
 */
import net from 'node:net';
import { once } from 'node:events';
import { socks5Connect } from '../../src/demo/socks5-client.js';
import { Pacer } from './datapath-pacer.js';
import { Samples } from './datapath-stats.js';

export type Dialer = () => Promise<net.Socket>;

const HEADER_END = Buffer.from('\r\n\r\n');
const CONTENT_LENGTH = /\r\ncontent-length:\s*(\d+)/i;

const now = (): bigint => process.hrtime.bigint();

/** Called when a response is complete (or the connection failed), with the clock read right then. */
type Done = (endNs: bigint, error?: Error) => void;

/**
 * One keep-alive HTTP/1.1 connection, one request at a time. Responses must carry Content-Length (the bench
 * server's always do).
 */
export class HttpConn {
  private head: Buffer | undefined;
  private remaining = -1; // body bytes still expected; -1 while reading the head
  private done: Done | undefined;
  bodyBytes = 0;
  closed = false;

  constructor(readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    const fail = (err?: Error) => {
      this.closed = true;
      const d = this.done;
      this.done = undefined;
      d?.(now(), err ?? new Error('connection closed before the response was complete'));
    };
    socket.on('error', (err) => fail(err));
    socket.on('close', () => fail());
    socket.resume();
  }

  get busy(): boolean {
    return this.done !== undefined;
  }

  /** Writes `request` (a whole GET); `done` runs when the whole response has arrived. */
  get(request: Buffer, done: Done): void {
    if (this.done) throw new Error('BUG: HttpConn.get while a request is in flight');
    if (this.closed) {
      done(now(), new Error('connection already closed'));
      return;
    }
    this.done = done;
    this.head = undefined;
    this.remaining = -1;
    this.bodyBytes = 0;
    this.socket.write(request);
  }

  private onData(chunk: Buffer): void {
    if (!this.done) {
      this.closed = true;
      this.socket.destroy(new Error(`unexpected ${chunk.length} bytes with no request in flight`));
      return;
    }
    if (this.remaining < 0) {
      const buf = this.head ? Buffer.concat([this.head, chunk]) : chunk;
      const end = buf.indexOf(HEADER_END);
      if (end < 0) {
        this.head = buf;
        return;
      }
      const headText = buf.toString('latin1', 0, end);
      if (!headText.startsWith('HTTP/1.1 200')) return this.finish(new Error(`unexpected response: ${headText.split('\r\n')[0]}`));
      const cl = CONTENT_LENGTH.exec(headText);
      if (!cl) return this.finish(new Error('response without content-length'));
      this.remaining = Number(cl[1]);
      this.head = undefined;
      chunk = buf.subarray(end + 4);
    }
    this.bodyBytes += chunk.length;
    this.remaining -= chunk.length;
    if (this.remaining === 0) this.finish();
    else if (this.remaining < 0) this.finish(new Error('more bytes than content-length'));
  }

  private finish(error?: Error): void {
    const t = now();
    const d = this.done!;
    this.done = undefined;
    d(t, error);
  }

  close(): void {
    this.socket.destroy();
  }
}

export function requestBytes(path: string, host: string): Buffer {
  return Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: strait-bench\r\nAccept: */*\r\n\r\n`, 'latin1');
}

export async function openConns(dial: Dialer, n: number): Promise<HttpConn[]> {
  const conns: HttpConn[] = [];
  for (let i = 0; i < n; i++) conns.push(new HttpConn(await dial()));
  return conns;
}

export interface SequentialResult {
  latency: Samples;
  errors: number;
  seconds: number;
}

/** The bytes of request i: one request for all, or one chosen per request (e.g. alternating headers). */
export type RequestSource = Buffer | ((i: number) => Buffer);
const requestAt = (r: RequestSource, i: number): Buffer => (typeof r === 'function' ? r(i) : r);

/** `count` sequential requests on one connection (stops early at `maxMs`). */
export function sequential(conn: HttpConn, request: RequestSource, count: number, maxMs: number): Promise<SequentialResult> {
  return new Promise((resolve, reject) => {
    const latency = new Samples(count);
    const t0 = now();
    const deadline = t0 + BigInt(maxMs) * 1_000_000n;
    let errors = 0;
    let sent = 0;
    const next = (): void => {
      const start = now();
      if (sent >= count || start > deadline) {
        resolve({ latency, errors, seconds: Number(start - t0) / 1e9 });
        return;
      }
      conn.get(requestAt(request, sent++), (end, err) => {
        if (err) {
          errors++;
          if (conn.closed) return reject(err);
        } else {
          latency.add(Number(end - start));
        }
        next();
      });
    };
    next();
  });
}

export interface OpenLoopResult {
  /** From the scheduled send time to the last byte of the response (coordinated-omission free). */
  fromSchedule: Samples;
  /** From the moment the request was written to the last byte. */
  service: Samples;
  /** How late the client wrote each request after its scheduled time (timer granularity + queueing). */
  lateness: Samples;
  /** Requests in the schedule. */
  scheduled: number;
  /** Requests that became due before the run ended (all of them unless the hard stop cut it short). */
  due: number;
  completed: number;
  errors: number;
  seconds: number;
  achievedRps: number;
}

/**
 * Open-loop load: request i is due at t0 + i/rate (a worker thread keeps the clock, see datapath-pacer.ts); a
 * due request goes to an idle connection, or waits for one. Bounded: the schedule ends after `durationMs`, and
 * stragglers are given up on `graceMs` later.
 */
export async function openLoop(conns: HttpConn[], request: RequestSource, rate: number, durationMs: number, graceMs = 10_000): Promise<OpenLoopResult> {
  const pacer = new Pacer();
  try {
    return await new Promise<OpenLoopResult>((resolve, reject) => {
      const total = Math.floor((rate * durationMs) / 1000);
      const intervalNs = 1e9 / rate;
      const fromSchedule = new Samples(total);
      const service = new Samples(total);
      const lateness = new Samples(total);
      const idle: HttpConn[] = conns.filter((c) => !c.closed);
      const waiting: number[] = []; // indices of due requests with no idle connection yet
      let t0 = 0n;
      const due = (i: number): bigint => t0 + BigInt(Math.round(i * intervalNs));
      let dispatched = 0;
      let completed = 0;
      let errors = 0;
      let finished = false;
      let hardStop: NodeJS.Timeout | undefined;

      const end = (): void => {
        if (finished) return;
        finished = true;
        clearTimeout(hardStop);
        const seconds = Number(now() - t0) / 1e9;
        resolve({ fromSchedule, service, lateness, scheduled: total, due: dispatched, completed, errors, seconds, achievedRps: completed / seconds });
      };

      const send = (conn: HttpConn, i: number): void => {
        const scheduledAt = due(i);
        const sentAt = now();
        lateness.add(Number(sentAt - scheduledAt));
        conn.get(requestAt(request, i), (endNs, err) => {
          if (err) errors++;
          else {
            completed++;
            fromSchedule.add(Number(endNs - scheduledAt));
            service.add(Number(endNs - sentAt));
          }
          if (finished) return;
          const w = waiting.shift();
          if (w !== undefined && !conn.closed) send(conn, w);
          else if (!conn.closed) idle.push(conn);
          if (dispatched >= total && completed + errors >= total) end();
        });
      };

      pacer.start(intervalNs, total, (i) => {
        if (finished) return;
        dispatched++;
        const conn = idle.shift(); // oldest idle first: the load rotates over all connections
        if (conn) send(conn, i);
        else waiting.push(i);
      }).then((start) => {
        t0 = start;
        hardStop = setTimeout(end, durationMs + graceMs);
      }, reject);
    });
  } finally {
    await pacer.stop();
  }
}

export interface TransferResult {
  /** All streams together. */
  bytes: number;
  seconds: number;
  /** MiB/s, all streams together */
  mibps: number;
  /** Connections carrying the transfer at once. */
  streams: number;
}

/** One response body of `bytes` on `conn`; resolves with the clock read when its last byte arrived. */
function fetchBody(conn: HttpConn, bytes: number, host: string, maxMs: number): Promise<bigint> {
  return new Promise<bigint>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`download of ${bytes} bytes did not finish within ${maxMs} ms`)), maxMs);
    conn.get(requestBytes(`/bytes/${bytes}`, host), (end, err) => {
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(end);
    });
  });
}

/**
 * Downloads `bytes` as one HTTP response body on each of `streams` fresh connections at once (all dialled before the
 * clock starts); the rate is all bytes over the time from the first request to the last byte of the last response.
 */
export async function download(dial: Dialer, bytes: number, host: string, maxMs: number, streams = 1): Promise<TransferResult> {
  const conns: HttpConn[] = [];
  try {
    for (let i = 0; i < streams; i++) conns.push(new HttpConn(await dial()));
    const t0 = now();
    const ends = await Promise.all(conns.map((c) => fetchBody(c, bytes, host, maxMs)));
    const seconds = Number(ends.reduce((a, b) => (b > a ? b : a)) - t0) / 1e9;
    const got = conns.reduce((s, c) => s + c.bodyBytes, 0);
    return { bytes: got, seconds, mibps: got / 1048576 / seconds, streams };
  } finally {
    for (const c of conns) c.close();
  }
}

const UPLOAD_CHUNK = Buffer.alloc(256 * 1024, 'u');

/** Sends the 8-byte length and `bytes` bytes on `socket`; resolves with the clock read when the sink acknowledged. */
function sendToSink(socket: net.Socket, bytes: number, maxMs: number): Promise<bigint> {
  return new Promise<bigint>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`upload of ${bytes} bytes not acknowledged within ${maxMs} ms`)), maxMs);
    socket.on('error', (err) => { clearTimeout(timer); reject(err); });
    socket.on('close', () => { clearTimeout(timer); reject(new Error('sink closed the connection before acknowledging')); });
    socket.on('data', (d: Buffer) => {
      if (d[0] !== 0x4b) return;
      clearTimeout(timer);
      resolve(now());
    });
    socket.resume();
    const header = Buffer.alloc(8);
    header.writeBigUInt64BE(BigInt(bytes));
    socket.write(header);
    let left = bytes;
    const pump = (): void => {
      while (left > 0) {
        const n = Math.min(left, UPLOAD_CHUNK.length);
        left -= n;
        if (!socket.write(n === UPLOAD_CHUNK.length ? UPLOAD_CHUNK : UPLOAD_CHUNK.subarray(0, n))) {
          socket.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
}

/**
 * Uploads `bytes` to the sink on each of `streams` fresh connections at once (all dialled before the clock starts);
 * done when the sink has acknowledged the last byte of every one.
 */
export async function upload(dial: Dialer, bytes: number, maxMs: number, streams = 1): Promise<TransferResult> {
  const sockets: net.Socket[] = [];
  try {
    for (let i = 0; i < streams; i++) {
      const s = await dial();
      s.setNoDelay(true);
      sockets.push(s);
    }
    const t0 = now();
    const ends = await Promise.all(sockets.map((s) => sendToSink(s, bytes, maxMs)));
    const seconds = Number(ends.reduce((a, b) => (b > a ? b : a)) - t0) / 1e9;
    return { bytes: bytes * streams, seconds, mibps: (bytes * streams) / 1048576 / seconds, streams };
  } finally {
    for (const s of sockets) {
      s.removeAllListeners('close');
      s.destroy();
    }
  }
}

/** A plain TCP dialer (direct, or into a local stunnel client), bound to the client pod's address when given. */
export function tcpDialer(host: string, port: number, localAddress?: string): Dialer {
  return async () => {
    const s = net.connect({ host, port, ...(localAddress ? { localAddress } : {}) });
    s.setNoDelay(true);
    await once(s, 'connect');
    return s;
  };
}

/** How to reach a path, as data (it crosses to a load generator in another process): plain TCP or the ztunnel's SOCKS5. */
export type DialSpec =
  | { kind: 'tcp'; host: string; port: number; localAddress?: string }
  | { kind: 'socks5'; proxy: { host: string; port: number }; localAddress: string; target: { host: string; port: number } };

export function dialerFor(d: DialSpec): Dialer {
  if (d.kind === 'tcp') return tcpDialer(d.host, d.port, d.localAddress);
  return async () => {
    const r = await socks5Connect({ proxy: d.proxy, localAddress: d.localAddress, target: d.target, timeoutMs: 10_000 });
    if (!r.ok) throw new Error(`the ztunnel refused the SOCKS5 CONNECT to ${d.target.host}:${d.target.port}: ${r.message}`);
    r.socket.setNoDelay(true);
    return r.socket;
  };
}
