/**
 * Client role: what a hostile or odd *server* can do to our HTTP/2 client once the client sent its CONNECT, and
 * what RFC 9113 says the client must do about it. Each case names the outcome on the wire (what the client
 * sends back) and what the caller must see (an error, or the response), never a hang.
 */
import { Flag, FrameType, H2Code, Setting } from '../../src/hbone/h2/frames.js';
import { encodeHeaders, type HeaderList } from '../../src/hbone/h2/hpack.js';
import type { H2Peer } from '../helpers/h2-peer.js';
import { u32 } from '../helpers/h2-peer.js';
import type { Area } from './case.js';
import { dummyHeaders } from './case.js';

const { PROTOCOL_ERROR, FRAME_SIZE_ERROR, FLOW_CONTROL_ERROR, COMPRESSION_ERROR, NO_ERROR, REFUSED_STREAM } = H2Code;

/** What the client must send back. */
export type WireOutcome =
  | { kind: 'connection-error'; codes: number[] }
  | { kind: 'stream-error'; codes: number[] }
  /** A stream or a connection error with any code (the rule only says the client must not use the response). */
  | { kind: 'any-error' }
  /** Nothing: no RST_STREAM on the stream, no GOAWAY. */
  | { kind: 'no-error' };

export interface ClientCase {
  id: string;
  rfc: string;
  area: Area;
  description: string;
  wire: WireOutcome;
  /**
   * What the code that asked for the stream must see, promptly: an error instead of a response; the 2xx
   * response and a usable stream; or the 2xx response and then the stream failing.
   */
  caller: 'error' | 'response' | 'response-then-error';
  /** What the server does once the client's request (HEADERS on `streamId`) arrived and SETTINGS were exchanged. */
  act(peer: H2Peer, streamId: number): void | Promise<void>;
}

function clientCase(n: number, rfc: string, area: Area, description: string, wire: WireOutcome, caller: ClientCase['caller'], act: ClientCase['act']): ClientCase {
  return { id: `client/${n}`, rfc, area, description, wire, caller, act };
}

const connErr = (...codes: number[]): WireOutcome => ({ kind: 'connection-error', codes });
const streamErr = (...codes: number[]): WireOutcome => ({ kind: 'stream-error', codes });
const NO_ERROR_ON_WIRE: WireOutcome = { kind: 'no-error' };
const OK: HeaderList = [[':status', '200']];

/** A response HEADERS frame on `id` with `headers` (END_HEADERS; END_STREAM when asked). */
function respond(peer: H2Peer, id: number, headers: HeaderList, endStream = false): void {
  peer.sendHeaders(id, headers, { endStream });
}

export const CLIENT_CASES: ClientCase[] = [
  // ---- server push (we always send SETTINGS_ENABLE_PUSH = 0) ----
  clientCase(1, 'RFC 9113 §6.6, §8.4', 'client: server push', 'Server sends PUSH_PROMISE although the client disabled push',
    connErr(PROTOCOL_ERROR), 'error', (peer, id) => {
      const block = encodeHeaders([[':method', 'GET'], [':scheme', 'https'], [':path', '/pushed'], [':authority', 'example']]);
      peer.send(FrameType.PUSH_PROMISE, Flag.END_HEADERS, id, Buffer.concat([u32(2), block]));
    }),

  // ---- stream ids ----
  clientCase(2, 'RFC 9113 §5.1.1, §8.4', 'client: stream ids', 'Server opens an even stream with HEADERS (no PUSH_PROMISE reserved it)',
    connErr(PROTOCOL_ERROR), 'error', (peer) => respond(peer, 2, OK)),
  clientCase(3, 'RFC 9113 §5.1.1', 'client: stream ids', 'Server sends HEADERS on an odd stream the client never opened',
    connErr(PROTOCOL_ERROR), 'error', (peer, id) => respond(peer, id + 2, OK)),
  clientCase(4, 'RFC 9113 §5.1', 'client: stream ids', 'Server sends DATA on an idle stream',
    connErr(PROTOCOL_ERROR), 'error', (peer, id) => peer.sendData(id + 2, 'x')),
  clientCase(5, 'RFC 9113 §6.4', 'client: stream ids', 'Server sends RST_STREAM on an idle stream',
    connErr(PROTOCOL_ERROR), 'error', (peer, id) => peer.sendRstStream(id + 2, H2Code.CANCEL)),
  clientCase(6, 'RFC 9113 §6.1', 'client: stream ids', 'Server sends DATA on stream 0',
    connErr(PROTOCOL_ERROR), 'error', (peer) => peer.sendData(0, 'x')),

  // ---- responses ----
  clientCase(7, 'RFC 9113 §8.3.2', 'client: responses', 'Server answers without :status',
    streamErr(PROTOCOL_ERROR), 'error', (peer, id) => respond(peer, id, [['x-test', 'ok']])),
  clientCase(8, 'RFC 9113 §8.3', 'client: responses', 'Server answers with a request pseudo-header (:method)',
    streamErr(PROTOCOL_ERROR), 'error', (peer, id) => respond(peer, id, [[':status', '200'], [':method', 'GET']])),
  clientCase(9, 'RFC 9113 §8.3', 'client: responses', 'Server answers with an unknown pseudo-header',
    streamErr(PROTOCOL_ERROR), 'error', (peer, id) => respond(peer, id, [[':status', '200'], [':test', 'x']])),
  clientCase(10, 'RFC 9113 §8.3', 'client: responses', 'Server answers with :status twice',
    streamErr(PROTOCOL_ERROR), 'error', (peer, id) => respond(peer, id, [[':status', '200'], [':status', '200']])),
  clientCase(11, 'RFC 9113 §8.3', 'client: responses', 'Server answers with a pseudo-header after a regular header',
    streamErr(PROTOCOL_ERROR), 'error', (peer, id) => respond(peer, id, [['x-test', 'ok'], [':status', '200']])),
  clientCase(12, 'RFC 9113 §8.3.2', 'client: responses', 'Server answers with a :status that is not three digits',
    streamErr(PROTOCOL_ERROR), 'error', (peer, id) => respond(peer, id, [[':status', '20']])),
  clientCase(13, 'RFC 9113 §8.2', 'client: responses', 'Server answers with an upper-case header name',
    streamErr(PROTOCOL_ERROR), 'error', (peer, id) => respond(peer, id, [[':status', '200'], ['X-Test', 'ok']])),
  clientCase(14, 'RFC 9113 §8.2.2', 'client: responses', 'Server answers with a connection-specific header (connection)',
    streamErr(PROTOCOL_ERROR), 'error', (peer, id) => respond(peer, id, [[':status', '200'], ['connection', 'close']])),
  clientCase(15, 'RFC 9113 §8.2.1', 'client: responses', 'Server answers with a LF in a header value',
    streamErr(PROTOCOL_ERROR), 'error', (peer, id) => respond(peer, id, [[':status', '200'], ['x-test', 'a\nb']])),
  clientCase(16, 'RFC 9113 §8.1', 'client: responses', 'Server sends 100, then 200',
    NO_ERROR_ON_WIRE, 'response', (peer, id) => {
      respond(peer, id, [[':status', '100']]);
      respond(peer, id, OK);
    }),
  clientCase(17, 'RFC 9113 §8.1', 'client: responses', 'Server sends an informational (1xx) response with END_STREAM',
    streamErr(PROTOCOL_ERROR), 'error', (peer, id) => respond(peer, id, [[':status', '103']], true)),
  clientCase(18, 'RFC 9113 §8.1', 'client: responses', 'Server sends DATA before any HEADERS on the stream',
    streamErr(PROTOCOL_ERROR), 'error', (peer, id) => peer.sendData(id, 'early')),
  clientCase(19, 'RFC 9113 §8.1', 'client: responses', 'Server sends a second HEADERS without END_STREAM after the final response',
    streamErr(PROTOCOL_ERROR), 'response-then-error', (peer, id) => {
      respond(peer, id, OK);
      respond(peer, id, [['x-test', 'ok']]);
    }),
  clientCase(20, 'RFC 9113 §8.1', 'client: responses', 'Server sends trailers carrying a pseudo-header',
    streamErr(PROTOCOL_ERROR), 'response-then-error', (peer, id) => {
      respond(peer, id, OK);
      peer.sendData(id, 'x');
      respond(peer, id, [[':status', '200']], true);
    }),
  clientCase(21, 'RFC 9110 §9.3.6', 'client: responses', 'Server answers CONNECT 200 with content-length: 0 and then sends DATA (the client must ignore it)',
    NO_ERROR_ON_WIRE, 'response', (peer, id) => {
      respond(peer, id, [[':status', '200'], ['content-length', '0']]);
      peer.sendData(id, 'tunnel bytes');
    }),
  clientCase(22, 'RFC 9113 §8.5', 'client: responses', 'Server refuses CONNECT with 403 and END_STREAM',
    NO_ERROR_ON_WIRE, 'error', (peer, id) => respond(peer, id, [[':status', '403']], true)),

  // ---- frame size ----
  clientCase(23, 'RFC 9113 §4.2', 'client: frame size', 'Server sends DATA larger than the client\'s SETTINGS_MAX_FRAME_SIZE',
    streamErr(FRAME_SIZE_ERROR), 'response-then-error', (peer, id) => {
      respond(peer, id, OK);
      peer.sendData(id, Buffer.alloc(16_385, 'x'));
    }),
  clientCase(24, 'RFC 9113 §4.2', 'client: frame size', 'Server sends a HEADERS frame larger than the client\'s SETTINGS_MAX_FRAME_SIZE',
    connErr(FRAME_SIZE_ERROR), 'error', (peer, id) => respond(peer, id, [[':status', '200'], ...dummyHeaders(5, 4000)])),
  clientCase(25, 'RFC 9113 §6.7', 'client: frame size', 'Server sends a PING of 6 octets',
    connErr(FRAME_SIZE_ERROR), 'error', (peer) => peer.send(FrameType.PING, 0, 0, Buffer.alloc(6))),

  // ---- flow control ----
  clientCase(26, 'RFC 9113 §6.9.1', 'client: flow control', 'Server sends WINDOW_UPDATEs that take the connection window above 2^31-1',
    connErr(FLOW_CONTROL_ERROR), 'error', (peer) => {
      peer.sendWindowUpdate(0, 2 ** 31 - 1);
      peer.sendWindowUpdate(0, 2 ** 31 - 1);
    }),
  clientCase(27, 'RFC 9113 §6.9.1', 'client: flow control', 'Server sends WINDOW_UPDATEs that take a stream window above 2^31-1',
    streamErr(FLOW_CONTROL_ERROR), 'error', (peer, id) => {
      peer.sendWindowUpdate(id, 2 ** 31 - 1);
      peer.sendWindowUpdate(id, 2 ** 31 - 1);
    }),
  clientCase(28, 'RFC 9113 §6.9', 'client: flow control', 'Server sends a WINDOW_UPDATE with increment 0 on the connection',
    connErr(PROTOCOL_ERROR), 'error', (peer) => peer.sendWindowUpdate(0, 0)),
  clientCase(29, 'RFC 9113 §6.9.1', 'client: flow control', 'Server sends more DATA than the client\'s windows allow',
    { kind: 'any-error' }, 'response-then-error', async (peer, id) => {
      respond(peer, id, OK);
      const window = 16 * 1024 * 1024 + 1; // above both windows any of our clients announce
      const chunk = Buffer.alloc(16_384, 'x');
      const answered = (): boolean => peer.closed || peer.framesSeen().some((f) => f.type === FrameType.GOAWAY || (f.type === FrameType.RST_STREAM && f.streamId === id));
      for (let sent = 0; sent < window; sent += chunk.length) {
        peer.sendData(id, chunk);
        if (sent % (1 << 20) === 0) {
          await new Promise((r) => setImmediate(r));
          if (answered()) break;
        }
      }
    }),

  // ---- SETTINGS ----
  clientCase(30, 'RFC 9113 §6.5.2', 'client: SETTINGS', 'Server sends SETTINGS_ENABLE_PUSH = 1',
    connErr(PROTOCOL_ERROR), 'error', (peer) => peer.sendSettings([[Setting.ENABLE_PUSH, 1]])),
  clientCase(31, 'RFC 9113 §6.5.2', 'client: SETTINGS', 'Server sends SETTINGS_ENABLE_PUSH = 2',
    connErr(PROTOCOL_ERROR), 'error', (peer) => peer.sendSettings([[Setting.ENABLE_PUSH, 2]])),
  clientCase(32, 'RFC 9113 §6.5.2', 'client: SETTINGS', 'Server sends SETTINGS_INITIAL_WINDOW_SIZE = 2^31',
    connErr(FLOW_CONTROL_ERROR), 'error', (peer) => peer.sendSettings([[Setting.INITIAL_WINDOW_SIZE, 2 ** 31]])),
  clientCase(33, 'RFC 9113 §6.5.2', 'client: SETTINGS', 'Server sends SETTINGS_MAX_FRAME_SIZE = 16383',
    connErr(PROTOCOL_ERROR), 'error', (peer) => peer.sendSettings([[Setting.MAX_FRAME_SIZE, 16_383]])),
  clientCase(34, 'RFC 9113 §6.5.2', 'client: SETTINGS', 'Server sends SETTINGS_MAX_FRAME_SIZE = 2^24',
    connErr(PROTOCOL_ERROR), 'error', (peer) => peer.sendSettings([[Setting.MAX_FRAME_SIZE, 2 ** 24]])),
  clientCase(35, 'RFC 9113 §6.5', 'client: SETTINGS', 'Server sends SETTINGS whose length is not a multiple of 6',
    connErr(FRAME_SIZE_ERROR), 'error', (peer) => peer.send(FrameType.SETTINGS, 0, 0, Buffer.alloc(8))),
  clientCase(36, 'RFC 9113 §6.5', 'client: SETTINGS', 'Server sends a SETTINGS ACK with a payload',
    connErr(FRAME_SIZE_ERROR), 'error', (peer) => peer.send(FrameType.SETTINGS, Flag.ACK, 0, Buffer.alloc(6))),
  clientCase(37, 'RFC 9113 §6.5', 'client: SETTINGS', 'Server sends SETTINGS on a stream',
    connErr(PROTOCOL_ERROR), 'error', (peer, id) => peer.send(FrameType.SETTINGS, 0, id, Buffer.alloc(0))),
  clientCase(38, 'RFC 9113 §6.5.2', 'client: SETTINGS', 'Server sends an unknown setting, then answers',
    NO_ERROR_ON_WIRE, 'response', (peer, id) => {
      peer.sendSettings([[0xff, 1]]);
      respond(peer, id, OK);
    }),

  // ---- header blocks ----
  clientCase(39, 'RFC 9113 §6.2, §6.10', 'client: header blocks', 'Server interleaves a PING into a header block (HEADERS without END_HEADERS)',
    connErr(PROTOCOL_ERROR), 'error', (peer, id) => {
      peer.sendHeaders(id, OK, { endHeaders: false });
      peer.sendPing(Buffer.alloc(8));
    }),
  clientCase(40, 'RFC 9113 §6.10', 'client: header blocks', 'Server continues a header block on another stream',
    connErr(PROTOCOL_ERROR), 'error', (peer, id) => {
      peer.sendHeaders(id, OK, { endHeaders: false });
      peer.sendContinuation(id + 2, [['x-test', 'ok']], true);
    }),
  clientCase(41, 'RFC 9113 §6.10', 'client: header blocks', 'Server sends CONTINUATION without a header block to continue',
    connErr(PROTOCOL_ERROR), 'error', (peer, id) => peer.sendContinuation(id, OK, true)),
  clientCase(42, 'RFC 9113 §4.3', 'client: header blocks', 'Server sends a header block that does not decode (index 0)',
    connErr(COMPRESSION_ERROR), 'error', (peer, id) => peer.sendHeaders(id, Buffer.from([0x88, 0x80]))),
  clientCase(43, 'RFC 9113 §10.5.1', 'client: header blocks', 'Server sends a 1 MiB header list in 64 CONTINUATION frames',
    { kind: 'any-error' }, 'error', (peer, id) => {
      const block = encodeHeaders([[':status', '200'], ...dummyHeaders(64, 16_000)]);
      const size = 16_000;
      for (let off = 0; off < block.length; off += size) {
        const piece = block.subarray(off, Math.min(off + size, block.length));
        const last = off + size >= block.length;
        if (off === 0) peer.sendHeaders(id, piece, { endHeaders: last });
        else peer.sendContinuation(id, piece, last);
      }
    }),

  // ---- connection ----
  clientCase(44, 'RFC 9113 §6.8', 'client: connection', 'Server sends GOAWAY with last-stream-id 0 (the request was not processed)',
    NO_ERROR_ON_WIRE, 'error', (peer) => peer.sendGoaway(0, NO_ERROR)),
  clientCase(45, 'RFC 9113 §6.4', 'client: connection', 'Server refuses the stream (RST_STREAM REFUSED_STREAM)',
    NO_ERROR_ON_WIRE, 'error', (peer, id) => peer.sendRstStream(id, REFUSED_STREAM)),
  clientCase(46, 'RFC 9113 §6.7', 'client: connection', 'Server sends PING on a stream',
    connErr(PROTOCOL_ERROR), 'error', (peer, id) => peer.send(FrameType.PING, 0, id, Buffer.alloc(8))),
  clientCase(47, 'RFC 9113 §6.8', 'client: connection', 'Server sends GOAWAY on a stream',
    connErr(PROTOCOL_ERROR), 'error', (peer, id) => peer.send(FrameType.GOAWAY, 0, id, Buffer.alloc(8))),
  clientCase(48, 'RFC 9113 §5.1', 'client: connection', 'Server sends DATA on the stream after END_STREAM',
    streamErr(H2Code.STREAM_CLOSED), 'response-then-error', (peer, id) => {
      respond(peer, id, OK);
      peer.sendData(id, 'last', { endStream: true });
      peer.sendData(id, 'after the end');
    }),
];
