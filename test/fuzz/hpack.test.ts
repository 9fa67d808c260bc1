/**
 * Fuzzing HPACK directly: HpackDecoder on arbitrary bytes, on valid blocks (ours, and a model encoder's that uses
 * the dynamic table) and on those mutated; huffmanDecode on arbitrary bytes and on valid codes.
 *
 * Properties: decoding is total (a header list or an HpackError, never another exception); a decoded list never
 * exceeds the decoder's header-list limit; valid blocks decode to exactly what was encoded, across several blocks
 * sharing one dynamic table (the model encoder mirrors RFC 7541 §4 eviction); Huffman decoding is total and
 * inverts the encoder.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { HpackDecoder, HpackError, encodeHeaders, huffmanDecode, huffmanLength, type HeaderList } from '../../src/hbone/h2/hpack.js';
import { ModelEncoder, headerNameArb, hpackOpArb, latin1Arb, type HpackOp } from './h2-corpus.js';
import { fuzzParams, mutate, byteMutationArb, testTimeoutMs } from './kit.js';

const LIST_LIMIT = 4096;

/** Decodes, classifying the outcome; any exception other than HpackError fails the property. */
function decodeTotal(decoder: HpackDecoder, block: Uint8Array): HeaderList | HpackError {
  try {
    return decoder.decode(block);
  } catch (err) {
    if (err instanceof HpackError) return err;
    throw new Error(`HpackDecoder threw a ${(err as Error)?.name ?? typeof err} instead of an HpackError: ${String(err)}`, { cause: err });
  }
}

function listBytes(list: HeaderList): number {
  return list.reduce((n, [name, value]) => n + name.length + value.length + 32, 0);
}

function checkList(list: HeaderList | HpackError, limit: number): void {
  if (list instanceof HpackError) return;
  assert.ok(listBytes(list) <= limit, `a decoded header list of ${listBytes(list)} bytes is above the ${limit}-byte limit`);
  for (const [name, value] of list) {
    assert.equal(typeof name, 'string');
    assert.equal(typeof value, 'string');
    for (const s of [name, value]) for (let i = 0; i < s.length; i++) assert.ok(s.charCodeAt(i) <= 0xff, 'header octets decode to latin1 chars');
  }
}

/** The Huffman-coded bytes encodeHeaders wrote for `value` (a literal with a new name "x"), or undefined when it chose raw octets. */
function huffmanBytesOf(value: string): Buffer | undefined {
  const block = encodeHeaders([['x', value]]);
  // 0x00 (literal, new name) | name: 0x01 'x' (1 byte is never Huffman-shorter) | value: H + length (7-bit prefix int) | bytes
  let pos = 3;
  const huffman = (block[pos]! & 0x80) !== 0;
  let len = block[pos++]! & 0x7f;
  if (len === 0x7f) {
    let shift = 0;
    for (;;) {
      const b = block[pos++]!;
      len += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if ((b & 0x80) === 0) break;
    }
  }
  return huffman ? block.subarray(pos, pos + len) : undefined;
}

const blockOpsArb = fc.array(fc.array(hpackOpArb, { minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 6 });

describe('fuzz: HPACK decoder', () => {
  it('decodes arbitrary bytes to a header list or an HpackError, within the list limit', { timeout: testTimeoutMs(3000, 0.2) }, () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 512 }), { minLength: 1, maxLength: 4 }), fc.constantFrom(0, 64, 4096), (blocks, tableSize) => {
        const decoder = new HpackDecoder(tableSize, LIST_LIMIT);
        for (const b of blocks) {
          const r = decodeTotal(decoder, b);
          checkList(r, LIST_LIMIT);
          if (r instanceof HpackError) break; // the connection would be gone (COMPRESSION_ERROR)
        }
      }),
      fuzzParams('hpack arbitrary', 3000),
    );
  });

  it('decodes what encodeHeaders wrote, exactly', { timeout: testTimeoutMs(2000, 0.3) }, () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.oneof(headerNameArb, fc.constantFrom(':method', ':authority', ':status', ':path', 'content-length')), latin1Arb(300)), { maxLength: 12 }), (list) => {
        const decoded = new HpackDecoder(4096, 1 << 20).decode(encodeHeaders(list));
        assert.deepEqual(decoded, list);
      }),
      fuzzParams('hpack round trip', 2000),
    );
  });

  it('keeps its dynamic table in step with an encoder that inserts, references and resizes, block after block', { timeout: testTimeoutMs(2000, 0.5) }, () => {
    fc.assert(
      fc.property(blockOpsArb, (blocks) => {
        const model = new ModelEncoder(4096);
        const decoder = new HpackDecoder(4096, 1 << 20);
        for (const ops of blocks) {
          // size updates are only legal at the start of a block (the model skips misplaced ones) and up to our
          // SETTINGS_HEADER_TABLE_SIZE (4096; above it is a decoding error, tested with the mutated blocks)
          const { block, expected } = model.encode(ops.map((o) => (o.op === 'size' ? { ...o, size: Math.min(o.size, 4096) } : o)));
          assert.deepEqual(decoder.decode(block), expected);
        }
      }),
      fuzzParams('hpack dynamic table', 2000),
    );
  });

  it('decodes mutated valid blocks to a header list or an HpackError, within the list limit', { timeout: testTimeoutMs(3000, 0.5) }, () => {
    fc.assert(
      fc.property(blockOpsArb, blockOpsArb, fc.array(byteMutationArb, { minLength: 1, maxLength: 6 }), (a, b, mutations) => {
        const model = new ModelEncoder(4096);
        const other = new ModelEncoder(4096).encode(b.flat() as HpackOp[]).block;
        const decoder = new HpackDecoder(4096, LIST_LIMIT);
        for (const ops of a) {
          const { block } = model.encode(ops);
          const r = decodeTotal(decoder, mutate({ bytes: block, frameStarts: [] }, { bytes: other, frameStarts: [] }, mutations));
          checkList(r, LIST_LIMIT);
          if (r instanceof HpackError) break;
        }
      }),
      fuzzParams('hpack mutated', 3000),
    );
  });
});

describe('fuzz: Huffman decoder', () => {
  it('decodes arbitrary bytes to a string or an HpackError', { timeout: testTimeoutMs(5000, 0.1) }, () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => {
        try {
          const s = huffmanDecode(bytes, 0, bytes.length);
          assert.ok(s.length <= Math.ceil((bytes.length * 8) / 5), 'the shortest code is 5 bits');
        } catch (err) {
          if (!(err instanceof HpackError)) throw err;
        }
      }),
      fuzzParams('huffman arbitrary', 5000),
    );
  });

  it('inverts the Huffman encoder, and rejects its output with a byte more of padding', { timeout: testTimeoutMs(3000, 0.2) }, () => {
    fc.assert(
      fc.property(latin1Arb(200), (value) => {
        const bytes = huffmanBytesOf(value);
        if (bytes === undefined) return; // raw octets were shorter: nothing to decode
        assert.equal(bytes.length, huffmanLength(value));
        assert.equal(huffmanDecode(bytes, 0, bytes.length), value);
        // One more byte of ones: padding of 8 or more bits (RFC 7541 §5.2 allows at most 7).
        const padded = Buffer.concat([bytes, Buffer.from([0xff])]);
        assert.throws(() => huffmanDecode(padded, 0, padded.length), HpackError);
      }),
      fuzzParams('huffman round trip', 3000),
    );
  });
});
