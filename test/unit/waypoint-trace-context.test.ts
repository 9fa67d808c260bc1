import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  TRACE_HEADER_NAMES, newSpanId, newTraceId, outgoingTraceHeaders, parseIncomingTrace, parseTraceparent, parseTracestate, requestIdOf,
} from '../../src/waypoint/telemetry/trace-context.js';

const T = '4bf92f3577b34da6a3ce929d0e0e4736';
const S = '00f067aa0ba902b7';

test('a valid W3C traceparent gives the trace id, the caller\'s span and its sampled flag', () => {
  assert.deepEqual(parseTraceparent(`00-${T}-${S}-01`), { traceId: T, spanId: S, sampled: true });
  assert.deepEqual(parseTraceparent(`00-${T}-${S}-00`), { traceId: T, spanId: S, sampled: false });
  // Only bit 0 is the sampled flag.
  assert.equal(parseTraceparent(`00-${T}-${S}-02`)?.sampled, false);
  assert.equal(parseTraceparent(`00-${T}-${S}-03`)?.sampled, true);
  // A later version may add fields after a dash; its first four fields are read.
  assert.deepEqual(parseTraceparent(`01-${T}-${S}-01-what-ever`), { traceId: T, spanId: S, sampled: true });
});

test('a malformed traceparent counts as absent', () => {
  for (const bad of [
    `00-${T.toUpperCase()}-${S}-01`, `00-${T}-${S.toUpperCase()}-01`, // upper case hex
    `ff-${T}-${S}-01`, // version ff is invalid
    `00-${'0'.repeat(32)}-${S}-01`, `00-${T}-${'0'.repeat(16)}-01`, // all-zero ids
    `00-${T}-${S}-01-extra`, // version 00 has exactly four fields
    `01-${T}-${S}-01extra`, // a later version's extra fields start with a dash
    `00-${T.slice(1)}-${S}-01`, `00-${T}-${S}-1`, `00_${T}_${S}_01`, `0x-${T}-${S}-01`, `00-${T}-${S}-0g`, '', 'garbage',
  ]) assert.equal(parseTraceparent(bad), undefined, bad);
  // Two traceparent headers (Node gives an array, or joins them) are ambiguous.
  assert.equal(parseTraceparent([`00-${T}-${S}-01`, `00-${T}-${S}-01`]), undefined);
  assert.equal(parseTraceparent(`00-${T}-${S}-01, 00-${T}-${S}-01`), undefined);
  assert.equal(parseIncomingTrace({ traceparent: `00-${T}-${S}-0`, tracestate: 'a=b' }).format, 'none');
});

test('tracestate is passed on when well formed and within W3C\'s bounds, and only with a valid traceparent', () => {
  assert.equal(parseTracestate('rojo=00f067aa0ba902b7, congo=t61rcWkgMzE'), 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE');
  assert.equal(parseTracestate(['a=1', 'b@vendor=2']), 'a=1,b@vendor=2');
  assert.equal(parseTracestate('a=1,,b=2'), 'a=1,b=2');
  assert.equal(parseTracestate('A=1'), undefined, 'keys are lower case');
  assert.equal(parseTracestate('a=1,a=2'), undefined, 'duplicate key');
  assert.equal(parseTracestate('a=x y,'), 'a=x y');
  assert.equal(parseTracestate('a=x,y'), undefined);
  assert.equal(parseTracestate('a=\u0001'), undefined);
  assert.equal(parseTracestate(Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(',')), undefined, 'more than 32 members');
  assert.equal(parseTracestate(`a=${'v'.repeat(250)},b=${'v'.repeat(250)},c=${'v'.repeat(20)}`), undefined, 'over 512 characters');
  assert.equal(parseIncomingTrace({ traceparent: `00-${T}-${S}-01`, tracestate: 'a=1' }).traceState, 'a=1');
  assert.equal(parseIncomingTrace({ 'x-b3-traceid': T, 'x-b3-spanid': S, tracestate: 'a=1' }).traceState, undefined);
});

test('B3 headers: 128- and 64-bit trace ids, the sampled and debug flags, and a decision without ids', () => {
  assert.deepEqual(parseIncomingTrace({ 'x-b3-traceid': T, 'x-b3-spanid': S, 'x-b3-parentspanid': 'aaaaaaaaaaaaaaaa', 'x-b3-sampled': '1' }),
    { format: 'b3', traceId: T, parentSpanId: S, sampled: true, debug: false, traceId64: false });
  assert.deepEqual(parseIncomingTrace({ 'x-b3-traceid': 'a3ce929d0e0e4736', 'x-b3-spanid': S }),
    { format: 'b3', traceId: '0000000000000000a3ce929d0e0e4736', parentSpanId: S, sampled: undefined, debug: false, traceId64: true });
  assert.equal(parseIncomingTrace({ 'x-b3-traceid': T, 'x-b3-spanid': S, 'x-b3-sampled': 'true' }).sampled, true);
  assert.equal(parseIncomingTrace({ 'x-b3-traceid': T, 'x-b3-spanid': S, 'x-b3-sampled': '0' }).sampled, false);
  assert.equal(parseIncomingTrace({ 'x-b3-traceid': T, 'x-b3-spanid': S, 'x-b3-sampled': 'yes' }).sampled, undefined);
  const debug = parseIncomingTrace({ 'x-b3-traceid': T, 'x-b3-spanid': S, 'x-b3-flags': '1', 'x-b3-sampled': '0' });
  assert.equal(debug.debug, true);
  assert.equal(debug.sampled, true);
  assert.deepEqual(parseIncomingTrace({ 'x-b3-sampled': '0' }), { format: 'none', sampled: false, debug: false, traceId64: false });
  // Ids must be valid as a pair; the decision still counts when they are not.
  assert.deepEqual(parseIncomingTrace({ 'x-b3-traceid': T, 'x-b3-spanid': 'nothex!!nothex!!', 'x-b3-sampled': '1' }), { format: 'none', sampled: true, debug: false, traceId64: false });
  for (const [traceId, spanId] of [[T.toUpperCase(), S], [T, '0'.repeat(16)], ['0'.repeat(16), S], [T + 'a', S], [T, S + '0'], [T, undefined]]) {
    assert.equal(parseIncomingTrace({ 'x-b3-traceid': traceId, 'x-b3-spanid': spanId }).traceId, undefined, `${traceId} ${spanId}`);
  }
});

test('the single b3 header in all its forms', () => {
  assert.deepEqual(parseIncomingTrace({ b3: `${T}-${S}-1-aaaaaaaaaaaaaaaa` }),
    { format: 'b3-single', traceId: T, parentSpanId: S, sampled: true, debug: false, traceId64: false });
  assert.deepEqual(parseIncomingTrace({ b3: `${T}-${S}` }),
    { format: 'b3-single', traceId: T, parentSpanId: S, sampled: undefined, debug: false, traceId64: false });
  assert.equal(parseIncomingTrace({ b3: `a3ce929d0e0e4736-${S}-d` }).debug, true);
  assert.equal(parseIncomingTrace({ b3: `a3ce929d0e0e4736-${S}-d` }).sampled, true);
  assert.deepEqual(parseIncomingTrace({ b3: '0' }), { format: 'none', sampled: false, debug: false, traceId64: false });
  assert.equal(parseIncomingTrace({ b3: 'd' }).debug, true);
  for (const bad of [`${T}-${S}-2`, `${T}-${S}-1-xyz`, `${T}`, `${T}-${S}-1-${S}-x`, `${T}--1`, '-', 'true']) {
    assert.equal(parseIncomingTrace({ b3: bad }).traceId, undefined, bad);
    assert.equal(parseIncomingTrace({ b3: bad }).sampled, undefined, bad);
  }
});

test('traceparent wins over B3, and the single b3 header over the x-b3 ones', () => {
  const other = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
  const both = parseIncomingTrace({ traceparent: `00-${T}-${S}-00`, 'x-b3-traceid': other, 'x-b3-spanid': S, 'x-b3-sampled': '1' });
  assert.equal(both.format, 'w3c');
  assert.equal(both.traceId, T);
  assert.equal(both.sampled, false);
  // An invalid traceparent falls back to B3.
  assert.equal(parseIncomingTrace({ traceparent: 'bogus', 'x-b3-traceid': other, 'x-b3-spanid': S }).traceId, other);
  assert.equal(parseIncomingTrace({ b3: `${T}-${S}-1`, 'x-b3-traceid': other, 'x-b3-spanid': S }).traceId, T);
  assert.equal(parseIncomingTrace({ b3: 'garbage', 'x-b3-traceid': other, 'x-b3-spanid': S }).traceId, other);
});

test('no header value, however malformed, makes parsing throw', () => {
  const value = fc.oneof(fc.string({ maxLength: 80 }), fc.array(fc.string({ maxLength: 40 }), { maxLength: 3 }), fc.constant(undefined), fc.integer());
  const idish = fc.oneof(value, fc.stringMatching(/^[0-9a-fA-F-]{0,70}$/), fc.constantFrom(`00-${T}-${S}-01`, `${T}-${S}-1`, T, S, '1', '0', 'd'));
  fc.assert(fc.property(fc.record({
    traceparent: idish, tracestate: value, b3: idish, 'x-b3-traceid': idish, 'x-b3-spanid': idish, 'x-b3-parentspanid': idish,
    'x-b3-sampled': idish, 'x-b3-flags': idish, 'x-request-id': value,
  }, { requiredKeys: [] }), (h) => {
    const t = parseIncomingTrace(h as Record<string, string>);
    if (t.traceId !== undefined) assert.match(t.traceId, /^[0-9a-f]{32}$/);
    if (t.parentSpanId !== undefined) assert.match(t.parentSpanId, /^[0-9a-f]{16}$/);
    assert.match(requestIdOf(h as Record<string, string>).id, /^[\x21-\x7e]{1,128}$/);
  }), { numRuns: 3000 });
});

test('the upstream request carries the client span\'s context in W3C and B3 form', () => {
  const h = outgoingTraceHeaders({ traceId: T, spanId: 'bbbbbbbbbbbbbbbb', parentSpanId: S, sampled: true, debug: false, traceState: 'a=1', traceId64: false, b3Single: false });
  assert.deepEqual(h, {
    traceparent: `00-${T}-bbbbbbbbbbbbbbbb-01`, tracestate: 'a=1',
    'x-b3-traceid': T, 'x-b3-spanid': 'bbbbbbbbbbbbbbbb', 'x-b3-parentspanid': S, 'x-b3-sampled': '1',
  });
  const unsampled64 = outgoingTraceHeaders({ traceId: '0000000000000000a3ce929d0e0e4736', spanId: 'bbbbbbbbbbbbbbbb', parentSpanId: S, sampled: false, debug: false, traceId64: true, b3Single: true });
  assert.equal(unsampled64.traceparent, '00-0000000000000000a3ce929d0e0e4736-bbbbbbbbbbbbbbbb-00');
  assert.equal(unsampled64['x-b3-traceid'], 'a3ce929d0e0e4736');
  assert.equal(unsampled64['x-b3-sampled'], '0');
  assert.equal(unsampled64.b3, `a3ce929d0e0e4736-bbbbbbbbbbbbbbbb-0-${S}`);
  assert.equal(unsampled64.tracestate, undefined);
  const debug = outgoingTraceHeaders({ traceId: T, spanId: 'bbbbbbbbbbbbbbbb', parentSpanId: S, sampled: true, debug: true, traceId64: false, b3Single: true });
  assert.equal(debug['x-b3-flags'], '1');
  assert.equal(debug['x-b3-sampled'], undefined);
  assert.equal(debug.b3, `${T}-bbbbbbbbbbbbbbbb-d-${S}`);
  // What is written parses back to the same context.
  const back = parseIncomingTrace(h);
  assert.deepEqual([back.traceId, back.parentSpanId, back.sampled], [T, 'bbbbbbbbbbbbbbbb', true]);
  for (const name of Object.keys(h)) assert.ok((TRACE_HEADER_NAMES as readonly string[]).includes(name), name);
});

test('x-request-id is kept when well formed and generated (UUID v4) when absent or malformed', () => {
  assert.deepEqual(requestIdOf({ 'x-request-id': 'abc-123' }), { id: 'abc-123', generated: false });
  for (const bad of [undefined, '', 'has space', 'x'.repeat(129), ['a', 'b'], 'ctl\u0001']) {
    const r = requestIdOf({ 'x-request-id': bad });
    assert.equal(r.generated, true);
    assert.match(r.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  }
});

test('new ids are lower-case hex of the right width, never zero, and do not repeat', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 5000; i++) {
    const t = newTraceId();
    const s = newSpanId();
    assert.match(t, /^[0-9a-f]{32}$/);
    assert.match(s, /^[0-9a-f]{16}$/);
    assert.ok(!seen.has(t) && !seen.has(s));
    seen.add(t).add(s);
  }
});
