/**
 * Server role, "hpack" group: RFC 7541 decoding errors, each a connection error COMPRESSION_ERROR
 * (RFC 9113 §4.3). Numbering follows h2spec's hpack group.
 */
import { H2Code, Setting } from '../../src/hbone/h2/frames.js';
import { encodeHeaders } from '../../src/hbone/h2/hpack.js';
import { connectionError, type CaseContext, type ServerCase } from './case.js';
import { serverCase } from './define.js';

function decodingError(id: string, rfc: string, description: string, block: (ctx: CaseContext) => Buffer): ServerCase {
  return serverCase(id, rfc, 'HPACK', description, 'connection error COMPRESSION_ERROR', async (ctx) => {
    await ctx.handshake();
    ctx.peer.sendHeaders(1, block(ctx), { endStream: true });
    return connectionError(ctx, [H2Code.COMPRESSION_ERROR]);
  });
}

function after(ctx: CaseContext, hex: string): Buffer {
  return Buffer.concat([encodeHeaders(ctx.request()), Buffer.from(hex, 'hex')]);
}

/** A dynamic table size update (prefix 001, 5-bit integer) of `size`. */
function sizeUpdate(size: number): Buffer {
  if (size < 31) return Buffer.from([0x20 | size]);
  const out = [0x20 | 31];
  let rest = size - 31;
  while (rest >= 128) {
    out.push((rest % 128) | 0x80);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return Buffer.from(out);
}

export const HPACK_CASES: ServerCase[] = [
  decodingError('hpack/2.3.3/1', 'RFC 7541 §2.3.3', 'Sends an indexed representation with an index beyond both tables', (ctx) => after(ctx, 'fe')), // index 126
  decodingError('hpack/4.2/1', 'RFC 7541 §4.2', 'Sends a dynamic table size update at the end of a header block', (ctx) => after(ctx, '21')),
  decodingError('hpack/5.2/1', 'RFC 7541 §5.2', 'Sends a Huffman-coded string with padding longer than 7 bits', (ctx) =>
    // name "x-test" (Huffman), value "test" Huffman-coded with one extra all-ones octet of padding
    after(ctx, '0085f2b24a84ff8449509fff')),
  decodingError('hpack/5.2/2', 'RFC 7541 §5.2', 'Sends a Huffman-coded string padded with zeros', (ctx) => after(ctx, '0085f2b24a84ff83495090')),
  decodingError('hpack/5.2/3', 'RFC 7541 §5.2', 'Sends a Huffman-coded string containing the EOS symbol', (ctx) =>
    // value: "t" then the 30-bit EOS code, padded with ones
    after(ctx, '0085f2b24a84ff854fffffffff')),
  decodingError('hpack/6.1/1', 'RFC 7541 §6.1', 'Sends an indexed representation with index 0', (ctx) => after(ctx, '80')),
  decodingError('hpack/6.3/1', 'RFC 7541 §6.3', 'Sends a dynamic table size update above SETTINGS_HEADER_TABLE_SIZE', (ctx) =>
    Buffer.concat([sizeUpdate((ctx.serverSettings.get(Setting.HEADER_TABLE_SIZE) ?? 4096) + 1), encodeHeaders(ctx.request())])),
];
