/**
 * HPACK (RFC 7541) for HBONE's HTTP/2: a full decoder (static and dynamic table, Huffman, table size
 * updates) and a stateless encoder. The encoder never adds to the peer's dynamic table: it emits static
 * table hits as indexed fields and everything else as "literal without indexing", with Huffman coding when
 * that is shorter. HBONE sends a handful of headers once per stream, so compression beyond that buys
 * nothing, and a stateless encoder cannot fall out of step with the peer.
 *
 * Strings are latin1 JavaScript strings (one char per octet), as header octets are.
 */
import { HUFFMAN_CODES, HUFFMAN_LENGTHS } from './huffman-table.js';

/** RFC 7541 Appendix A. Index 0 is unused. */
export const STATIC_TABLE: ReadonlyArray<readonly [string, string]> = [
  ['', ''],
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''],
  ['cache-control', ''], ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''],
  ['content-length', ''], ['content-location', ''], ['content-range', ''], ['content-type', ''],
  ['cookie', ''], ['date', ''], ['etag', ''], ['expect', ''], ['expires', ''], ['from', ''], ['host', ''],
  ['if-match', ''], ['if-modified-since', ''], ['if-none-match', ''], ['if-range', ''],
  ['if-unmodified-since', ''], ['last-modified', ''], ['link', ''], ['location', ''], ['max-forwards', ''],
  ['proxy-authenticate', ''], ['proxy-authorization', ''], ['range', ''], ['referer', ''], ['refresh', ''],
  ['retry-after', ''], ['server', ''], ['set-cookie', ''], ['strict-transport-security', ''],
  ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''], ['via', ''], ['www-authenticate', ''],
];
const STATIC_COUNT = STATIC_TABLE.length - 1;

const STATIC_FULL = new Map<string, number>();
const STATIC_NAME = new Map<string, number>();
for (let i = STATIC_COUNT; i >= 1; i--) {
  const [name, value] = STATIC_TABLE[i]!;
  STATIC_FULL.set(`${name}\0${value}`, i);
  STATIC_NAME.set(name, i);
}

/** A header block could not be decoded: a connection error of type COMPRESSION_ERROR (RFC 9113 §4.3). */
export class HpackError extends Error {
  override name = 'HpackError';
}

export type HeaderList = Array<[string, string]>;

// ---- Huffman ------------------------------------------------------------------------------------------

const EOS = 256;
/** Decoding tree as flat arrays: node n has children child[2n] (bit 0) and child[2n+1] (bit 1); leaves
 *  are encoded as -(symbol + 1). */
const tree: Int32Array = (() => {
  const child = new Int32Array(2 * 600);
  let nodes = 1;
  for (let sym = 0; sym <= EOS; sym++) {
    const code = HUFFMAN_CODES[sym]!;
    const len = HUFFMAN_LENGTHS[sym]!;
    let node = 0;
    for (let b = len - 1; b >= 0; b--) {
      const bit = Math.floor(code / 2 ** b) & 1;
      const slot = 2 * node + bit;
      if (b === 0) {
        if (child[slot] !== 0) throw new Error(`BUG: Huffman table is not prefix-free at symbol ${sym}`);
        child[slot] = -(sym + 1);
      } else {
        if (child[slot]! < 0) throw new Error(`BUG: Huffman table is not prefix-free at symbol ${sym}`);
        if (child[slot] === 0) child[slot] = nodes++;
        node = child[slot]!;
      }
    }
  }
  return child;
})();

export function huffmanDecode(src: Uint8Array, start: number, end: number): string {
  let out = '';
  let node = 0;
  let depth = 0; // bits consumed since the last symbol
  let allOnes = true; // those bits were all 1 (a prefix of EOS, the only valid padding)
  for (let i = start; i < end; i++) {
    const byte = src[i]!;
    for (let b = 7; b >= 0; b--) {
      const bit = (byte >> b) & 1;
      const next = tree[2 * node + bit]!;
      if (bit === 0) allOnes = false;
      depth++;
      if (next < 0) {
        const sym = -next - 1;
        if (sym === EOS) throw new HpackError('Huffman-coded string contains EOS');
        out += String.fromCharCode(sym);
        node = 0;
        depth = 0;
        allOnes = true;
      } else if (next === 0) {
        throw new HpackError('invalid Huffman code');
      } else {
        node = next;
      }
    }
  }
  if (depth > 7) throw new HpackError('Huffman padding longer than 7 bits');
  if (!allOnes) throw new HpackError('Huffman padding is not a prefix of EOS');
  return out;
}

export function huffmanLength(s: string): number {
  let bits = 0;
  for (let i = 0; i < s.length; i++) bits += HUFFMAN_LENGTHS[s.charCodeAt(i) & 0xff]!;
  return Math.ceil(bits / 8);
}

function huffmanEncodeInto(s: string, out: number[]): void {
  let acc = 0; // pending bits, at most 7 + 30 — kept as a float-safe number below 2^53
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const sym = s.charCodeAt(i) & 0xff;
    acc = acc * 2 ** HUFFMAN_LENGTHS[sym]! + HUFFMAN_CODES[sym]!;
    n += HUFFMAN_LENGTHS[sym]!;
    while (n >= 8) {
      n -= 8;
      const byte = Math.floor(acc / 2 ** n);
      out.push(byte);
      acc -= byte * 2 ** n;
    }
  }
  if (n > 0) out.push(((acc << (8 - n)) | (0xff >> n)) & 0xff);
}

// ---- primitives ---------------------------------------------------------------------------------------

function encodeInt(value: number, prefixBits: number, firstByteFlags: number, out: number[]): void {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out.push(firstByteFlags | value);
    return;
  }
  out.push(firstByteFlags | max);
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
}

function encodeString(s: string, out: number[]): void {
  const hlen = huffmanLength(s);
  if (hlen < s.length) {
    encodeInt(hlen, 7, 0x80, out);
    huffmanEncodeInto(s, out);
  } else {
    encodeInt(s.length, 7, 0, out);
    for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i) & 0xff);
  }
}

// ---- encoder ------------------------------------------------------------------------------------------

/** Encodes a header list. Names must already be lower case (HTTP/2 requires it). */
export function encodeHeaders(headers: HeaderList): Buffer {
  const out: number[] = [];
  for (const [name, value] of headers) {
    const full = STATIC_FULL.get(`${name}\0${value}`);
    if (full !== undefined) {
      encodeInt(full, 7, 0x80, out);
      continue;
    }
    const nameIndex = STATIC_NAME.get(name);
    if (nameIndex !== undefined) {
      encodeInt(nameIndex, 4, 0x00, out);
    } else {
      out.push(0x00);
      encodeString(name, out);
    }
    encodeString(value, out);
  }
  return Buffer.from(out);
}

// ---- decoder ------------------------------------------------------------------------------------------

/**
 * One decoder per connection direction; it holds the dynamic table the peer's encoder fills.
 * Invariant: `size` is the RFC 7541 §4.1 size of `entries` and never exceeds `maxSize`.
 */
export class HpackDecoder {
  private entries: Array<[string, string]> = []; // newest first
  private size = 0;
  private maxSize: number;

  /** @param settingsMaxSize our SETTINGS_HEADER_TABLE_SIZE: the most a size update may ask for. */
  constructor(private readonly settingsMaxSize = 4096, private readonly maxHeaderListBytes = 64 * 1024) {
    this.maxSize = settingsMaxSize;
  }

  decode(block: Uint8Array): HeaderList {
    const headers: HeaderList = [];
    let listBytes = 0;
    let pos = 0;
    let sawField = false;
    const end = block.length;

    const readInt = (prefixBits: number): number => {
      if (pos >= end) throw new HpackError('header block truncated');
      const max = (1 << prefixBits) - 1;
      let value = block[pos++]! & max;
      if (value < max) return value;
      let shift = 0;
      for (;;) {
        if (pos >= end) throw new HpackError('header block truncated in an integer');
        const b = block[pos++]!;
        value += (b & 0x7f) * 2 ** shift;
        shift += 7;
        if ((b & 0x80) === 0) break;
        if (shift > 28) throw new HpackError('integer too large');
      }
      return value;
    };
    const readString = (): string => {
      if (pos >= end) throw new HpackError('header block truncated');
      const huffman = (block[pos]! & 0x80) !== 0;
      const len = readInt(7);
      if (pos + len > end) throw new HpackError('string runs past the end of the header block');
      const s = huffman
        ? huffmanDecode(block, pos, pos + len)
        : Buffer.from(block.buffer, block.byteOffset + pos, len).toString('latin1');
      pos += len;
      return s;
    };
    const emit = (name: string, value: string): void => {
      listBytes += name.length + value.length + 32;
      if (listBytes > this.maxHeaderListBytes) throw new HpackError('header list too large');
      headers.push([name, value]);
    };

    while (pos < end) {
      const b = block[pos]!;
      if (b & 0x80) {
        const [name, value] = this.lookup(readInt(7));
        emit(name, value);
        sawField = true;
      } else if (b & 0x40) {
        const index = readInt(6);
        const name = index === 0 ? readString() : this.lookup(index)[0];
        const value = readString();
        this.insert(name, value);
        emit(name, value);
        sawField = true;
      } else if (b & 0x20) {
        if (sawField) throw new HpackError('dynamic table size update after a header field');
        const size = readInt(5);
        if (size > this.settingsMaxSize) throw new HpackError(`table size update ${size} above the ${this.settingsMaxSize} we allowed`);
        this.maxSize = size;
        this.evict(0);
      } else {
        // 0000xxxx without indexing, 0001xxxx never indexed: the same for a decoder.
        const index = readInt(4);
        const name = index === 0 ? readString() : this.lookup(index)[0];
        const value = readString();
        emit(name, value);
        sawField = true;
      }
    }
    return headers;
  }

  private lookup(index: number): readonly [string, string] {
    if (index === 0) throw new HpackError('index 0');
    if (index <= STATIC_COUNT) return STATIC_TABLE[index]!;
    const entry = this.entries[index - STATIC_COUNT - 1];
    if (entry === undefined) throw new HpackError(`index ${index} is beyond the dynamic table`);
    return entry;
  }

  private insert(name: string, value: string): void {
    const entrySize = name.length + value.length + 32;
    if (entrySize > this.maxSize) {
      this.entries = [];
      this.size = 0;
      return;
    }
    this.evict(entrySize);
    this.entries.unshift([name, value]);
    this.size += entrySize;
  }

  private evict(room: number): void {
    while (this.size + room > this.maxSize && this.entries.length > 0) {
      const [n, v] = this.entries.pop()!;
      this.size -= n.length + v.length + 32;
    }
  }
}
