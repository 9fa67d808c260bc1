/**
 * Fuzzing HBONE's CONNECT parsing (src/hbone/wire.ts): `parseAuthority`, `parseForwardedFor` and
 * `sanitizeReason` are total (never throw, whatever a peer puts in a header) and agree with their formatters.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isIPv4, isIPv6 } from 'node:net';
import fc from 'fast-check';
import {
  MAX_REASON_CHARS,
  formatAuthority,
  formatForwarded,
  parseAuthority,
  parseForwardedFor,
  sanitizeReason,
} from '../../src/hbone/wire.js';
import { HpackDecoder, encodeHeaders } from '../../src/hbone/h2/hpack.js';
import { latin1Arb } from './h2-corpus.js';
import { fuzzParams, testTimeoutMs } from './kit.js';

/** Header values as a peer may send them (latin1 octets), and anything JavaScript strings can hold. */
const textArb = fc.oneof(latin1Arb(80), fc.string({ maxLength: 80 }), fc.string({ unit: 'grapheme', maxLength: 40 }));

/** Strings built from the pieces these parsers look for, so that the interesting branches are reached. */
const authorityLikeArb = fc.array(
  fc.oneof(fc.constantFrom('[', ']', ':', '.', '::', '%', '0', '1', '255', '256', '65535', '65536', '00080', 'ffff', 'fe80', ' ', '\0'), fc.ipV4(), fc.ipV6(), fc.nat({ max: 99_999 }).map(String)),
  { maxLength: 8 },
).map((parts) => parts.join(''));

const forwardedLikeArb = fc.array(
  fc.oneof(
    fc.constantFrom('for=', 'For=', 'FOR =', 'by=', 'proto=https', ';', ',', '"', '[', ']', ':', '=', ' ', 'unknown', '_hidden', ':8080'),
    fc.ipV4(), fc.ipV6(), fc.ipV4Extended(),
  ),
  { maxLength: 10 },
).map((parts) => parts.join(''));

const ipArb = fc.oneof(fc.ipV4(), fc.ipV6());

describe('fuzz: HBONE CONNECT parsing', () => {
  it('parseAuthority never throws and returns only ip:port targets with ports 1..65535', { timeout: testTimeoutMs(5000, 0.1) }, () => {
    fc.assert(
      fc.property(fc.oneof(textArb, authorityLikeArb), (s) => {
        const t = parseAuthority(s);
        if (t === undefined) return;
        assert.ok(isIPv4(t.host) || isIPv6(t.host), `host ${t.host} is an IP address`);
        assert.ok(Number.isInteger(t.port) && t.port >= 1 && t.port <= 65_535, `port ${t.port} is in range`);
        // and what it accepted formats back to an authority that parses to the same target
        assert.deepEqual(parseAuthority(formatAuthority(t.host, t.port)), t);
      }),
      fuzzParams('wire parseAuthority', 5000),
    );
  });

  it('formatAuthority → parseAuthority gives back every IPv4/IPv6 target', { timeout: testTimeoutMs(5000, 0.1) }, () => {
    fc.assert(
      fc.property(ipArb, fc.integer({ min: 1, max: 65_535 }), (host, port) => {
        assert.deepEqual(parseAuthority(formatAuthority(host, port)), { host, port });
      }),
      fuzzParams('wire authority round trip', 5000),
    );
  });

  it('parseForwardedFor never throws and returns only bare IP addresses', { timeout: testTimeoutMs(5000, 0.1) }, () => {
    fc.assert(
      fc.property(fc.oneof(textArb, forwardedLikeArb, fc.array(fc.oneof(textArb, forwardedLikeArb), { maxLength: 3 }), fc.constant(undefined)), (v) => {
        const ip = parseForwardedFor(v);
        if (ip !== undefined) assert.ok(isIPv4(ip) || isIPv6(ip), `"${ip}" is a bare IP address`);
      }),
      fuzzParams('wire parseForwardedFor', 5000),
    );
  });

  it('parseForwardedFor reads back what formatForwarded wrote, also after other elements and parameters', { timeout: testTimeoutMs(5000, 0.1) }, () => {
    fc.assert(
      fc.property(ipArb, fc.constantFrom('', ';proto=https', ';by=unknown'), fc.constantFrom('', ', for="10.9.9.9"', ', unknown'), (ip, params, more) => {
        assert.equal(parseForwardedFor(formatForwarded(ip)), ip);
        assert.equal(parseForwardedFor(`${formatForwarded(ip)}${params}${more}`), ip);
        assert.equal(parseForwardedFor(`proto=https;${formatForwarded(ip)}${more}`), ip);
      }),
      fuzzParams('wire forwarded round trip', 5000),
    );
  });

  it('sanitizeReason never throws, keeps printable ASCII only, caps the length, is idempotent, and is a valid header value', { timeout: testTimeoutMs(5000, 0.2) }, () => {
    fc.assert(
      fc.property(fc.oneof(textArb, fc.string({ minLength: MAX_REASON_CHARS - 8, maxLength: MAX_REASON_CHARS + 64 })), (reason) => {
        const clean = sanitizeReason(reason);
        assert.match(clean, /^[\x20-\x7e]*$/);
        assert.ok(clean.length <= MAX_REASON_CHARS, `${clean.length} chars`);
        assert.equal(clean, clean.trim(), 'no leading or trailing spaces');
        assert.equal(sanitizeReason(clean), clean);
        assert.deepEqual(new HpackDecoder().decode(encodeHeaders([['x-strait-reason', clean]])), [['x-strait-reason', clean]]);
      }),
      fuzzParams('wire sanitizeReason', 5000),
    );
  });
});
