/**
 * Runs the client-role table: an H2Peer plays the server, our client connects to it and sends a CONNECT, the
 * peer does the case's odd thing, and both sides are judged: what the client sent back on the wire, and what the
 * code holding the stream saw. Two ways in:
 * - 'h2': H2Connection (role 'client') straight over TCP, with its default settings;
 * - 'pool': HbonePool over mutual TLS, as the ztunnel dials (its windows and settings);
 * - 'node': node:http2's client (nghttp2) with push disabled, the reference the table is checked against (its
 *   results are printed, never asserted).
 */
import net from 'node:net';
import http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import { FrameType, H2Code, codeName } from '../../src/hbone/h2/frames.js';
import { H2Connection } from '../../src/hbone/h2/connection.js';
import type { H2Headers, H2Stream } from '../../src/hbone/h2/stream.js';
import { HbonePool } from '../../src/hbone/index.js';
import { H2Peer, H2PeerClosedError, H2PeerTimeoutError, describeFrame, type PeerEvent } from '../helpers/h2-peer.js';
import { connectionError, streamError, watch, type Verdict, type Watcher } from './case.js';
import { CLIENT_CASES, type ClientCase } from './client-cases.js';
import { countResults, type Status } from './runner.js';
import { SERVER_ID, type MeshCerts } from './targets.js';

export type ClientMode = 'h2' | 'pool' | 'node';
/** The modes that test our code. */
export const CLIENT_MODES: ClientMode[] = ['h2', 'pool'];

export interface ClientResult {
  id: string;
  mode: ClientMode;
  case: ClientCase;
  status: Status;
  detail: string;
  ms: number;
}

const AUTHORITY = '10.0.0.1:80';

/** What the code holding the stream has seen so far. */
interface CallerView {
  /** The final response's status, once one arrived (pool: 200 when connect() resolved). */
  status?: number;
  /** An error or an abort, after or instead of a response. */
  failure?: string;
  changed: Promise<void>;
}

function callerView(): { view: CallerView; update: (f: (v: CallerView) => void) => void } {
  let wake: () => void = () => undefined;
  const view: CallerView = { changed: new Promise<void>((r) => (wake = r)) };
  return {
    view,
    update(f) {
      f(view);
      const w = wake;
      view.changed = new Promise<void>((r) => (wake = r));
      w();
    },
  };
}

function watchStream(stream: Duplex, update: (f: (v: CallerView) => void) => void): void {
  const s = stream as H2Stream;
  stream.on('error', (err: Error) => update((v) => (v.failure ??= `stream error: ${err.message}`)));
  stream.on('close', () => {
    if (s.aborted || s.rstCode !== undefined) update((v) => (v.failure ??= `stream aborted (${s.rstCode === undefined ? 'no RST code' : codeName(s.rstCode)})`));
  });
}

/** Waits until `done(view)` holds or `ms` pass; returns whether it held. */
async function until(view: CallerView, done: (v: CallerView) => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!done(view)) {
    const left = deadline - Date.now();
    if (left <= 0) return false;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([view.changed, new Promise<void>((r) => (timer = setTimeout(r, left)))]);
    clearTimeout(timer);
  }
  return true;
}

async function judgeCaller(c: ClientCase, view: CallerView, timeoutMs: number): Promise<Verdict> {
  const ok2xx = (v: CallerView): boolean => v.status !== undefined && v.status >= 200 && v.status < 300;
  const seen = (): string => `status ${view.status ?? 'none'}, ${view.failure ?? 'no error'}`;
  switch (c.caller) {
    case 'error': {
      const held = await until(view, (v) => v.failure !== undefined || (v.status !== undefined && !ok2xx(v)) || ok2xx(v), timeoutMs);
      if (!held) return { pass: false, detail: `the caller was left waiting (${seen()})` };
      if (ok2xx(view) && view.failure === undefined) return { pass: false, detail: `the caller got a ${view.status} response` };
      if (view.failure !== undefined && /TIMEOUT/.test(view.failure)) return { pass: false, detail: `the caller only got a timeout: ${view.failure}` };
      return { pass: true, detail: view.failure ?? `status ${view.status}` };
    }
    case 'response': {
      const held = await until(view, (v) => v.failure !== undefined || v.status !== undefined, timeoutMs);
      if (!held) return { pass: false, detail: 'the caller was left waiting for the response' };
      if (!ok2xx(view)) return { pass: false, detail: `the caller saw ${seen()}` };
      // The stream must stay usable for a moment after the response.
      await until(view, (v) => v.failure !== undefined, Math.min(300, timeoutMs));
      return view.failure === undefined ? { pass: true, detail: `status ${view.status}` } : { pass: false, detail: `response, then ${view.failure}` };
    }
    case 'response-then-error': {
      const held = await until(view, (v) => v.failure !== undefined, timeoutMs);
      if (!held) return { pass: false, detail: `the caller saw no error (${seen()})` };
      return { pass: true, detail: view.failure! };
    }
  }
}

async function judgeWire(c: ClientCase, w: Watcher, streamId: number): Promise<Verdict> {
  switch (c.wire.kind) {
    case 'connection-error':
      return connectionError(w, c.wire.codes);
    case 'stream-error':
      return streamError(w, c.wire.codes, streamId);
    case 'any-error':
      return watch(w, `RST_STREAM on stream ${streamId}, GOAWAY or a close`, (e) => {
        if (e.kind === 'closed') return { pass: true, detail: `connection closed (${e.how})` };
        const f = e.frame;
        if (f.type === FrameType.GOAWAY || (f.type === FrameType.RST_STREAM && f.streamId === streamId)) return { pass: true, detail: describeFrame(f) };
        return undefined;
      });
    case 'no-error': {
      const judge = (e: PeerEvent): Verdict | undefined => {
        if (e.kind === 'closed') return undefined;
        const f = e.frame;
        if (f.type === FrameType.GOAWAY && f.payload.length >= 8 && f.payload.readUInt32BE(4) !== H2Code.NO_ERROR) return { pass: false, detail: describeFrame(f) };
        if (f.type === FrameType.RST_STREAM && f.streamId === streamId && f.payload.length === 4) {
          const code = f.payload.readUInt32BE(0);
          if (code !== H2Code.NO_ERROR && code !== H2Code.CANCEL) return { pass: false, detail: describeFrame(f) };
        }
        return undefined;
      };
      try {
        return await w.peer.waitFor('an error frame', judge, Math.min(300, w.timeoutMs));
      } catch (err) {
        // Nothing judged an error before the time ran out or the connection closed: that is the pass.
        if (err instanceof H2PeerTimeoutError || err instanceof H2PeerClosedError) return { pass: true, detail: 'no error frame' };
        throw err;
      }
    }
  }
}

export async function runClientCase(c: ClientCase, mode: ClientMode, certs: MeshCerts, timeoutMs: number): Promise<ClientResult> {
  const started = Date.now();
  const done = (status: Status, detail: string): ClientResult => ({ id: c.id, mode, case: c, status, detail, ms: Date.now() - started });
  const { view, update } = callerView();
  const cleanups: Array<() => unknown> = [];
  try {
    const listener = await H2Peer.listen(mode === 'pool'
      ? { tls: { cert: certs.server.certChainPem, key: certs.server.keyPem, ca: certs.rootPem, requestCert: true } }
      : {});
    cleanups.push(() => listener.close());
    if (mode === 'h2') {
      const socket = net.connect({ host: '127.0.0.1', port: listener.port });
      socket.on('error', () => undefined);
      const client = new H2Connection(socket, { role: 'client' });
      cleanups.push(() => client.destroy());
      client.on('error', (err: Error) => update((v) => (v.failure ??= `connection error: ${err.message}`)));
      const stream = client.request({ ':method': 'CONNECT', ':authority': AUTHORITY });
      stream.on('response', (h: H2Headers) => update((v) => (v.status = Number(h[':status']))));
      watchStream(stream, update);
    } else if (mode === 'node') {
      const session = http2.connect(`http://127.0.0.1:${listener.port}`, { settings: { enablePush: false } });
      cleanups.push(() => session.destroy());
      session.on('error', (err: Error) => update((v) => (v.failure ??= `session error: ${err.message}`)));
      const req = session.request({ ':method': 'CONNECT', ':authority': AUTHORITY });
      req.on('response', (h) => update((v) => (v.status = Number(h[':status']))));
      req.on('error', (err: Error) => update((v) => (v.failure ??= `stream error: ${err.message}`)));
      req.on('close', () => {
        if (req.aborted || req.rstCode !== http2.constants.NGHTTP2_NO_ERROR) update((v) => (v.failure ??= `stream closed (rstCode ${req.rstCode})`));
      });
    } else {
      const pool = new HbonePool({ rootPem: certs.rootPem, connectTimeoutMs: 4 * timeoutMs });
      cleanups.push(() => pool.close());
      pool.connect({
        key: `test|${SERVER_ID}|127.0.0.1:${listener.port}`,
        address: { host: '127.0.0.1', port: listener.port },
        cert: certs.client,
        expectedPeerSans: [SERVER_ID],
        authority: AUTHORITY,
      }).then((conn) => {
        update((v) => (v.status = 200));
        watchStream(conn.stream, update);
      }, (err: Error & { code?: string; status?: number }) => {
        update((v) => {
          if (err.status !== undefined) v.status = err.status;
          v.failure ??= `connect() rejected: ${err.code ?? ''} ${err.message}`;
        });
      });
    }
    const peer = await listener.accept(timeoutMs * 4);
    cleanups.push(() => peer.destroy());
    await peer.handshake([], timeoutMs * 4);
    const request = await peer.nextFrame(FrameType.HEADERS, { timeoutMs: timeoutMs * 4 });
    const w: Watcher = { peer, timeoutMs };
    await c.act(peer, request.streamId);
    const [wire, caller] = await Promise.all([judgeWire(c, w, request.streamId), judgeCaller(c, view, timeoutMs)]);
    const detail = `wire: ${wire.detail}; caller: ${caller.detail}`;
    return done(wire.pass && caller.pass ? 'pass' : 'fail', detail);
  } catch (err) {
    return done('fail', `error: ${(err as Error).message}`);
  } finally {
    for (const c of cleanups.reverse()) await c();
  }
}

export async function runClientCases(certs: MeshCerts, opts: { timeoutMs?: number; only?: string[]; modes?: ClientMode[]; onResult?: (r: ClientResult) => void } = {}): Promise<ClientResult[]> {
  const cases = opts.only === undefined ? CLIENT_CASES : CLIENT_CASES.filter((c) => opts.only!.some((p) => c.id.startsWith(p)));
  const results: ClientResult[] = [];
  for (const c of cases) {
    for (const mode of opts.modes ?? CLIENT_MODES) {
      const r = await runClientCase(c, mode, certs, opts.timeoutMs ?? 1000);
      results.push(r);
      opts.onResult?.(r);
    }
  }
  return results;
}

export function formatClientResults(results: ClientResult[], opts: { color?: boolean; quiet?: boolean } = {}): string {
  const paint = (code: number, s: string): string => (opts.color === true ? `\x1b[${code}m${s}\x1b[0m` : s);
  const lines: string[] = [];
  if (opts.quiet !== true) {
    lines.push('Client role: our HTTP/2 client against a hostile server', '');
    for (const r of results) {
      const mark = r.status === 'pass' ? paint(32, '✔') : r.status === 'skip' ? paint(33, '-') : paint(31, '×');
      lines.push(`  ${mark} ${r.id} [${r.mode}]: ${r.case.description}`);
      if (r.status === 'fail') {
        const wire = r.case.wire.kind === 'connection-error' || r.case.wire.kind === 'stream-error'
          ? `${r.case.wire.kind} ${r.case.wire.codes.map(codeName).join(' or ')}` : r.case.wire.kind;
        lines.push(`      -> expected: wire ${wire}; caller sees ${r.case.caller}`);
        lines.push(`         actual:   ${r.detail}`);
      }
    }
    lines.push('');
  }
  for (const mode of [...CLIENT_MODES, 'node'] as ClientMode[]) {
    const c = countResults(results.filter((r) => r.mode === mode));
    const label = mode === 'node' ? 'node:http2 client, reference' : mode;
    if (c.total > 0) lines.push(`client role [${label}]: ${c.total} tests, ${c.pass} passed, ${c.skip} skipped, ${c.fail} failed`);
  }
  return lines.join('\n');
}
