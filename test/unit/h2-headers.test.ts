/**
 * Well-formedness of received header sections (RFC 9113 §8), as a table over the pure checks the connection uses.
 * The conformance tables (test/conformance) check the same rules from the wire.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkRequest, checkResponse, checkTrailers } from '../../src/hbone/h2/headers.js';
import type { HeaderList } from '../../src/hbone/h2/hpack.js';

const CONNECT: HeaderList = [[':method', 'CONNECT'], [':authority', '10.0.0.5:8080']];
const GET: HeaderList = [[':method', 'GET'], [':scheme', 'https'], [':path', '/'], [':authority', 'web']];

describe('checkRequest', () => {
  const wellFormed: Array<[string, HeaderList]> = [
    ['an HBONE CONNECT with its headers', [...CONNECT, ['forwarded', 'for="10.0.0.9"'], ['baggage', 'k8s.namespace.name=shop'], ['traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01']]],
    ['a GET', GET],
    ['te: trailers', [...GET, ['te', 'trailers']]],
    ['a repeated content-length that agrees', [[':method', 'POST'], [':scheme', 'https'], [':path', '/'], ['content-length', '4'], ['content-length', '4']]],
    ['values with inner spaces and latin1 octets', [...CONNECT, ['baggage', 'a=1, b=\u00e9']]],
  ];
  for (const [what, list] of wellFormed) {
    it(`accepts ${what}`, () => assert.ok(!('malformed' in checkRequest(list)), JSON.stringify(checkRequest(list))));
  }

  const malformed: Array<[string, HeaderList, RegExp]> = [
    ['CONNECT with :path', [...CONNECT, [':path', '/']], /:scheme and :path must be omitted/],
    ['CONNECT with :scheme', [[':method', 'CONNECT'], [':scheme', 'https'], [':authority', 'a:1']], /must be omitted/],
    ['CONNECT without :authority', [[':method', 'CONNECT']], /:authority is missing/],
    ['extended CONNECT (:protocol), never enabled', [...CONNECT, [':protocol', 'websocket']], /pseudo-header :protocol is not allowed/],
    ['no :method', [[':authority', 'a:1']], /:method is missing/],
    ['GET without :path', [[':method', 'GET'], [':scheme', 'https']], /:path is missing/],
    ['GET with an empty :path', [[':method', 'GET'], [':scheme', 'https'], [':path', '']], /:path is empty/],
    ['GET without :scheme', [[':method', 'GET'], [':path', '/']], /:scheme is missing/],
    ['a duplicated pseudo-header', [...CONNECT, [':authority', '10.0.0.6:80']], /appears twice/],
    ['a response pseudo-header', [...CONNECT, [':status', '200']], /:status is not allowed/],
    ['a pseudo-header after a regular field', [[':method', 'CONNECT'], ['forwarded', 'for=x'], [':authority', 'a:1']], /after a regular field/],
    ['an upper-case name', [...CONNECT, ['Forwarded', 'x']], /not a lower-case token/],
    ['connection', [...CONNECT, ['connection', 'keep-alive']], /connection-specific field "connection"/],
    ['transfer-encoding', [...GET, ['transfer-encoding', 'chunked']], /connection-specific/],
    ['te other than trailers', [...GET, ['te', 'gzip']], /te may only be "trailers"/],
    ['NUL in a value', [...CONNECT, ['baggage', 'a\u0000b']], /NUL, CR or LF/],
    ['LF in a value', [...CONNECT, ['forwarded', 'for=x\nx-evil: 1']], /NUL, CR or LF/],
    ['a leading space', [...CONNECT, ['baggage', ' a=1']], /white space/],
    ['a trailing tab', [...CONNECT, ['baggage', 'a=1\t']], /white space/],
    ['a content-length that is not a number', [...GET, ['content-length', '1e3']], /content-length/],
    ['content-lengths that disagree', [...GET, ['content-length', '1'], ['content-length', '2']], /content-length/],
  ];
  for (const [what, list, why] of malformed) {
    it(`finds ${what} malformed`, () => {
      const r = checkRequest(list);
      assert.ok('malformed' in r, `${what} was accepted`);
      assert.match(r.malformed, why);
    });
  }

  it('tracks content-length for requests with content, not for CONNECT (its DATA is the tunnel)', () => {
    assert.deepEqual(checkRequest([[':method', 'POST'], [':scheme', 'https'], [':path', '/'], ['content-length', '12']]), { contentLength: 12 });
    assert.deepEqual(checkRequest([...CONNECT, ['content-length', '0']]), {});
  });
});

describe('checkResponse and checkTrailers', () => {
  it('accepts a response and returns its status', () => {
    assert.deepEqual(checkResponse([[':status', '200'], ['x-strait-reason', 'ok']]), { status: 200 });
    assert.deepEqual(checkResponse([[':status', '103']]), { status: 103 });
  });

  const bad: Array<[string, HeaderList]> = [
    ['no :status', [['server', 'x']]],
    ['a two-digit :status', [[':status', '20']]],
    ['a request pseudo-header', [[':status', '200'], [':path', '/']]],
    ['a pseudo-header after a regular one', [['server', 'x'], [':status', '200']]],
    ['connection', [[':status', '200'], ['connection', 'close']]],
    ['CR in a value', [[':status', '200'], ['x-strait-reason', 'a\rb']]],
  ];
  for (const [what, list] of bad) {
    it(`finds a response with ${what} malformed`, () => assert.ok('malformed' in checkResponse(list)));
  }

  it('allows regular fields in trailers, never a pseudo-header', () => {
    assert.equal(checkTrailers([['grpc-status', '0']]), undefined);
    assert.match(checkTrailers([[':status', '200']]) ?? '', /not allowed/);
  });
});
