/**
 * Server role, "generic" group: a conforming server accepts every ordinary use of each frame type and each HPACK
 * representation (RFC 9113 §3–§8, RFC 7541 §6). Numbering follows h2spec's generic group.
 */
import { FrameType, H2Code, Setting } from '../../src/hbone/h2/frames.js';
import { encodeHeaders as encode } from '../../src/hbone/h2/hpack.js';
import {
  connectionClose,
  dataFrame,
  headersFrame,
  pingAck,
  settingsAck,
  streamEnded,
  type CaseContext,
  type ServerCase,
} from './case.js';
import { adapted, pingData, serverCase } from './define.js';

const NEEDS_DATA = 'the suite reads a GET response body; a CONNECT-only server sends none, so the stream is a CONNECT to an upstream that writes first';

/** One HPACK representation case: the common headers plus `hex`, expecting a response on stream 1. */
function hpackAccepted(n: number, rfc: string, description: string, hex: string, prepend = false): ServerCase {
  return serverCase(`generic/5/${n}`, rfc, 'HPACK', description, 'a response (HEADERS) on stream 1', async (ctx) => {
    await ctx.handshake();
    const common = encode(ctx.request());
    const representation = Buffer.from(hex, 'hex');
    const block = prepend ? Buffer.concat([representation, common]) : Buffer.concat([common, representation]);
    ctx.peer.sendHeaders(1, block, { endStream: true });
    return headersFrame(ctx, 1);
  });
}

export const GENERIC_CASES: ServerCase[] = [
  serverCase('generic/1/1', 'RFC 9113 §3.4', 'preface', 'Sends a client connection preface',
    'the first frame from the server is SETTINGS without ACK', async (ctx) => {
      ctx.peer.sendPreface();
      ctx.peer.sendSettings([[Setting.INITIAL_WINDOW_SIZE, 65_535]]);
      const f = await ctx.peer.nextFrame(undefined, { timeoutMs: ctx.timeoutMs }).catch((err: Error) => err);
      if (f instanceof Error) return { pass: false, detail: f.message };
      return f.type === FrameType.SETTINGS && (f.flags & 0x1) === 0
        ? { pass: true, detail: 'SETTINGS first' }
        : { pass: false, detail: `first frame was type ${f.type} flags ${f.flags}` };
    }),

  serverCase('generic/2/1', 'RFC 9113 §5.1', 'stream states', 'Sends a PRIORITY frame on an idle stream',
    'the frame is accepted (PING answered)', async (ctx) => {
      await ctx.handshake();
      ctx.peer.sendPriority(1, 0, 256);
      const data = pingData('idle-pri');
      ctx.peer.sendPing(data);
      return pingAck(ctx, data);
    }),
  serverCase('generic/2/2', 'RFC 9113 §5.1', 'stream states', 'Sends a WINDOW_UPDATE frame on a half-closed (remote) stream',
    'the frame is accepted: DATA flows once the window opens', async (ctx) => {
      await ctx.handshake();
      ctx.peer.sendSettings([[Setting.INITIAL_WINDOW_SIZE, 0]]);
      ctx.peer.sendHeaders(1, ctx.connect(), { endStream: true });
      ctx.peer.sendWindowUpdate(1, 1);
      return dataFrame(ctx, 1, 1);
    }, adapted(NEEDS_DATA)),
  serverCase('generic/2/3', 'RFC 9113 §5.1', 'stream states', 'Sends a PRIORITY frame on a half-closed (remote) stream',
    'the frame is accepted: DATA flows once the window opens', async (ctx) => {
      await ctx.handshake();
      ctx.peer.sendSettings([[Setting.INITIAL_WINDOW_SIZE, 0]]);
      ctx.peer.sendHeaders(1, ctx.connect(), { endStream: true });
      ctx.peer.sendPriority(1, 0, 256);
      ctx.peer.sendWindowUpdate(1, 1);
      return dataFrame(ctx, 1, 1);
    }, adapted(NEEDS_DATA)),
  serverCase('generic/2/4', 'RFC 9113 §5.1', 'stream states', 'Sends a RST_STREAM frame on a half-closed (remote) stream',
    'the frame is accepted (PING answered, or the connection closes)', async (ctx) => {
      await ctx.handshake();
      ctx.peer.sendHeaders(1, ctx.request(), { endStream: true });
      ctx.peer.sendRstStream(1, H2Code.CANCEL);
      const data = pingData('rst-hcr');
      ctx.peer.sendPing(data);
      return pingAck(ctx, data, true);
    }),
  serverCase('generic/2/5', 'RFC 9113 §5.1', 'stream states', 'Sends a PRIORITY frame on a closed stream',
    'the frame is accepted (PING answered)', async (ctx) => {
      await ctx.handshake();
      ctx.peer.sendHeaders(1, ctx.request(), { endStream: true });
      const ended = await streamEnded(ctx, 1);
      if (!ended.pass) return ended;
      ctx.peer.sendPriority(1, 0, 256);
      const data = pingData('closed-p');
      ctx.peer.sendPing(data);
      return pingAck(ctx, data);
    }),

  serverCase('generic/3.1/1', 'RFC 9113 §6.1', 'DATA', 'Sends a DATA frame', 'a response on stream 1', async (ctx) => {
    await ctx.handshake();
    ctx.peer.sendHeaders(1, ctx.request('POST'));
    ctx.peer.sendData(1, 'test', { endStream: true });
    return headersFrame(ctx, 1);
  }),
  serverCase('generic/3.1/2', 'RFC 9113 §6.1', 'DATA', 'Sends multiple DATA frames', 'a response on stream 1', async (ctx) => {
    await ctx.handshake();
    ctx.peer.sendHeaders(1, ctx.request('POST'));
    ctx.peer.sendData(1, 'test');
    ctx.peer.sendData(1, 'test', { endStream: true });
    return headersFrame(ctx, 1);
  }),
  serverCase('generic/3.1/3', 'RFC 9113 §6.1', 'DATA', 'Sends a DATA frame with padding', 'a response on stream 1', async (ctx) => {
    await ctx.handshake();
    ctx.peer.sendHeaders(1, ctx.request('POST'));
    ctx.peer.sendData(1, 'test', { endStream: true, padding: 6 });
    return headersFrame(ctx, 1);
  }),

  serverCase('generic/3.2/1', 'RFC 9113 §6.2', 'HEADERS', 'Sends a HEADERS frame', 'a response on stream 1', async (ctx) => {
    await ctx.handshake();
    ctx.peer.sendHeaders(1, ctx.request(), { endStream: true });
    return headersFrame(ctx, 1);
  }),
  serverCase('generic/3.2/2', 'RFC 9113 §6.2', 'HEADERS', 'Sends a HEADERS frame with padding', 'a response on stream 1', async (ctx) => {
    await ctx.handshake();
    ctx.peer.sendHeaders(1, ctx.request(), { endStream: true, padding: 8 });
    return headersFrame(ctx, 1);
  }),
  serverCase('generic/3.2/3', 'RFC 9113 §6.2', 'HEADERS', 'Sends a HEADERS frame with priority', 'a response on stream 1', async (ctx) => {
    await ctx.handshake();
    ctx.peer.sendHeaders(1, ctx.request(), { endStream: true, priority: { dependsOn: 0, weight: 256 } });
    return headersFrame(ctx, 1);
  }),

  ...([
    [1, 'Sends a PRIORITY frame with priority 1', 3, 0, 1, false],
    [2, 'Sends a PRIORITY frame with priority 256', 1, 0, 256, false],
    [3, 'Sends a PRIORITY frame with stream dependency', 3, 1, 1, false],
    [4, 'Sends a PRIORITY frame with exclusive', 1, 0, 1, true],
    [5, 'Sends a PRIORITY frame for an idle stream, then a HEADERS frame for a lower stream id', 3, 0, 256, false],
  ] as Array<[number, string, number, number, number, boolean]>).map(([n, description, prioStream, dependsOn, weight, exclusive]) =>
    serverCase(`generic/3.3/${n}`, 'RFC 9113 §6.3', 'PRIORITY', description, 'a response on stream 1', async (ctx) => {
      await ctx.handshake();
      // Cases 1, 2 and 4 prioritise the stream about to be opened; 3 and 5 an idle stream above it.
      ctx.peer.sendPriority(prioStream, dependsOn, weight, exclusive);
      ctx.peer.sendHeaders(1, ctx.request(), { endStream: true });
      return headersFrame(ctx, 1);
    })),

  serverCase('generic/3.4/1', 'RFC 9113 §6.4', 'RST_STREAM', 'Sends a RST_STREAM frame',
    'the frame is accepted (PING answered, or the connection closes)', async (ctx) => {
      await ctx.handshake();
      ctx.peer.sendHeaders(1, ctx.request());
      ctx.peer.sendRstStream(1, H2Code.CANCEL);
      const data = pingData('rst');
      ctx.peer.sendPing(data);
      return pingAck(ctx, data, true);
    }),

  serverCase('generic/3.5/1', 'RFC 9113 §6.5', 'SETTINGS', 'Sends a SETTINGS frame with every defined setting', 'SETTINGS ACK', async (ctx) => {
    await ctx.handshake();
    ctx.peer.sendSettings([
      [Setting.HEADER_TABLE_SIZE, 4096], [Setting.ENABLE_PUSH, 1], [Setting.MAX_CONCURRENT_STREAMS, 100],
      [Setting.INITIAL_WINDOW_SIZE, 65_535], [Setting.MAX_FRAME_SIZE, 16_384], [Setting.MAX_HEADER_LIST_SIZE, 100],
    ]);
    return settingsAck(ctx);
  }),

  serverCase('generic/3.7/1', 'RFC 9113 §6.7', 'PING', 'Sends a PING frame', 'PING ACK with the same payload', async (ctx) => {
    await ctx.handshake();
    const data = pingData('h2-conf');
    ctx.peer.sendPing(data);
    return pingAck(ctx, data);
  }),

  serverCase('generic/3.8/1', 'RFC 9113 §6.8', 'GOAWAY', 'Sends a GOAWAY frame', 'the connection closes', async (ctx) => {
    await ctx.handshake();
    ctx.peer.sendGoaway(0, H2Code.NO_ERROR, 'conformance');
    return connectionClose(ctx);
  }),

  serverCase('generic/3.9/1', 'RFC 9113 §6.9', 'WINDOW_UPDATE', 'Sends a WINDOW_UPDATE frame with stream id 0', 'the frame is accepted (PING answered)', async (ctx) => {
    await ctx.handshake();
    ctx.peer.sendWindowUpdate(0, 1);
    const data = pingData('wu0');
    ctx.peer.sendPing(data);
    return pingAck(ctx, data);
  }),
  serverCase('generic/3.9/2', 'RFC 9113 §6.9', 'WINDOW_UPDATE', 'Sends a WINDOW_UPDATE frame with stream id 1', 'a response on stream 1', async (ctx) => {
    await ctx.handshake();
    ctx.peer.sendHeaders(1, ctx.request(), { endStream: true });
    ctx.peer.sendWindowUpdate(1, 1);
    return headersFrame(ctx, 1);
  }),

  serverCase('generic/3.10/1', 'RFC 9113 §6.10', 'CONTINUATION', 'Sends a CONTINUATION frame', 'a response on stream 1', async (ctx) => {
    await ctx.handshake();
    const block = encode(ctx.request());
    ctx.peer.sendHeaders(1, block.subarray(0, 5), { endStream: true, endHeaders: false });
    ctx.peer.sendContinuation(1, block.subarray(5), true);
    return headersFrame(ctx, 1);
  }),
  serverCase('generic/3.10/2', 'RFC 9113 §6.10', 'CONTINUATION', 'Sends multiple CONTINUATION frames', 'a response on stream 1', async (ctx) => {
    await ctx.handshake();
    const block = encode(ctx.request());
    ctx.peer.sendHeaders(1, block.subarray(0, 5), { endStream: true, endHeaders: false });
    ctx.peer.sendContinuation(1, block.subarray(5, 10), false);
    ctx.peer.sendContinuation(1, block.subarray(10), true);
    return headersFrame(ctx, 1);
  }),

  serverCase('generic/4/1', 'RFC 9113 §8.1', 'message exchange', 'Sends a GET request', 'a response on stream 1', async (ctx) => {
    await ctx.handshake();
    ctx.peer.sendHeaders(1, ctx.request('GET'), { endStream: true });
    return headersFrame(ctx, 1);
  }),
  serverCase('generic/4/2', 'RFC 9113 §8.1', 'message exchange', 'Sends a HEAD request', 'a response on stream 1', async (ctx) => {
    await ctx.handshake();
    ctx.peer.sendHeaders(1, ctx.request('HEAD'), { endStream: true });
    return headersFrame(ctx, 1);
  }),
  serverCase('generic/4/3', 'RFC 9113 §8.1', 'message exchange', 'Sends a POST request', 'a response on stream 1', async (ctx) => {
    await ctx.handshake();
    ctx.peer.sendHeaders(1, ctx.request('POST'));
    ctx.peer.sendData(1, 'test', { endStream: true });
    return headersFrame(ctx, 1);
  }),
  serverCase('generic/4/4', 'RFC 9113 §8.1', 'message exchange', 'Sends a POST request with trailers', 'a response on stream 1', async (ctx) => {
    await ctx.handshake();
    ctx.peer.sendHeaders(1, [...ctx.request('POST'), ['trailer', 'x-test']]);
    ctx.peer.sendData(1, 'test');
    ctx.peer.sendHeaders(1, [['x-test', 'ok']], { endStream: true });
    return headersFrame(ctx, 1);
  }),

  // RFC 7541 representations appended to (or, for size updates, put before) the common request headers.
  hpackAccepted(1, 'RFC 7541 §6.1', 'Sends an indexed header field representation', 'ba'), // user-agent (static 58), empty value
  hpackAccepted(2, 'RFC 7541 §6.2.1', 'Sends a literal header field with incremental indexing - indexed name', '7a' + literal('h2spec')), // user-agent is static 58
  hpackAccepted(3, 'RFC 7541 §6.2.1', 'Sends a literal header field with incremental indexing - indexed name (with Huffman coding)', '7a' + huffmanLiteral('h2spec')),
  hpackAccepted(4, 'RFC 7541 §6.2.1', 'Sends a literal header field with incremental indexing - new name', '40' + literal('x-test') + literal('h2spec')),
  hpackAccepted(5, 'RFC 7541 §6.2.1', 'Sends a literal header field with incremental indexing - new name (with Huffman coding)', '40' + huffmanLiteral('x-test') + huffmanLiteral('h2spec')),
  hpackAccepted(6, 'RFC 7541 §6.2.2', 'Sends a literal header field without indexing - indexed name', '0f2b' + literal('h2spec')),
  hpackAccepted(7, 'RFC 7541 §6.2.2', 'Sends a literal header field without indexing - indexed name (with Huffman coding)', '0f2b' + huffmanLiteral('h2spec')),
  hpackAccepted(8, 'RFC 7541 §6.2.2', 'Sends a literal header field without indexing - new name', '00' + literal('x-test') + literal('h2spec')),
  hpackAccepted(9, 'RFC 7541 §6.2.2', 'Sends a literal header field without indexing - new name (with Huffman coding)', '00' + huffmanLiteral('x-test') + huffmanLiteral('h2spec')),
  hpackAccepted(10, 'RFC 7541 §6.2.3', 'Sends a literal header field never indexed - indexed name', '1f2b' + literal('h2spec')),
  hpackAccepted(11, 'RFC 7541 §6.2.3', 'Sends a literal header field never indexed - indexed name (with Huffman coding)', '1f2b' + huffmanLiteral('h2spec')),
  hpackAccepted(12, 'RFC 7541 §6.2.3', 'Sends a literal header field never indexed - new name', '10' + literal('x-test') + literal('h2spec')),
  hpackAccepted(13, 'RFC 7541 §6.2.3', 'Sends a literal header field never indexed - new name (with Huffman coding)', '10' + huffmanLiteral('x-test') + huffmanLiteral('h2spec')),
  hpackAccepted(14, 'RFC 7541 §6.3', 'Sends a dynamic table size update (to 0) at the start of a block', '20', true),
  hpackAccepted(15, 'RFC 7541 §4.2', 'Sends two dynamic table size updates (0, then 4096) at the start of a block', '203fe11f', true),
];

/** A plain (non-Huffman) string literal: length, then the octets. */
function literal(s: string): string {
  return Buffer.concat([Buffer.from([s.length]), Buffer.from(s, 'latin1')]).toString('hex');
}

/** A Huffman-coded string literal, made by the production encoder (which Huffman-codes when that is shorter). */
function huffmanLiteral(s: string): string {
  const block = encode([[s, '']]); // 0x00, the name as a string literal, then an empty value
  if ((block[1]! & 0x80) === 0) throw new Error(`BUG: "${s}" is not shorter Huffman-coded; pick another test string`);
  return block.subarray(1, 2 + (block[1]! & 0x7f)).toString('hex');
}
