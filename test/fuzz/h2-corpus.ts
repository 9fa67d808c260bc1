/**
 * Generators of valid HTTP/2 input for the fuzz tests, built with the production encoders (`frame()`,
 * `encodeHeaders`) plus a small test-side HPACK encoder for what ours never emits (dynamic-table insertions,
 * references to them, table size updates). Each generated session is a Sample: bytes plus frame offsets, so
 * mutations can edit frame-header fields.
 */
import fc from 'fast-check';
import { CONNECTION_PREFACE, Flag, FrameType, H2Code, Setting, frame } from '../../src/hbone/h2/frames.js';
import { STATIC_TABLE, encodeHeaders, type HeaderList } from '../../src/hbone/h2/hpack.js';
import type { Sample } from './kit.js';

// ---- HPACK, test side -----------------------------------------------------------------------------------

function hpackInt(value: number, prefixBits: number, flags: number, out: number[]): void {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out.push(flags | value);
    return;
  }
  out.push(flags | max);
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
}

function hpackRawString(s: string, out: number[]): void {
  hpackInt(s.length, 7, 0, out);
  for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i) & 0xff);
}

/** One header-block instruction of the test encoder. */
export type HpackOp =
  | { op: 'plain'; name: string; value: string } // our encoder's own output (static hits, literals, Huffman)
  | { op: 'index'; name: string; value: string } // literal with incremental indexing (new name)
  | { op: 'ref'; back: number } // indexed field: one of the last entries this encoder inserted
  | { op: 'size'; size: number }; // dynamic table size update

/**
 * A stateful test encoder that mirrors the decoder's dynamic table (RFC 7541 §4) so that it can emit references
 * to its own insertions; `expected` is the header list a correct decoder must produce.
 */
export class ModelEncoder {
  private table: Array<[string, string]> = [];
  private size = 0;
  constructor(private maxSize = 4096) {}

  encode(ops: readonly HpackOp[]): { block: Buffer; expected: HeaderList } {
    const out: number[] = [];
    const expected: HeaderList = [];
    let sawField = false;
    for (const o of ops) {
      switch (o.op) {
        case 'plain':
          out.push(...encodeHeaders([[o.name, o.value]]));
          expected.push([o.name, o.value]);
          sawField = true;
          break;
        case 'index':
          out.push(0x40);
          hpackRawString(o.name, out);
          hpackRawString(o.value, out);
          this.insert(o.name, o.value);
          expected.push([o.name, o.value]);
          sawField = true;
          break;
        case 'ref': {
          if (this.table.length === 0) break;
          const i = o.back % this.table.length;
          hpackInt(STATIC_TABLE.length + i, 7, 0x80, out);
          expected.push([...this.table[i]!]);
          sawField = true;
          break;
        }
        case 'size':
          if (sawField) break; // only at the start of a block
          hpackInt(o.size, 5, 0x20, out);
          this.maxSize = o.size;
          this.evict(0);
          break;
      }
    }
    return { block: Buffer.from(out), expected };
  }

  private insert(name: string, value: string): void {
    const size = name.length + value.length + 32;
    if (size > this.maxSize) {
      this.table = [];
      this.size = 0;
      return;
    }
    this.evict(size);
    this.table.unshift([name, value]);
    this.size += size;
  }

  private evict(room: number): void {
    while (this.size + room > this.maxSize && this.table.length > 0) {
      const [n, v] = this.table.pop()!;
      this.size -= n.length + v.length + 32;
    }
  }
}

// ---- header values --------------------------------------------------------------------------------------

const TOKEN_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789-_.!#$%&\'*+^`|~';
export const headerNameArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('forwarded', 'baggage', 'traceparent', 'x-strait-reason', 'content-length', 'te', 'connection', 'host', 'user-agent', 'accept'),
  fc.string({ unit: fc.constantFrom(...TOKEN_CHARS), minLength: 1, maxLength: 24 }),
);
/** latin1 strings: header octets, one char each. */
export const latin1Arb = (maxLength: number): fc.Arbitrary<string> => fc.oneof(
  fc.string({ unit: 'binary-ascii', maxLength }),
  fc.uint8Array({ maxLength }).map((b) => Buffer.from(b).toString('latin1')),
  fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789=;:/.'), maxLength }),
);
const ipArb = fc.oneof(fc.ipV4(), fc.ipV6().map((ip) => `[${ip}]`));
const authorityArb = fc.oneof(
  { arbitrary: fc.tuple(ipArb, fc.integer({ min: 1, max: 65_535 })).map(([ip, port]) => `${ip}:${port}`), weight: 4 },
  latin1Arb(40),
);

/** A client's request header list: mostly HBONE CONNECTs, some other methods, some nonsense. */
export const requestHeadersArb: fc.Arbitrary<HeaderList> = fc.tuple(
  fc.oneof({ arbitrary: fc.constant('CONNECT'), weight: 5 }, fc.constantFrom('GET', 'POST', 'PRI', ''), latin1Arb(8)),
  authorityArb,
  fc.array(fc.tuple(headerNameArb, latin1Arb(64)), { maxLength: 5 }),
  fc.boolean(),
).map(([method, authority, extra, withPath]) => {
  const list: HeaderList = [[':method', method], [':authority', authority]];
  if (withPath) list.push([':scheme', 'https'], [':path', '/']);
  return [...list, ...extra];
});

/** A server's response header list. */
export const responseHeadersArb: fc.Arbitrary<HeaderList> = fc.tuple(
  fc.oneof({ arbitrary: fc.constant('200'), weight: 4 }, fc.integer({ min: 100, max: 599 }).map(String), latin1Arb(4)),
  fc.array(fc.tuple(headerNameArb, latin1Arb(64)), { maxLength: 4 }),
).map(([status, extra]) => [[':status', status], ...extra] as HeaderList);

// ---- frames ---------------------------------------------------------------------------------------------

type Role = 'client' | 'server';

/**
 * Which stream a frame goes to, resolved in order when the session is assembled: a new stream (the next id the
 * sender may open), one already opened (most frames), or a fixed id (often wrong: 0, even, idle, huge).
 */
type StreamRef = { kind: 'new' } | { kind: 'open'; k: number } | { kind: 'fixed'; id: number };

const openRef: fc.Arbitrary<StreamRef> = fc.nat().map((k) => ({ kind: 'open', k }) as StreamRef);
const fixedRef: fc.Arbitrary<StreamRef> = fc.oneof(fc.constantFrom(0, 1, 2, 3, 4, 9, 101), fc.integer({ min: 0, max: 2 ** 31 - 1 })).map((id) => ({ kind: 'fixed', id }) as StreamRef);
/** For frames on an existing stream. */
const streamRefArb: fc.Arbitrary<StreamRef> = fc.oneof({ arbitrary: openRef, weight: 30 }, fixedRef);
/** For HEADERS: mostly a new stream (to a server) or an open one (responses, trailers). */
const headersRefArb = (under: Role): fc.Arbitrary<StreamRef> => fc.oneof(
  { arbitrary: under === 'server' ? fc.constant({ kind: 'new' } as StreamRef) : openRef, weight: 20 },
  { arbitrary: openRef, weight: 3 },
  fixedRef,
);

/** Assembles frames in order, tracking the streams opened (the client under test opens 1 and 3 itself). */
class SessionBuilder {
  readonly open: number[];
  private next: number;
  constructor(under: Role) {
    this.open = under === 'client' ? [1, 3] : [];
    this.next = 1;
  }
  id(ref: StreamRef): number {
    switch (ref.kind) {
      case 'fixed': return ref.id;
      case 'open': return this.open.length === 0 ? 1 : this.open[ref.k % this.open.length]!;
      case 'new': {
        const id = this.next;
        this.next += 2;
        this.open.push(id);
        return id;
      }
    }
  }
}

/** A generated frame group: builds its frames once the stream ids are known. */
type Group = (b: SessionBuilder) => Buffer[];

const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0, 0);
  return b;
};

/** A value that is valid for setting `id` (RFC 9113 §6.5.2) when `sender` sends it. */
function validSettingValue(id: number, sender: Role): fc.Arbitrary<number> {
  switch (id) {
    case Setting.ENABLE_PUSH: return sender === 'client' ? fc.constantFrom(0, 1) : fc.constant(0);
    case Setting.INITIAL_WINDOW_SIZE: return fc.oneof(fc.constantFrom(0, 1, 65_535, 2 ** 31 - 1), fc.nat({ max: 2 ** 31 - 1 }));
    case Setting.MAX_FRAME_SIZE: return fc.oneof(fc.constantFrom(16_384, 2 ** 24 - 1), fc.integer({ min: 16_384, max: 2 ** 24 - 1 }));
    default: return fc.oneof(fc.constantFrom(0, 1, 100, 4096, 65_535, 2 ** 32 - 1), fc.nat({ max: 2 ** 32 - 1 }));
  }
}

/** SETTINGS payloads as `sender` would send them: mostly valid values, a few out of range, unknown ids. */
export function settingsPayloadArb(sender: Role): fc.Arbitrary<Buffer> {
  const known = [Setting.HEADER_TABLE_SIZE, Setting.ENABLE_PUSH, Setting.MAX_CONCURRENT_STREAMS, Setting.INITIAL_WINDOW_SIZE, Setting.MAX_FRAME_SIZE, Setting.MAX_HEADER_LIST_SIZE];
  const pair = fc.oneof(
    { arbitrary: fc.constantFrom(...known).chain((id) => validSettingValue(id, sender).map((v) => [id, v] as const)), weight: 40 },
    fc.tuple(fc.constantFrom(...known), fc.nat({ max: 2 ** 32 - 1 })),
    { arbitrary: fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.nat({ max: 2 ** 32 - 1 })), weight: 3 },
  );
  return fc.array(pair, { maxLength: 7 }).map((pairs) => {
    const b = Buffer.alloc(pairs.length * 6);
    pairs.forEach(([id, v], i) => {
      b.writeUInt16BE(id, i * 6);
      b.writeUInt32BE(v >>> 0, i * 6 + 2);
    });
    return b;
  });
}

/** A header block split as HEADERS (+ CONTINUATION...), with optional padding and priority on the HEADERS. */
const headerFramesArb = (under: Role, headers: fc.Arbitrary<HeaderList>): fc.Arbitrary<Group> => fc.tuple(
  headersRefArb(under),
  headers,
  fc.boolean(), // END_STREAM
  fc.option(fc.integer({ min: 0, max: 40 }), { nil: undefined }), // padding
  fc.boolean(), // priority fields
  fc.array(fc.integer({ min: 0, max: 64 }), { maxLength: 3 }), // CONTINUATION split points
).map(([ref, list, end, pad, prio, splits]) => (b: SessionBuilder) => {
  const id = b.id(ref);
  const block = encodeHeaders(list);
  const cuts = [...new Set(splits.map((s) => Math.min(s, block.length)))].sort((x, y) => x - y);
  const pieces: Buffer[] = [];
  let last = 0;
  for (const c of cuts) {
    pieces.push(block.subarray(last, c));
    last = c;
  }
  pieces.push(block.subarray(last));
  const parts: Buffer[] = [];
  let flags = (end ? Flag.END_STREAM : 0) | (pieces.length === 1 ? Flag.END_HEADERS : 0);
  if (pad !== undefined) {
    flags |= Flag.PADDED;
    parts.push(Buffer.from([pad]));
  }
  if (prio) {
    flags |= Flag.PRIORITY;
    parts.push(u32(0), Buffer.from([15]));
  }
  parts.push(pieces[0]!);
  if (pad !== undefined) parts.push(Buffer.alloc(pad));
  const frames = [frame(FrameType.HEADERS, flags, id, Buffer.concat(parts))];
  pieces.slice(1).forEach((p, i) => frames.push(frame(FrameType.CONTINUATION, i === pieces.length - 2 ? Flag.END_HEADERS : 0, id, p)));
  return frames;
});

export const hpackOpArb: fc.Arbitrary<HpackOp> = fc.oneof(
  { arbitrary: fc.record({ op: fc.constant('plain' as const), name: headerNameArb, value: latin1Arb(48) }), weight: 3 },
  { arbitrary: fc.record({ op: fc.constant('index' as const), name: headerNameArb, value: latin1Arb(200) }), weight: 3 },
  { arbitrary: fc.record({ op: fc.constant('ref' as const), back: fc.nat({ max: 200 }) }), weight: 3 },
  fc.record({ op: fc.constant('size' as const), size: fc.oneof({ arbitrary: fc.constantFrom(0, 32, 64, 100, 4096), weight: 3 }, { arbitrary: fc.nat({ max: 4096 }), weight: 3 }, fc.nat({ max: 5000 })) }),
);

/**
 * A header block from the model encoder (dynamic-table insertions and references), in one HEADERS frame: a
 * request's pseudo-headers first (to a server), a status (to a client), then the model's fields.
 */
const dynamicHeadersArb = (under: Role): fc.Arbitrary<Group> => fc.tuple(headersRefArb(under), fc.array(hpackOpArb, { minLength: 1, maxLength: 8 }), fc.boolean())
  .map(([ref, ops, end]) => (b: SessionBuilder) => {
    const lead: HpackOp[] = under === 'server'
      ? [{ op: 'plain', name: ':method', value: 'CONNECT' }, { op: 'index', name: ':authority', value: '10.1.2.3:8080' }]
      : [{ op: 'plain', name: ':status', value: '200' }];
    return [frame(FrameType.HEADERS, Flag.END_HEADERS | (end ? Flag.END_STREAM : 0), b.id(ref), new ModelEncoder().encode([...ops.filter((o) => o.op === 'size'), ...lead, ...ops]).block)];
  });

const dataFrameArb: fc.Arbitrary<Group> = fc.tuple(
  streamRefArb,
  fc.oneof({ arbitrary: fc.integer({ min: 0, max: 256 }), weight: 3 }, fc.integer({ min: 0, max: 16_384 })),
  fc.boolean(),
  fc.option(fc.integer({ min: 0, max: 255 }), { nil: undefined }),
).map(([ref, size, end, pad]) => (b: SessionBuilder) => {
  const data = Buffer.alloc(size, 0x61);
  const flags = (end ? Flag.END_STREAM : 0) | (pad !== undefined ? Flag.PADDED : 0);
  const payload = pad === undefined ? data : Buffer.concat([Buffer.from([pad]), data, Buffer.alloc(pad)]);
  return [frame(FrameType.DATA, flags, b.id(ref), payload)];
});

const fixed = (frames: Buffer[]): Group => () => frames;
const onStream = (ref: StreamRef, make: (id: number) => Buffer[]): Group => (b) => make(b.id(ref));

const controlFrameArb = (sender: Role): fc.Arbitrary<Group> => fc.oneof(
  { arbitrary: settingsPayloadArb(sender).map((p) => fixed([frame(FrameType.SETTINGS, 0, 0, p)])), weight: 6 },
  { arbitrary: fc.constant(fixed([frame(FrameType.SETTINGS, Flag.ACK, 0)])), weight: 2 },
  { arbitrary: fc.tuple(fc.uint8Array({ minLength: 8, maxLength: 8 }), fc.boolean()).map(([p, ack]) => fixed([frame(FrameType.PING, ack ? Flag.ACK : 0, 0, Buffer.from(p))])), weight: 6 },
  fc.tuple(fc.oneof(fc.constantFrom(0, 1, 3), fc.nat({ max: 2 ** 31 - 1 })), fc.integer({ min: 0, max: 0xd }), latin1Arb(20))
    .map(([last, code, dbg]) => fixed([frame(FrameType.GOAWAY, 0, 0, Buffer.concat([u32(last), u32(code), Buffer.from(dbg, 'latin1')]))])),
  {
    arbitrary: fc.tuple(
      fc.oneof(fc.constant({ kind: 'fixed', id: 0 } as StreamRef), streamRefArb),
      fc.oneof({ arbitrary: fc.constantFrom(1, 65_535, 2 ** 20, 2 ** 31 - 1), weight: 6 }, fc.constant(0), fc.nat({ max: 2 ** 31 - 1 })),
    ).map(([ref, inc]) => onStream(ref, (id) => [frame(FrameType.WINDOW_UPDATE, 0, id, u32(inc))])),
    weight: 6,
  },
  { arbitrary: fc.tuple(streamRefArb, fc.integer({ min: 0, max: 0xd })).map(([ref, code]) => onStream(ref, (id) => [frame(FrameType.RST_STREAM, 0, id, u32(code))])), weight: 4 },
  {
    arbitrary: fc.tuple(streamRefArb, fc.nat({ max: 9 }), fc.boolean())
      .map(([ref, dep, excl]) => onStream(ref, (id) => [frame(FrameType.PRIORITY, 0, id, Buffer.concat([u32(dep | (excl ? 0x8000_0000 : 0)), Buffer.from([16])]))])),
    weight: 3,
  },
  fc.tuple(streamRefArb, fc.uint8Array({ maxLength: 40 })).map(([ref, p]) => onStream(ref, (id) => [frame(FrameType.PUSH_PROMISE, Flag.END_HEADERS, id, Buffer.concat([u32(2), Buffer.from(p)]))])),
  {
    arbitrary: fc.tuple(fc.integer({ min: 0x0a, max: 0xff }), fc.integer({ min: 0, max: 255 }), fc.nat({ max: 2 ** 31 - 1 }), fc.uint8Array({ maxLength: 40 }))
      .map(([type, flags, id, p]) => fixed([frame(type, flags, id, Buffer.from(p))])),
    weight: 3,
  },
  fc.tuple(streamRefArb, fc.constantFrom(0, Flag.END_HEADERS)).map(([ref, flags]) => onStream(ref, (id) => [frame(FrameType.CONTINUATION, flags, id)])),
  fc.tuple(streamRefArb, fc.integer({ min: 0, max: 0xd })).map(([ref, code]) => onStream(ref, (id) => [frame(FrameType.RST_STREAM, 0, id, u32(code)), frame(FrameType.RST_STREAM, 0, id, u32(code))])),
);

/** Generated sessions stop growing past this size (mutations may add a little). */
export const MAX_SESSION_BYTES = 128 * 1024;

/** The same group many times (a flood in small): new streams each time for HEADERS. */
const repeatedArb = (one: fc.Arbitrary<Group>): fc.Arbitrary<Group> =>
  fc.tuple(one, fc.integer({ min: 2, max: 2000 })).map(([group, n]) => (b: SessionBuilder) => {
    const first = group(b);
    const bytes = first.reduce((sum, f) => sum + f.length, 0);
    const times = Math.max(1, Math.min(n, Math.floor(MAX_SESSION_BYTES / 2 / Math.max(1, bytes))));
    const out = [...first];
    for (let i = 1; i < times; i++) out.push(...group(b));
    return out;
  });

/**
 * A session as the peer of `role` sends it: the client preface (to a server), its SETTINGS, then frame groups. To a
 * server: requests (HEADERS open new streams); to a client: responses on the streams 1 and 3 it opened.
 */
export function sessionArb(role: Role): fc.Arbitrary<Sample> {
  const sender: Role = role === 'server' ? 'client' : 'server';
  const headers = role === 'server' ? requestHeadersArb : responseHeadersArb;
  const one = fc.oneof(
    { arbitrary: headerFramesArb(role, headers), weight: 5 },
    { arbitrary: dynamicHeadersArb(role), weight: 2 },
    { arbitrary: dataFrameArb, weight: 5 },
    { arbitrary: controlFrameArb(sender), weight: 5 },
  );
  return fc.tuple(
    fc.oneof({ arbitrary: fc.constant(true), weight: 20 }, fc.constant(false)),
    settingsPayloadArb(sender),
    headerFramesArb(role, headers), // a first request or response, so that most later frames have a stream
    fc.array(fc.oneof({ arbitrary: one, weight: 20 }, repeatedArb(one)), { maxLength: 24 }),
  ).map(([withPreface, settings, first, rest]) => {
    const groups = [first, ...rest];
    const b = new SessionBuilder(role);
    const frames: Buffer[] = [];
    const starts: number[] = [];
    let off = 0;
    const add = (buf: Buffer, isFrame: boolean): void => {
      if (isFrame) starts.push(off);
      frames.push(buf);
      off += buf.length;
    };
    if (role === 'server' && withPreface) add(CONNECTION_PREFACE, false);
    add(frame(FrameType.SETTINGS, 0, 0, settings), true);
    for (const g of groups) {
      if (off >= MAX_SESSION_BYTES) break;
      for (const f of g(b)) add(f, true);
    }
    return { bytes: Buffer.concat(frames), frameStarts: starts };
  });
}

/** Frames with well-formed lengths and random everything else: type, flags, stream id, payload. */
export const randomFramesArb: fc.Arbitrary<Buffer> = fc.array(
  fc.tuple(
    fc.oneof({ arbitrary: fc.integer({ min: 0, max: 9 }), weight: 9 }, fc.integer({ min: 0, max: 255 })),
    fc.integer({ min: 0, max: 255 }),
    fc.oneof({ arbitrary: fc.integer({ min: 0, max: 7 }), weight: 9 }, fc.nat({ max: 2 ** 32 - 1 })),
    fc.uint8Array({ maxLength: 64 }),
  ).map(([type, flags, id, payload]) => {
    const f = frame(type, flags, 0, Buffer.from(payload));
    f.writeUInt32BE(id >>> 0, 5); // the reserved bit too
    return f;
  }),
  { maxLength: 40 },
).map((frames) => Buffer.concat(frames));

export const H2_ERROR_CODES: readonly number[] = Object.values(H2Code);
