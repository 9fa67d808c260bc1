/**
 * Server role, "http2" group: each MUST of RFC 9113 that a server can be tested for from the wire, in h2spec's
 * numbering (RFC 7540 section numbers; `rfc` names the RFC 9113 section that now holds the rule).
 */
import { Flag, FrameType, H2Code, Setting } from '../../src/hbone/h2/frames.js';
import { encodeHeaders } from '../../src/hbone/h2/hpack.js';
import {
  connectionClose,
  connectionError,
  dataFrame,
  dummyHeaders,
  headersFrame,
  pingAck,
  settingsAck,
  streamEnded,
  streamError,
  watch,
  type CaseContext,
  type ServerCase,
  type Verdict,
} from './case.js';
import { adapted, pingData, serverCase } from './define.js';

const { PROTOCOL_ERROR, FRAME_SIZE_ERROR, STREAM_CLOSED, FLOW_CONTROL_ERROR, COMPRESSION_ERROR, REFUSED_STREAM, CANCEL } = H2Code;
const NEEDS_DATA = 'the suite reads a GET response body; a CONNECT-only server sends none, so the stream is a CONNECT to an upstream that writes first';

/** Sends what `send` writes after the handshake, then expects a connection error with `codes`. */
function connErr(id: string, rfc: string, area: ServerCase['area'], description: string, codes: number[], send: (ctx: CaseContext) => void | Promise<void>): ServerCase {
  return serverCase(id, rfc, area, description, `connection error ${codes.map(codeText).join(' or ')}`, async (ctx) => {
    await ctx.handshake();
    await send(ctx);
    return connectionError(ctx, codes);
  });
}

/** Sends what `send` writes after the handshake, then expects a stream error (on stream 1) with `codes`. */
function streamErr(id: string, rfc: string, area: ServerCase['area'], description: string, codes: number[], send: (ctx: CaseContext) => void | Promise<void | Verdict>): ServerCase {
  return serverCase(id, rfc, area, description, `stream error ${codes.map(codeText).join(' or ')}`, async (ctx) => {
    await ctx.handshake();
    const early = await send(ctx);
    if (early !== undefined && !early.pass) return early;
    return streamError(ctx, codes);
  });
}

function codeText(code: number): string {
  return Object.entries(H2Code).find(([, c]) => c === code)?.[0] ?? `0x${code.toString(16)}`;
}

/** A malformed request (RFC 9113 §8.1.1): stream error PROTOCOL_ERROR. */
function malformed(id: string, rfc: string, area: ServerCase['area'], description: string, headers: (ctx: CaseContext) => Array<[string, string]>): ServerCase {
  return streamErr(id, rfc, area, description, [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendHeaders(1, headers(ctx), { endStream: true });
  });
}

const UNKNOWN_FRAME = Buffer.concat([Buffer.from('000008160000000000', 'hex'), Buffer.alloc(8)]); // type 0x16, 8 bytes, stream 0

export const HTTP2_CASES: ServerCase[] = [
  // ---- 3.5 connection preface ----
  serverCase('http2/3.5/1', 'RFC 9113 §3.4', 'preface', 'Sends the client connection preface', 'a SETTINGS frame (not an ACK) from the server', async (ctx) => {
    ctx.peer.sendPreface();
    ctx.peer.sendSettings([[Setting.INITIAL_WINDOW_SIZE, 65_535]]);
    return watch(ctx, 'SETTINGS', (e) => {
      if (e.kind === 'closed') return { pass: false, detail: `connection closed (${e.how})` };
      return e.frame.type === FrameType.SETTINGS && (e.frame.flags & Flag.ACK) === 0 ? { pass: true, detail: 'SETTINGS' } : undefined;
    });
  }),
  serverCase('http2/3.5/2', 'RFC 9113 §3.4', 'preface', 'Sends an invalid connection preface', 'the connection closes', async (ctx) => {
    ctx.peer.sendRaw(Buffer.from('INVALID CONNECTION PREFACE\r\n\r\n'));
    return connectionClose(ctx);
  }),

  // ---- 4.1 frame format ----
  serverCase('http2/4.1/1', 'RFC 9113 §4.1', 'frame format', 'Sends a frame of unknown type', 'the frame is ignored (PING answered)', async (ctx) => {
    await ctx.handshake();
    ctx.peer.sendRaw(UNKNOWN_FRAME);
    const data = pingData('unknown');
    ctx.peer.sendPing(data);
    return pingAck(ctx, data);
  }),
  serverCase('http2/4.1/2', 'RFC 9113 §4.1', 'frame format', 'Sends a frame with undefined flags', 'the flags are ignored (PING answered)', async (ctx) => {
    await ctx.handshake();
    const data = pingData('flags');
    ctx.peer.send(FrameType.PING, 0x16, 0, data); // 0x16: no ACK bit, three undefined ones
    return pingAck(ctx, data);
  }),
  serverCase('http2/4.1/3', 'RFC 9113 §4.1', 'frame format', 'Sends a frame with the reserved bit of the stream id set', 'the bit is ignored (PING answered)', async (ctx) => {
    await ctx.handshake();
    const data = pingData('reserved');
    const f = Buffer.concat([Buffer.from('000008061680000000', 'hex'), data]);
    ctx.peer.sendRaw(f);
    return pingAck(ctx, data);
  }),

  // ---- 4.2 frame size ----
  serverCase('http2/4.2/1', 'RFC 9113 §4.2', 'frame size', 'Sends a DATA frame of 2^14 octets', 'a response on stream 1', async (ctx) => {
    await ctx.handshake();
    ctx.peer.sendHeaders(1, ctx.request('POST'));
    ctx.peer.sendData(1, Buffer.alloc(ctx.maxFrameSize(), 'x'), { endStream: true });
    return headersFrame(ctx, 1);
  }),
  streamErr('http2/4.2/2', 'RFC 9113 §4.2', 'frame size', 'Sends a DATA frame larger than SETTINGS_MAX_FRAME_SIZE', [FRAME_SIZE_ERROR], (ctx) => {
    ctx.peer.sendHeaders(1, ctx.request('POST'));
    ctx.peer.sendData(1, Buffer.alloc(ctx.maxFrameSize() + 1, 'x'), { endStream: true });
  }),
  connErr('http2/4.2/3', 'RFC 9113 §4.2', 'frame size', 'Sends a HEADERS frame larger than SETTINGS_MAX_FRAME_SIZE', [FRAME_SIZE_ERROR], (ctx) => {
    const headers = ctx.request();
    let block = encodeHeaders(headers);
    for (let n = 1; block.length <= ctx.maxFrameSize(); n++) block = encodeHeaders([...headers, ...dummyHeaders(n, 4000)]);
    ctx.peer.sendHeaders(1, block, { endStream: true });
  }),

  // ---- 4.3 header compression ----
  connErr('http2/4.3/1', 'RFC 9113 §4.3', 'header blocks', 'Sends an invalid header block fragment', [COMPRESSION_ERROR], (ctx) => {
    // A literal with incremental indexing whose name and value are missing.
    ctx.peer.send(FrameType.HEADERS, Flag.END_STREAM | Flag.END_HEADERS, 1, Buffer.from([0x40]));
  }),
  connErr('http2/4.3/2', 'RFC 9113 §4.3', 'header blocks', 'Sends a PRIORITY frame in the middle of a header block', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendHeaders(1, ctx.request(), { endHeaders: false });
    ctx.peer.sendPriority(1, 0, 256);
    ctx.peer.sendContinuation(1, dummyHeaders(1), true);
  }),
  connErr('http2/4.3/3', 'RFC 9113 §4.3', 'header blocks', 'Sends a HEADERS frame for another stream in the middle of a header block', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendHeaders(1, ctx.request(), { endHeaders: false });
    ctx.peer.sendHeaders(3, ctx.request(), { endStream: true });
    ctx.peer.sendContinuation(1, dummyHeaders(1), true);
  }),

  // ---- 5.1 stream states ----
  connErr('http2/5.1/1', 'RFC 9113 §5.1', 'stream states', 'idle: Sends a DATA frame', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendData(1, 'test', { endStream: true });
  }),
  connErr('http2/5.1/2', 'RFC 9113 §5.1', 'stream states', 'idle: Sends a RST_STREAM frame', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendRstStream(1, CANCEL);
  }),
  connErr('http2/5.1/3', 'RFC 9113 §5.1', 'stream states', 'idle: Sends a WINDOW_UPDATE frame', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendWindowUpdate(1, 100);
  }),
  connErr('http2/5.1/4', 'RFC 9113 §5.1', 'stream states', 'idle: Sends a CONTINUATION frame', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendContinuation(1, ctx.request(), true);
  }),
  streamErr('http2/5.1/5', 'RFC 9113 §5.1', 'stream states', 'half closed (remote): Sends a DATA frame', [STREAM_CLOSED], (ctx) => {
    ctx.peer.sendHeaders(1, ctx.request(), { endStream: true });
    ctx.peer.sendData(1, 'test', { endStream: true });
  }),
  streamErr('http2/5.1/6', 'RFC 9113 §5.1', 'stream states', 'half closed (remote): Sends a HEADERS frame', [STREAM_CLOSED], (ctx) => {
    ctx.peer.sendHeaders(1, ctx.request(), { endStream: true });
    ctx.peer.sendHeaders(1, ctx.request(), { endStream: true });
  }),
  streamErr('http2/5.1/7', 'RFC 9113 §5.1', 'stream states', 'half closed (remote): Sends a CONTINUATION frame', [STREAM_CLOSED, PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendHeaders(1, ctx.request(), { endStream: true });
    ctx.peer.sendContinuation(1, ctx.request(), true);
  }),
  streamErr('http2/5.1/8', 'RFC 9113 §5.1', 'stream states', 'closed: Sends a DATA frame after sending RST_STREAM', [STREAM_CLOSED], (ctx) => {
    ctx.peer.sendHeaders(1, ctx.request());
    ctx.peer.sendRstStream(1, CANCEL);
    ctx.peer.sendData(1, 'test', { endStream: true });
  }),
  streamErr('http2/5.1/9', 'RFC 9113 §5.1', 'stream states', 'closed: Sends a HEADERS frame after sending RST_STREAM', [STREAM_CLOSED], (ctx) => {
    ctx.peer.sendHeaders(1, ctx.request());
    ctx.peer.sendRstStream(1, CANCEL);
    ctx.peer.sendHeaders(1, ctx.request(), { endStream: true });
  }),
  streamErr('http2/5.1/10', 'RFC 9113 §5.1', 'stream states', 'closed: Sends a CONTINUATION frame after sending RST_STREAM', [STREAM_CLOSED, PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendHeaders(1, ctx.request());
    ctx.peer.sendRstStream(1, CANCEL);
    ctx.peer.sendContinuation(1, dummyHeaders(1), true);
  }),
  serverCase('http2/5.1/11', 'RFC 9113 §5.1', 'stream states', 'closed: Sends a DATA frame', 'connection error STREAM_CLOSED', async (ctx) => {
    await ctx.handshake();
    ctx.peer.sendHeaders(1, ctx.request(), { endStream: true });
    const ended = await streamEnded(ctx, 1);
    if (!ended.pass) return ended;
    ctx.peer.sendData(1, 'test', { endStream: true });
    return connectionError(ctx, [STREAM_CLOSED]);
  }),
  serverCase('http2/5.1/12', 'RFC 9113 §5.1', 'stream states', 'closed: Sends a HEADERS frame', 'connection error STREAM_CLOSED', async (ctx) => {
    await ctx.handshake();
    ctx.peer.sendHeaders(1, ctx.request(), { endStream: true });
    const ended = await streamEnded(ctx, 1);
    if (!ended.pass) return ended;
    ctx.peer.sendHeaders(1, ctx.request(), { endStream: true });
    return connectionError(ctx, [STREAM_CLOSED]);
  }),
  serverCase('http2/5.1/13', 'RFC 9113 §5.1', 'stream states', 'closed: Sends a CONTINUATION frame', 'connection error STREAM_CLOSED or PROTOCOL_ERROR', async (ctx) => {
    await ctx.handshake();
    ctx.peer.sendHeaders(1, ctx.request(), { endStream: true });
    const ended = await streamEnded(ctx, 1);
    if (!ended.pass) return ended;
    ctx.peer.sendContinuation(1, dummyHeaders(1), true);
    return connectionError(ctx, [STREAM_CLOSED, PROTOCOL_ERROR]);
  }),

  // ---- 5.1.1 stream identifiers ----
  connErr('http2/5.1.1/1', 'RFC 9113 §5.1.1', 'stream ids', 'Sends an even-numbered stream identifier', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendHeaders(2, ctx.request(), { endStream: true });
  }),
  connErr('http2/5.1.1/2', 'RFC 9113 §5.1.1', 'stream ids', 'Sends a stream identifier numerically smaller than a previous one', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendHeaders(5, ctx.request(), { endStream: true });
    ctx.peer.sendHeaders(3, ctx.request(), { endStream: true });
  }),
  streamErr('http2/5.1.1/3', 'RFC 9113 §5.1', 'stream ids', 'Sends a second HEADERS frame on a half-closed (remote) stream 5', [STREAM_CLOSED], (ctx) => {
    ctx.peer.sendHeaders(5, ctx.request(), { endStream: true });
    ctx.peer.sendHeaders(5, ctx.request(), { endStream: true });
  }),

  // ---- 5.1.2 stream concurrency ----
  serverCase('http2/5.1.2/1', 'RFC 9113 §5.1.2', 'concurrency', 'Opens one stream more than the advertised SETTINGS_MAX_CONCURRENT_STREAMS',
    'stream error PROTOCOL_ERROR or REFUSED_STREAM', async (ctx) => {
      await ctx.handshake();
      const max = ctx.serverSettings.get(Setting.MAX_CONCURRENT_STREAMS);
      if (max === undefined) return { pass: true, skip: true, detail: 'the server advertises no SETTINGS_MAX_CONCURRENT_STREAMS' };
      if (max > 1000) return { pass: true, skip: true, detail: `SETTINGS_MAX_CONCURRENT_STREAMS ${max} is too many streams to open here` };
      ctx.peer.sendSettings([[Setting.INITIAL_WINDOW_SIZE, 0]]);
      for (let i = 0; i <= max; i++) ctx.peer.sendHeaders(1 + 2 * i, ctx.connect());
      return streamError(ctx, [PROTOCOL_ERROR, REFUSED_STREAM]);
    }, adapted('the suite keeps GET streams open by withholding window for their bodies; a CONNECT-only server answers GET at once with no body, so the streams are CONNECT tunnels, open until we end them')),

  // ---- 5.3.1 stream dependencies ----
  streamErr('http2/5.3.1/1', 'RFC 9113 §5.3.1', 'PRIORITY', 'Sends a HEADERS frame that depends on itself', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendHeaders(1, ctx.request(), { endStream: true, priority: { dependsOn: 1, weight: 256 } });
  }),
  streamErr('http2/5.3.1/2', 'RFC 9113 §5.3.1', 'PRIORITY', 'Sends a PRIORITY frame that depends on itself', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendPriority(1, 1, 256);
  }),

  // ---- 5.4.1 connection error handling ----
  serverCase('http2/5.4.1/1', 'RFC 9113 §5.4.1', 'error handling', 'Sends an invalid PING frame (stream 3) to cause a connection error', 'the connection closes', async (ctx) => {
    await ctx.handshake();
    ctx.peer.send(FrameType.PING, 0, 3, Buffer.alloc(8));
    return connectionClose(ctx);
  }),
  serverCase('http2/5.4.1/2', 'RFC 9113 §5.4.1', 'error handling', 'Sends an invalid PING frame (stream 3) to receive GOAWAY', 'a GOAWAY before the close (SHOULD)', async (ctx) => {
    await ctx.handshake();
    ctx.peer.send(FrameType.PING, 0, 3, Buffer.alloc(8));
    return watch(ctx, 'GOAWAY', (e) => {
      if (e.kind === 'closed') return { pass: false, detail: `connection closed (${e.how}) without GOAWAY` };
      return e.frame.type === FrameType.GOAWAY ? { pass: true, detail: 'GOAWAY' } : undefined;
    });
  }),

  // ---- 5.5 extending HTTP/2 ----
  serverCase('http2/5.5/1', 'RFC 9113 §5.5', 'extensions', 'Sends an unknown extension frame', 'the frame is ignored (PING answered)', async (ctx) => {
    await ctx.handshake();
    ctx.peer.sendRaw(UNKNOWN_FRAME);
    const data = pingData('ext');
    ctx.peer.sendPing(data);
    return pingAck(ctx, data);
  }),
  connErr('http2/5.5/2', 'RFC 9113 §5.5', 'extensions', 'Sends an unknown extension frame in the middle of a header block', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendHeaders(1, ctx.request(), { endStream: true, endHeaders: false });
    ctx.peer.sendRaw(UNKNOWN_FRAME);
  }),

  // ---- 6.1 DATA ----
  connErr('http2/6.1/1', 'RFC 9113 §6.1', 'DATA', 'Sends a DATA frame with stream id 0', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendData(0, 'test', { endStream: true });
  }),
  streamErr('http2/6.1/2', 'RFC 9113 §6.1', 'DATA', 'Sends a DATA frame on a stream that is not "open" or "half-closed (local)"', [STREAM_CLOSED], (ctx) => {
    ctx.peer.sendHeaders(1, ctx.request('POST'), { endStream: true });
    ctx.peer.sendData(1, 'test', { endStream: true });
  }),
  connErr('http2/6.1/3', 'RFC 9113 §6.1', 'DATA', 'Sends a DATA frame with a pad length not below the frame length', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendHeaders(1, [...ctx.request('POST'), ['content-length', '4']]);
    ctx.peer.send(FrameType.DATA, Flag.END_STREAM | Flag.PADDED, 1, Buffer.from([6, 0x54, 0x65, 0x73, 0x74])); // 5 bytes, pad length 6
  }),

  // ---- 6.2 HEADERS ----
  connErr('http2/6.2/1', 'RFC 9113 §6.2', 'HEADERS', 'Sends a HEADERS frame without END_HEADERS, then a PRIORITY frame', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendHeaders(1, ctx.request(), { endHeaders: false });
    ctx.peer.sendPriority(1, 0, 256);
    ctx.peer.sendContinuation(1, dummyHeaders(1), true);
  }),
  connErr('http2/6.2/2', 'RFC 9113 §6.2', 'HEADERS', 'Sends a HEADERS frame to another stream while a header block is open', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendHeaders(1, ctx.request(), { endHeaders: false });
    ctx.peer.sendHeaders(3, ctx.request(), { endStream: true });
    ctx.peer.sendContinuation(1, dummyHeaders(1), true);
  }),
  connErr('http2/6.2/3', 'RFC 9113 §6.2', 'HEADERS', 'Sends a HEADERS frame with stream id 0', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendHeaders(0, ctx.request(), { endStream: true });
  }),
  streamErr('http2/6.2/4', 'RFC 9113 §6.2', 'HEADERS', 'Sends a HEADERS frame with a pad length longer than the frame', [PROTOCOL_ERROR], (ctx) => {
    const block = encodeHeaders(ctx.request());
    // PADDED with a pad length of block+2 in a frame of block+1 octets.
    ctx.peer.send(FrameType.HEADERS, Flag.END_STREAM | Flag.END_HEADERS | Flag.PADDED, 1, Buffer.concat([Buffer.from([block.length + 2]), block]));
  }),

  // ---- 6.3 PRIORITY ----
  connErr('http2/6.3/1', 'RFC 9113 §6.3', 'PRIORITY', 'Sends a PRIORITY frame with stream id 0', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendPriority(0, 0, 256);
  }),
  streamErr('http2/6.3/2', 'RFC 9113 §6.3', 'PRIORITY', 'Sends a PRIORITY frame with a length other than 5 octets', [FRAME_SIZE_ERROR], (ctx) => {
    ctx.peer.sendHeaders(1, ctx.request(), { endStream: true });
    ctx.peer.send(FrameType.PRIORITY, 0, 1, Buffer.from('80000001', 'hex'));
  }),
  serverCase('http2/6.3/3', 'RFC 9113 §6.3', 'PRIORITY', 'Sends a PRIORITY frame for an idle stream, then HEADERS for a lower stream id', 'a response on stream 1', async (ctx) => {
    await ctx.handshake();
    ctx.peer.sendPriority(3, 0, 256);
    ctx.peer.sendHeaders(1, ctx.request(), { endStream: true });
    return headersFrame(ctx, 1);
  }),

  // ---- 6.4 RST_STREAM ----
  connErr('http2/6.4/1', 'RFC 9113 §6.4', 'RST_STREAM', 'Sends a RST_STREAM frame with stream id 0', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendRstStream(0, CANCEL);
  }),
  connErr('http2/6.4/2', 'RFC 9113 §6.4', 'RST_STREAM', 'Sends a RST_STREAM frame on an idle stream', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendRstStream(1, CANCEL);
  }),
  streamErr('http2/6.4/3', 'RFC 9113 §6.4', 'RST_STREAM', 'Sends a RST_STREAM frame with a length other than 4 octets', [FRAME_SIZE_ERROR], (ctx) => {
    ctx.peer.sendHeaders(1, ctx.request(), { endStream: true });
    ctx.peer.send(FrameType.RST_STREAM, 0, 1, Buffer.alloc(3));
  }),

  // ---- 6.5 SETTINGS ----
  connErr('http2/6.5/1', 'RFC 9113 §6.5', 'SETTINGS', 'Sends a SETTINGS frame with ACK and a payload', [FRAME_SIZE_ERROR], (ctx) => {
    ctx.peer.send(FrameType.SETTINGS, Flag.ACK, 0, Buffer.alloc(1));
  }),
  connErr('http2/6.5/2', 'RFC 9113 §6.5', 'SETTINGS', 'Sends a SETTINGS frame on stream 1', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.send(FrameType.SETTINGS, 0, 1, Buffer.from('000300000064', 'hex'));
  }),
  connErr('http2/6.5/3', 'RFC 9113 §6.5', 'SETTINGS', 'Sends a SETTINGS frame whose length is not a multiple of 6', [FRAME_SIZE_ERROR], (ctx) => {
    ctx.peer.send(FrameType.SETTINGS, 0, 0, Buffer.from('0003000000640002', 'hex'));
  }),

  // ---- 6.5.2 defined settings ----
  connErr('http2/6.5.2/1', 'RFC 9113 §6.5.2', 'SETTINGS', 'SETTINGS_ENABLE_PUSH (0x2): Sends a value other than 0 or 1', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendSettings([[Setting.ENABLE_PUSH, 2]]);
  }),
  connErr('http2/6.5.2/2', 'RFC 9113 §6.5.2', 'SETTINGS', 'SETTINGS_INITIAL_WINDOW_SIZE (0x4): Sends a value above 2^31-1', [FLOW_CONTROL_ERROR], (ctx) => {
    ctx.peer.sendSettings([[Setting.INITIAL_WINDOW_SIZE, 2 ** 31]]);
  }),
  connErr('http2/6.5.2/3', 'RFC 9113 §6.5.2', 'SETTINGS', 'SETTINGS_MAX_FRAME_SIZE (0x5): Sends a value below 2^14', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendSettings([[Setting.MAX_FRAME_SIZE, 16_383]]);
  }),
  connErr('http2/6.5.2/4', 'RFC 9113 §6.5.2', 'SETTINGS', 'SETTINGS_MAX_FRAME_SIZE (0x5): Sends a value above 2^24-1', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendSettings([[Setting.MAX_FRAME_SIZE, 2 ** 24]]);
  }),
  serverCase('http2/6.5.2/5', 'RFC 9113 §6.5.2', 'SETTINGS', 'Sends a SETTINGS frame with an unknown identifier', 'the setting is ignored (PING answered)', async (ctx) => {
    await ctx.handshake();
    ctx.peer.sendSettings([[0xff, 1]]);
    const data = pingData('unk-set');
    ctx.peer.sendPing(data);
    return pingAck(ctx, data);
  }),

  // ---- 6.5.3 settings synchronization ----
  serverCase('http2/6.5.3/1', 'RFC 9113 §6.5.3', 'SETTINGS', 'Sends multiple values of SETTINGS_INITIAL_WINDOW_SIZE in one frame',
    'they apply in order: the first DATA carries 1 octet', async (ctx) => {
      await ctx.handshake();
      ctx.peer.sendSettings([[Setting.INITIAL_WINDOW_SIZE, 100], [Setting.INITIAL_WINDOW_SIZE, 1]]);
      const ack = await settingsAck(ctx);
      if (!ack.pass) return ack;
      ctx.peer.sendHeaders(1, ctx.connect());
      return dataFrame(ctx, 1, 1);
    }, adapted(NEEDS_DATA)),
  serverCase('http2/6.5.3/2', 'RFC 9113 §6.5.3', 'SETTINGS', 'Sends a SETTINGS frame without ACK', 'SETTINGS ACK at once', async (ctx) => {
    await ctx.handshake();
    ctx.peer.sendSettings([[Setting.ENABLE_PUSH, 0]]);
    return settingsAck(ctx);
  }),

  // ---- 6.7 PING ----
  serverCase('http2/6.7/1', 'RFC 9113 §6.7', 'PING', 'Sends a PING frame', 'PING ACK with the same payload', async (ctx) => {
    await ctx.handshake();
    const data = pingData('h2-conf');
    ctx.peer.sendPing(data);
    return pingAck(ctx, data);
  }),
  serverCase('http2/6.7/2', 'RFC 9113 §6.7', 'PING', 'Sends a PING frame with ACK', 'no answer to the ACK (only to the PING after it)', async (ctx) => {
    await ctx.handshake();
    const unexpected = pingData('invalid');
    const expected = pingData('h2-conf');
    ctx.peer.sendPing(unexpected, true);
    ctx.peer.sendPing(expected);
    return watch(ctx, 'PING ACK', (e) => {
      if (e.kind === 'closed') return { pass: false, detail: `connection closed (${e.how})` };
      if (e.frame.type !== FrameType.PING) return undefined;
      if (e.frame.payload.equals(unexpected)) return { pass: false, detail: 'the server answered a PING ACK' };
      return (e.frame.flags & Flag.ACK) !== 0 && e.frame.payload.equals(expected) ? { pass: true, detail: 'only the PING was answered' } : undefined;
    });
  }),
  connErr('http2/6.7/3', 'RFC 9113 §6.7', 'PING', 'Sends a PING frame with a stream id other than 0', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.send(FrameType.PING, 0, 1, Buffer.alloc(8));
  }),
  connErr('http2/6.7/4', 'RFC 9113 §6.7', 'PING', 'Sends a PING frame with a length other than 8', [FRAME_SIZE_ERROR], (ctx) => {
    ctx.peer.send(FrameType.PING, 0, 0, Buffer.alloc(6));
  }),

  // ---- 6.8 GOAWAY ----
  connErr('http2/6.8/1', 'RFC 9113 §6.8', 'GOAWAY', 'Sends a GOAWAY frame with a stream id other than 0', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.send(FrameType.GOAWAY, 0, 1, Buffer.alloc(8));
  }),

  // ---- 6.9 WINDOW_UPDATE ----
  connErr('http2/6.9/1', 'RFC 9113 §6.9', 'WINDOW_UPDATE', 'Sends a WINDOW_UPDATE frame with an increment of 0', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendWindowUpdate(0, 0);
  }),
  streamErr('http2/6.9/2', 'RFC 9113 §6.9', 'WINDOW_UPDATE', 'Sends a WINDOW_UPDATE frame with an increment of 0 on a stream', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendHeaders(1, ctx.request());
    ctx.peer.sendWindowUpdate(1, 0);
  }),
  connErr('http2/6.9/3', 'RFC 9113 §6.9', 'WINDOW_UPDATE', 'Sends a WINDOW_UPDATE frame with a length other than 4 octets', [FRAME_SIZE_ERROR], (ctx) => {
    ctx.peer.send(FrameType.WINDOW_UPDATE, 0, 0, Buffer.from([0, 0, 1]));
  }),

  // ---- 6.9.1 the flow-control window ----
  serverCase('http2/6.9.1/1', 'RFC 9113 §6.9.1', 'flow control', 'Sets the initial window to 1 and opens a stream', 'DATA of 1 octet (never more than the window)', async (ctx) => {
    await ctx.handshake();
    ctx.peer.sendSettings([[Setting.INITIAL_WINDOW_SIZE, 1]]);
    const ack = await settingsAck(ctx);
    if (!ack.pass) return ack;
    ctx.peer.sendHeaders(1, ctx.connect());
    return dataFrame(ctx, 1, 1);
  }, adapted(NEEDS_DATA)),
  serverCase('http2/6.9.1/2', 'RFC 9113 §6.9.1', 'flow control', 'Sends WINDOW_UPDATE frames that take the connection window above 2^31-1',
    'GOAWAY FLOW_CONTROL_ERROR', async (ctx) => {
      await ctx.handshake();
      ctx.peer.sendWindowUpdate(0, 2 ** 31 - 1);
      ctx.peer.sendWindowUpdate(0, 2 ** 31 - 1);
      return goawayWith(ctx, FLOW_CONTROL_ERROR);
    }),
  serverCase('http2/6.9.1/3', 'RFC 9113 §6.9.1', 'flow control', 'Sends WINDOW_UPDATE frames that take a stream window above 2^31-1',
    'RST_STREAM FLOW_CONTROL_ERROR on the stream', async (ctx) => {
      await ctx.handshake();
      ctx.peer.sendHeaders(1, ctx.request());
      ctx.peer.sendWindowUpdate(1, 2 ** 31 - 1);
      ctx.peer.sendWindowUpdate(1, 2 ** 31 - 1);
      return watch(ctx, 'RST_STREAM FLOW_CONTROL_ERROR on stream 1', (e) => {
        if (e.kind === 'closed') return { pass: false, detail: `connection closed (${e.how}) without RST_STREAM` };
        const f = e.frame;
        if (f.type === FrameType.GOAWAY) return { pass: false, detail: `GOAWAY instead of RST_STREAM FLOW_CONTROL_ERROR` };
        if (f.type !== FrameType.RST_STREAM || f.streamId !== 1) return undefined;
        const code = f.payload.readUInt32BE(0);
        return { pass: code === FLOW_CONTROL_ERROR, detail: `RST_STREAM(${codeText(code)})` };
      });
    }),

  // ---- 6.9.2 initial flow-control window size ----
  serverCase('http2/6.9.2/1', 'RFC 9113 §6.9.2', 'flow control', 'Changes SETTINGS_INITIAL_WINDOW_SIZE after opening a stream',
    'the open stream\'s window follows: DATA of 1 octet', async (ctx) => {
      await ctx.handshake();
      ctx.peer.sendSettings([[Setting.INITIAL_WINDOW_SIZE, 0]]);
      const ack = await settingsAck(ctx);
      if (!ack.pass) return ack;
      ctx.peer.sendHeaders(1, ctx.connect());
      ctx.peer.sendSettings([[Setting.INITIAL_WINDOW_SIZE, 1]]);
      const ack2 = await settingsAck(ctx);
      if (!ack2.pass) return ack2;
      return dataFrame(ctx, 1, 1);
    }, adapted(NEEDS_DATA)),
  serverCase('http2/6.9.2/2', 'RFC 9113 §6.9.2', 'flow control', 'Sends SETTINGS that make a stream window negative',
    'the negative window is tracked: after +2 only 1 octet flows', async (ctx) => {
      await ctx.handshake();
      ctx.peer.sendSettings([[Setting.INITIAL_WINDOW_SIZE, 3]]);
      const ack = await settingsAck(ctx);
      if (!ack.pass) return ack;
      ctx.peer.sendHeaders(1, ctx.connect());
      const first = await dataFrame(ctx, 1, 3);
      if (!first.pass) return first;
      ctx.peer.sendSettings([[Setting.INITIAL_WINDOW_SIZE, 2]]);
      const ack2 = await settingsAck(ctx);
      if (!ack2.pass) return ack2;
      ctx.peer.sendWindowUpdate(1, 2);
      return dataFrame(ctx, 1, 1);
    }, adapted(NEEDS_DATA)),
  connErr('http2/6.9.2/3', 'RFC 9113 §6.9.2', 'flow control', 'Sends SETTINGS_INITIAL_WINDOW_SIZE of 2^31', [FLOW_CONTROL_ERROR], (ctx) => {
    ctx.peer.send(FrameType.SETTINGS, 0, 0, Buffer.from('000480000000', 'hex'));
  }),

  // ---- 6.10 CONTINUATION ----
  serverCase('http2/6.10/1', 'RFC 9113 §6.10', 'CONTINUATION', 'Sends multiple CONTINUATION frames after a HEADERS frame', 'a response on stream 1', async (ctx) => {
    await ctx.handshake();
    ctx.peer.sendHeaders(1, ctx.request(), { endStream: true, endHeaders: false });
    ctx.peer.sendContinuation(1, dummyHeaders(1), false);
    ctx.peer.sendContinuation(1, dummyHeaders(1), true);
    return headersFrame(ctx, 1);
  }),
  connErr('http2/6.10/2', 'RFC 9113 §6.10', 'CONTINUATION', 'Sends a CONTINUATION frame followed by a frame other than CONTINUATION', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendHeaders(1, ctx.request('POST'), { endHeaders: false });
    ctx.peer.sendContinuation(1, dummyHeaders(1), false);
    ctx.peer.sendData(1, 'test', { endStream: true });
  }),
  connErr('http2/6.10/3', 'RFC 9113 §6.10', 'CONTINUATION', 'Sends a CONTINUATION frame with stream id 0', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendHeaders(1, ctx.request(), { endStream: true, endHeaders: false });
    ctx.peer.sendContinuation(0, dummyHeaders(1), true);
  }),
  connErr('http2/6.10/4', 'RFC 9113 §6.10', 'CONTINUATION', 'Sends a CONTINUATION frame after a HEADERS frame with END_HEADERS', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendHeaders(1, ctx.request(), { endStream: true });
    ctx.peer.sendContinuation(1, dummyHeaders(1), true);
  }),
  connErr('http2/6.10/5', 'RFC 9113 §6.10', 'CONTINUATION', 'Sends a CONTINUATION frame after a CONTINUATION frame with END_HEADERS', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendHeaders(1, ctx.request(), { endStream: true, endHeaders: false });
    ctx.peer.sendContinuation(1, dummyHeaders(1), true);
    ctx.peer.sendContinuation(1, dummyHeaders(1), true);
  }),
  connErr('http2/6.10/6', 'RFC 9113 §6.10', 'CONTINUATION', 'Sends a CONTINUATION frame after a DATA frame', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendHeaders(1, ctx.request('POST'));
    ctx.peer.sendData(1, 'test', { endStream: true });
    ctx.peer.sendContinuation(1, dummyHeaders(1), true);
  }),

  // ---- 7 error codes ----
  serverCase('http2/7/1', 'RFC 9113 §7', 'error codes', 'Sends a GOAWAY frame with an unknown error code', 'nothing special: the connection closes as for any GOAWAY', async (ctx) => {
    await ctx.handshake();
    ctx.peer.sendGoaway(0, 0xff);
    return connectionClose(ctx);
  }),
  serverCase('http2/7/2', 'RFC 9113 §7', 'error codes', 'Sends a RST_STREAM frame with an unknown error code', 'nothing special (PING answered)', async (ctx) => {
    await ctx.handshake();
    ctx.peer.sendHeaders(1, ctx.request('POST'));
    ctx.peer.sendRstStream(1, 0xff);
    const data = pingData('unk-code');
    ctx.peer.sendPing(data);
    return pingAck(ctx, data);
  }),

  // ---- 8.1 request/response exchange ----
  streamErr('http2/8.1/1', 'RFC 9113 §8.1', 'malformed requests', 'Sends a second HEADERS frame (trailers) without END_STREAM', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendHeaders(1, ctx.request('POST'));
    ctx.peer.sendData(1, 'test');
    ctx.peer.sendHeaders(1, [['x-test', 'ok']]);
  }),

  // ---- 8.1.2 header fields ----
  malformed('http2/8.1.2/1', 'RFC 9113 §8.2', 'malformed requests', 'Sends a header field name in upper case', (ctx) => [...ctx.request(), ['X-TEST', 'ok']]),

  // ---- 8.1.2.1 pseudo-header fields ----
  malformed('http2/8.1.2.1/1', 'RFC 9113 §8.3', 'malformed requests', 'Sends an unknown pseudo-header field', (ctx) => [...ctx.request(), [':test', 'ok']]),
  malformed('http2/8.1.2.1/2', 'RFC 9113 §8.3', 'malformed requests', 'Sends the response pseudo-header :status in a request', (ctx) => [...ctx.request(), [':status', '200']]),
  streamErr('http2/8.1.2.1/3', 'RFC 9113 §8.3', 'malformed requests', 'Sends a pseudo-header field in trailers', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendHeaders(1, ctx.request('POST'));
    ctx.peer.sendData(1, 'test');
    ctx.peer.sendHeaders(1, [[':method', 'POST']], { endStream: true });
  }),
  malformed('http2/8.1.2.1/4', 'RFC 9113 §8.3', 'malformed requests', 'Sends a pseudo-header field after a regular header field', (ctx) => [['x-test', 'ok'], ...ctx.request()]),

  // ---- 8.1.2.2 connection-specific header fields ----
  malformed('http2/8.1.2.2/1', 'RFC 9113 §8.2.2', 'malformed requests', 'Sends a connection-specific header field (connection)', (ctx) => [...ctx.request(), ['connection', 'keep-alive']]),
  malformed('http2/8.1.2.2/2', 'RFC 9113 §8.2.2', 'malformed requests', 'Sends a TE header field with a value other than "trailers"', (ctx) => [...ctx.request(), ['trailers', 'test'], ['te', 'trailers, deflate']]),

  // ---- 8.1.2.3 request pseudo-header fields ----
  malformed('http2/8.1.2.3/1', 'RFC 9113 §8.3.1', 'malformed requests', 'Sends an empty :path', (ctx) => ctx.request().map(([n, v]) => [n, n === ':path' ? '' : v] as [string, string])),
  malformed('http2/8.1.2.3/2', 'RFC 9113 §8.3.1', 'malformed requests', 'Omits :method', (ctx) => ctx.request().filter(([n]) => n !== ':method')),
  malformed('http2/8.1.2.3/3', 'RFC 9113 §8.3.1', 'malformed requests', 'Omits :scheme', (ctx) => ctx.request().filter(([n]) => n !== ':scheme')),
  malformed('http2/8.1.2.3/4', 'RFC 9113 §8.3.1', 'malformed requests', 'Omits :path', (ctx) => ctx.request().filter(([n]) => n !== ':path')),
  malformed('http2/8.1.2.3/5', 'RFC 9113 §8.3.1', 'malformed requests', 'Sends :method twice', (ctx) => [...ctx.request(), [':method', 'GET']]),
  malformed('http2/8.1.2.3/6', 'RFC 9113 §8.3.1', 'malformed requests', 'Sends :scheme twice', (ctx) => [...ctx.request(), [':scheme', ctx.request()[1]![1]]]),
  malformed('http2/8.1.2.3/7', 'RFC 9113 §8.3.1', 'malformed requests', 'Sends :path twice', (ctx) => [...ctx.request(), [':path', '/']]),

  // ---- 8.1.2.6 malformed requests and responses ----
  streamErr('http2/8.1.2.6/1', 'RFC 9113 §8.1.1', 'malformed requests', 'Sends content-length that differs from the DATA payload length', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendHeaders(1, [...ctx.request('POST'), ['content-length', '1']]);
    ctx.peer.sendData(1, 'test', { endStream: true });
  }),
  streamErr('http2/8.1.2.6/2', 'RFC 9113 §8.1.1', 'malformed requests', 'Sends content-length that differs from the sum of several DATA payloads', [PROTOCOL_ERROR], (ctx) => {
    ctx.peer.sendHeaders(1, [...ctx.request('POST'), ['content-length', '1']]);
    ctx.peer.sendData(1, 'test');
    ctx.peer.sendData(1, 'test', { endStream: true });
  }),

  // ---- 8.2 server push ----
  connErr('http2/8.2/1', 'RFC 9113 §8.4', 'server push', 'Sends a PUSH_PROMISE frame (a client cannot push)', [PROTOCOL_ERROR], (ctx) => {
    const promised = Buffer.alloc(4);
    promised.writeUInt32BE(3, 0);
    ctx.peer.send(FrameType.PUSH_PROMISE, Flag.END_HEADERS, 1, Buffer.concat([promised, encodeHeaders(ctx.request())]));
  }),
];

/** A GOAWAY with exactly `code` (a close without one fails: the rule names the frame). */
function goawayWith(ctx: CaseContext, code: number): Promise<Verdict> {
  return watch(ctx, `GOAWAY ${codeText(code)}`, (e) => {
    if (e.kind === 'closed') return { pass: false, detail: `connection closed (${e.how}) without GOAWAY` };
    if (e.frame.type !== FrameType.GOAWAY) return undefined;
    const got = e.frame.payload.readUInt32BE(4);
    return { pass: got === code, detail: `GOAWAY(${codeText(got)})` };
  });
}
