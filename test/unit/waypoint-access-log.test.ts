import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { ACCESS_LOG_MSG, boundedText, formatAccessLog, istioTextLine } from '../../src/waypoint/telemetry/access-log.js';
import { record } from '../helpers/request-record.js';

/** A real pino logger writing JSON lines into memory. */
function capture(): { lines: Record<string, any>[]; raw: string[]; logger: pino.Logger } {
  const lines: Record<string, any>[] = [];
  const raw: string[] = [];
  const sink = new Writable({ write(chunk, _enc, cb) { for (const l of String(chunk).split('\n')) if (l) { raw.push(l); lines.push(JSON.parse(l)); } cb(); } });
  return { lines, raw, logger: pino({ level: 'info' }, sink) };
}

test('one JSON line per request with the fixed field names and the values of the record', () => {
  const { lines, logger } = capture();
  logger.info(formatAccessLog(record({ responseFlags: ['URX', 'UF'], status: 503, attempts: 3, traceId: '4bf92f3577b34da6a3ce929d0e0e4736', policy: undefined })), ACCESS_LOG_MSG);
  assert.equal(lines.length, 1);
  const l = lines[0]!;
  assert.equal(l.msg, 'request complete');
  assert.deepEqual(
    Object.fromEntries(Object.entries(l).filter(([k]) => !['level', 'time', 'pid', 'hostname', 'msg'].includes(k))),
    {
      'src.addr': '127.0.10.3:40112', 'src.workload': 'productpage-v1-7d9f', 'src.namespace': 'bookinfo',
      'src.identity': 'spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage',
      'dst.service': 'reviews.bookinfo.svc.cluster.local', 'dst.workload': 'reviews-v2-55b', 'dst.namespace': 'bookinfo',
      'dst.identity': 'spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews',
      upstream: '127.0.10.7:9080', upstream_cluster: 'outbound|9080|v2|reviews.bookinfo.svc.cluster.local',
      method: 'GET', authority: 'reviews:9080', path: '/reviews/1', protocol: 'HTTP/1.1', status: 503, response_flags: 'UF,URX',
      duration_ms: 12.5, bytes_sent: 2300, bytes_recv: 120, route: 'VirtualService/bookinfo/reviews/http[0]', attempts: 3,
      trace_id: '4bf92f3577b34da6a3ce929d0e0e4736', request_id: 'a6f1c0de-1111-4222-8333-944455556666', user_agent: 'curl/8.5.0',
    },
  );
});

test('a denied request names the policy that decided; a gRPC one its protocol and status', () => {
  const denied = formatAccessLog(record({ status: 403, attempts: 0, upstream: undefined, upstreamCluster: undefined, policy: 'bookinfo/reviews-deny', error: 'rbac_access_denied' }));
  assert.equal(denied.policy, 'bookinfo/reviews-deny');
  assert.equal(denied.attempts, 0);
  assert.equal(denied.error, 'rbac_access_denied');
  assert.equal(denied.upstream, undefined);
  const grpc = formatAccessLog(record({ protocol: 'HTTP/2', grpc: true, grpcStatus: 5 }));
  assert.equal(grpc.protocol, 'HTTP/2 gRPC');
  assert.equal(grpc.grpc_status, 5);
});

test('an audited request names the AUDIT policies that matched', () => {
  assert.equal(formatAccessLog(record({ audited: ['shop/audit-a', 'shop/audit-b'] })).audit, 'shop/audit-a,shop/audit-b');
  assert.equal(formatAccessLog(record({})).audit, undefined);
});

test('control characters in client-chosen fields are escaped, so a request cannot forge a second line or terminal codes', () => {
  const { lines, raw, logger } = capture();
  const evil = '/a\r\n{"level":30,"msg":"request complete","path":"/forged"}\u001b[31m\u0000\u2028end';
  logger.info(formatAccessLog(record({ path: evil, authority: 'x\ny', userAgent: 'ua\u0007', method: 'GE\tT', requestId: 'id\u009b' })), ACCESS_LOG_MSG);
  assert.equal(raw.length, 1);
  assert.equal(lines[0]!.path, '/a\\x0d\\x0a{"level":30,"msg":"request complete","path":"/forged"}\\x1b[31m\\x00\\u2028end');
  assert.equal(lines[0]!.authority, 'x\\x0ay');
  assert.equal(lines[0]!.user_agent, 'ua\\x07');
  assert.equal(lines[0]!.method, 'GE\\x09T');
  assert.equal(lines[0]!.request_id, 'id\\x9b');
  // Nothing but printable text in the raw line either (JSON would have escaped them, a pretty printer would not).
  assert.doesNotMatch(raw[0]!, /[\u0000-\u001f\u007f-\u009f]/);
});

test('a long path is cut to the bound and marked, an escape is never cut in half', () => {
  const long = '/' + 'a'.repeat(5000);
  const l = formatAccessLog(record({ path: long }));
  assert.equal((l.path as string).length, 1024);
  assert.ok((l.path as string).endsWith('…'));
  assert.equal(formatAccessLog(record({ path: long }), { pathMaxChars: 64 }).path, '/' + 'a'.repeat(62) + '…');
  // Exactly at the bound: kept whole.
  assert.equal(boundedText('x'.repeat(10), 10), 'x'.repeat(10));
  assert.equal(boundedText('x'.repeat(11), 10), 'x'.repeat(9) + '…');
  // "\x0a" is four characters; with room for three it is dropped whole.
  assert.equal(boundedText('abcdef\n' + 'z'.repeat(20), 10), 'abcdef…');
  assert.equal(boundedText('ab\ncd', 10), 'ab\\x0acd');
  // A surrogate pair is never split.
  assert.equal(boundedText('abcdefgh😀zz', 10), 'abcdefgh…');
  for (let max = 2; max < 40; max++) {
    const out = boundedText('\u0001😀a\n'.repeat(20), max);
    assert.ok(out.length <= max, `max ${max}: ${out.length}`);
    assert.doesNotMatch(out, /[\ud800-\udbff](?![\udc00-\udfff])/);
  }
});

test('the Istio text line shows what Envoy\'s default format would, "-" for what is unknown', () => {
  const line = istioTextLine(record({ status: 503, responseFlags: ['UF'], error: 'upstream connect error', durationMs: 12.6, userAgent: 'say "hi"' }));
  assert.equal(line,
    '[2025-01-02T03:04:05.000Z] "GET /reviews/1 HTTP/1.1" 503 UF upstream_connect_error - "-" 120 2300 13 - "-" "say \\x22hi\\x22" '
    + '"a6f1c0de-1111-4222-8333-944455556666" "reviews:9080" "127.0.10.7:9080" outbound|9080|v2|reviews.bookinfo.svc.cluster.local - - '
    + '127.0.10.3:40112 - VirtualService/bookinfo/reviews/http[0]');
  const bare = istioTextLine(record({ userAgent: undefined, requestId: undefined, upstream: undefined, upstreamCluster: undefined, route: undefined, source: {}, status: 0 }));
  assert.match(bare, /^\[.*\] "GET \/reviews\/1 HTTP\/1\.1" 0 - - - "-" 120 2300 13 - "-" "-" "-" "reviews:9080" "-" - - - - - -$/);
  assert.equal(formatAccessLog(record(), { istioLine: true }).line, istioTextLine(record()));
  assert.equal(formatAccessLog(record()).line, undefined);
});
