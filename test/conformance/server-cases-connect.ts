/**
 * Server role, cases beyond the suite: the CONNECT method (RFC 9113 §8.5, RFC 9110 §9.3.6, RFC 8441), which is
 * all a CONNECT-only server serves, and field validity (RFC 9113 §8.2.1, §8.2.2), for ordinary requests and for
 * CONNECT, whose headers (forwarded, baggage, ...) a proxy passes on.
 */
import { FrameType, H2Code } from '../../src/hbone/h2/frames.js';
import type { HeaderList } from '../../src/hbone/h2/hpack.js';
import { headerValue } from '../helpers/h2-peer.js';
import {
  GREETING,
  finalResponse,
  headersFrame,
  isVerdict,
  streamEnded,
  streamError,
  watch,
  type CaseContext,
  type ServerCase,
  type Verdict,
} from './case.js';
import { serverCase } from './define.js';

/** A malformed request: stream error PROTOCOL_ERROR (RFC 9113 §8.1.1). */
function malformed(id: string, rfc: string, area: ServerCase['area'], description: string, headers: (ctx: CaseContext) => HeaderList, endStream = true): ServerCase {
  return serverCase(id, rfc, area, description, 'stream error PROTOCOL_ERROR', async (ctx) => {
    await ctx.handshake();
    ctx.peer.sendHeaders(1, headers(ctx), { endStream });
    return streamError(ctx, [H2Code.PROTOCOL_ERROR]);
  });
}

/** Opens a tunnel on stream 1 and returns its 2xx response, or a failing verdict. */
async function openTunnel(ctx: CaseContext): Promise<{ headers: HeaderList; endStream: boolean } | Verdict> {
  await ctx.handshake();
  ctx.peer.sendHeaders(1, ctx.connect());
  const r = await finalResponse(ctx, 1);
  if (isVerdict(r)) return r;
  const status = Number(headerValue(r.headers, ':status'));
  if (!(status >= 200 && status < 300)) return { pass: false, detail: `CONNECT answered ${status}, expected 2xx` };
  return r;
}

/** DATA received on `streamId` until it holds `text` (or a verdict says why not). */
function dataUntil(ctx: CaseContext, streamId: number, text: string): Promise<Verdict> {
  let got = '';
  return watch(ctx, `"${text.trim()}" in DATA on stream ${streamId}`, (e) => {
    if (e.kind === 'closed') return { pass: false, detail: `connection closed (${e.how}); got ${JSON.stringify(got)}` };
    const f = e.frame;
    if (f.type === FrameType.RST_STREAM && f.streamId === streamId) return { pass: false, detail: `RST_STREAM on the tunnel; got ${JSON.stringify(got)}` };
    if (f.type !== FrameType.DATA || f.streamId !== streamId) return undefined;
    got += f.payload.toString('latin1');
    return got.includes(text) ? { pass: true, detail: `${got.length} bytes of DATA` } : undefined;
  });
}

const CONNECT_CASES: ServerCase[] = [
  serverCase('connect/1', 'RFC 9113 §8.5', 'CONNECT rules', 'Sends a well-formed CONNECT (:method and :authority only)',
    'a 2xx response that leaves the stream open (no END_STREAM)', async (ctx) => {
      const r = await openTunnel(ctx);
      if (isVerdict(r)) return r;
      return r.endStream ? { pass: false, detail: '2xx with END_STREAM: the tunnel closed at once' } : { pass: true, detail: `:status ${headerValue(r.headers, ':status')}` };
    }),
  serverCase('connect/2', 'RFC 9110 §9.3.6', 'CONNECT rules', 'Answers CONNECT without content-length or transfer-encoding in the 2xx response',
    'neither header in the 2xx response', async (ctx) => {
      const r = await openTunnel(ctx);
      if (isVerdict(r)) return r;
      const bad = r.headers.filter(([n]) => n === 'content-length' || n === 'transfer-encoding').map(([n]) => n);
      return bad.length === 0 ? { pass: true, detail: 'none' } : { pass: false, detail: `2xx response to CONNECT carries ${bad.join(', ')}` };
    }),
  serverCase('connect/3', 'RFC 9113 §8.5', 'CONNECT rules', 'Carries DATA both ways through a CONNECT tunnel',
    'the upstream\'s bytes arrive as DATA, ours come back echoed', async (ctx) => {
      const r = await openTunnel(ctx);
      if (isVerdict(r)) return r;
      const greeting = await dataUntil(ctx, 1, GREETING);
      if (!greeting.pass) return greeting;
      ctx.peer.sendData(1, 'ping through the tunnel\n');
      return dataUntil(ctx, 1, 'ping through the tunnel\n');
    }),
  serverCase('connect/4', 'RFC 9113 §8.5', 'CONNECT rules', 'Half-closes a CONNECT tunnel (END_STREAM) and expects the upstream\'s close back',
    'END_STREAM from the server once the upstream closed its side', async (ctx) => {
      const r = await openTunnel(ctx);
      if (isVerdict(r)) return r;
      ctx.peer.sendData(1, '', { endStream: true });
      return streamEnded(ctx, 1);
    }),
  malformed('connect/5', 'RFC 9113 §8.5', 'CONNECT rules', 'Sends CONNECT with :scheme', (ctx) => [...ctx.connect(), [':scheme', 'https']], false),
  malformed('connect/6', 'RFC 9113 §8.5', 'CONNECT rules', 'Sends CONNECT with :path', (ctx) => [...ctx.connect(), [':path', '/']], false),
  malformed('connect/7', 'RFC 9113 §8.5', 'CONNECT rules', 'Sends CONNECT without :authority', () => [[':method', 'CONNECT']], false),
  serverCase('connect/8', 'RFC 8441 §3, RFC 9113 §8.3', 'CONNECT rules', 'Sends an extended CONNECT (:protocol) to a server that did not enable it',
    'stream error PROTOCOL_ERROR', async (ctx) => {
      await ctx.handshake();
      if (ctx.serverSettings.get(0x8) === 1) return { pass: true, skip: true, detail: 'the server enabled extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL = 1)' };
      const scheme = ctx.target.tls === undefined ? 'http' : 'https';
      ctx.peer.sendHeaders(1, [...ctx.connect(), [':protocol', 'websocket'], [':scheme', scheme], [':path', '/']]);
      return streamError(ctx, [H2Code.PROTOCOL_ERROR]);
    }),
  malformed('connect/9', 'RFC 9113 §8.2.1', 'header values', 'Sends CONNECT with a LF in a header value (forwarded)',
    (ctx) => [...ctx.connect(), ['forwarded', 'for="10.0.0.1"\nx-injected: 1']], false),
  malformed('connect/10', 'RFC 9113 §8.2.1', 'header values', 'Sends CONNECT with a NUL in a header value (baggage)',
    (ctx) => [...ctx.connect(), ['baggage', 'k=v\0w']], false),
  malformed('connect/11', 'RFC 9113 §8.2.2', 'CONNECT rules', 'Sends CONNECT with a connection-specific header (connection)',
    (ctx) => [...ctx.connect(), ['connection', 'keep-alive']], false),
  malformed('connect/12', 'RFC 9113 §8.3', 'CONNECT rules', 'Sends CONNECT with a pseudo-header after a regular header',
    (ctx) => [['forwarded', 'for="10.0.0.1"'], ...ctx.connect()], false),
  malformed('connect/13', 'RFC 9113 §8.3.1', 'CONNECT rules', 'Sends CONNECT with :authority twice',
    (ctx) => [...ctx.connect(), [':authority', ctx.target.connectAuthority]], false),
];

const FIELD_CASES: ServerCase[] = [
  malformed('fields/1', 'RFC 9113 §8.2.1', 'header values', 'Sends a header value containing NUL', (ctx) => [...ctx.request(), ['x-test', 'a\0b']]),
  malformed('fields/2', 'RFC 9113 §8.2.1', 'header values', 'Sends a header value containing CR', (ctx) => [...ctx.request(), ['x-test', 'a\rb']]),
  malformed('fields/3', 'RFC 9113 §8.2.1', 'header values', 'Sends a header value containing LF', (ctx) => [...ctx.request(), ['x-test', 'a\nb']]),
  malformed('fields/4', 'RFC 9113 §8.2.1', 'header values', 'Sends a header value starting with a space', (ctx) => [...ctx.request(), ['x-test', ' ok']]),
  malformed('fields/5', 'RFC 9113 §8.2.1', 'header values', 'Sends a header value ending with a tab', (ctx) => [...ctx.request(), ['x-test', 'ok\t']]),
  malformed('fields/6', 'RFC 9113 §8.2.1', 'header values', 'Sends a header name containing a space', (ctx) => [...ctx.request(), ['x test', 'ok']]),
  malformed('fields/7', 'RFC 9113 §8.2.1', 'header values', 'Sends a header name containing a colon after the first character', (ctx) => [...ctx.request(), ['x:test', 'ok']]),
  malformed('fields/8', 'RFC 9113 §8.2.1', 'header values', 'Sends a header name containing DEL (0x7f)', (ctx) => [...ctx.request(), ['x\x7ftest', 'ok']]),
  malformed('fields/9', 'RFC 9113 §8.2.1', 'header values', 'Sends an empty header name', (ctx) => [...ctx.request(), ['', 'ok']]),
  malformed('fields/10', 'RFC 9113 §8.2.2', 'malformed requests', 'Sends transfer-encoding', (ctx) => [...ctx.request(), ['transfer-encoding', 'chunked']]),
  malformed('fields/11', 'RFC 9113 §8.2.2', 'malformed requests', 'Sends upgrade', (ctx) => [...ctx.request(), ['upgrade', 'h2c']]),
  malformed('fields/12', 'RFC 9113 §8.2.2', 'malformed requests', 'Sends keep-alive', (ctx) => [...ctx.request(), ['keep-alive', 'timeout=5']]),
  malformed('fields/13', 'RFC 9113 §8.2.2', 'malformed requests', 'Sends proxy-connection', (ctx) => [...ctx.request(), ['proxy-connection', 'keep-alive']]),
  serverCase('fields/14', 'RFC 9113 §8.2.2', 'malformed requests', 'Sends "te: trailers" (the one allowed value)', 'a response on stream 1 (not an error)', async (ctx) => {
    await ctx.handshake();
    ctx.peer.sendHeaders(1, [...ctx.request(), ['te', 'trailers']], { endStream: true });
    return headersFrame(ctx, 1);
  }),
  serverCase('fields/15', 'RFC 9113 §8.2.1', 'header values', 'Sends a header value with inner spaces and tabs and obs-text octets', 'a response on stream 1 (not an error)', async (ctx) => {
    await ctx.handshake();
    ctx.peer.sendHeaders(1, [...ctx.request(), ['x-test', 'a b\tc \xe9']], { endStream: true });
    return headersFrame(ctx, 1);
  }),
];

export const EXTRA_CASES: ServerCase[] = [...CONNECT_CASES, ...FIELD_CASES];
