import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { applyHeaderOps, redirectLocation, rewritePath, shadowAuthority, type HeaderMap, type RedirectInput } from '../../src/waypoint/filters.js';
import type { RequestMatch, RouteRule } from '../../src/common/xds/waypoint-resources.js';

function rule(path?: RequestMatch['path']): RouteRule {
  return { name: 'r', match: path ? { path } : {}, action: { kind: 'forward', backends: [] } };
}
const segPrefix = (value: string) => rule({ type: 'prefix', value, segments: true });

describe('applyHeaderOps', () => {
  it('set replaces every value, add appends with ",", remove deletes; names are case-insensitive', () => {
    const h: HeaderMap = { 'my-header': 'foo', 'x-list': ['a', 'b'], 'x-gone': '1', accept: 'text/html' };
    const r = applyHeaderOps(h, { set: [['Accept', 'application/json']], add: [['My-Header', 'bar'], ['x-list', 'c'], ['x-new', 'n']], remove: ['X-GONE'] });
    assert.deepEqual(r, { ignored: [] });
    assert.deepEqual(h, { 'my-header': 'foo,bar', 'x-list': 'a,b,c', accept: 'application/json', 'x-new': 'n' });
  });

  it('applies remove before set and add (Envoy order), so a removed name can be set anew', () => {
    const h: HeaderMap = { 'x-a': 'old' };
    applyHeaderOps(h, { remove: ['x-a'], add: [['x-a', 'new']] });
    assert.deepEqual(h, { 'x-a': 'new' });
  });

  it('set then add of one name gives "set,added"', () => {
    const h: HeaderMap = { 'x-a': 'orig' };
    applyHeaderOps(h, { set: [['x-a', 's']], add: [['x-a', 'a']] });
    assert.deepEqual(h, { 'x-a': 's,a' });
  });

  it('finds a header whose key is not lower case and replaces it with the lower-case key', () => {
    const h: HeaderMap = { 'X-Mixed': 'v' };
    applyHeaderOps(h, { add: [['x-mixed', 'w']] });
    assert.deepEqual(h, { 'x-mixed': 'v,w' });
  });

  it('never comma-joins set-cookie: added cookies become more values', () => {
    const h: HeaderMap = { 'set-cookie': ['a=1'] };
    applyHeaderOps(h, { add: [['Set-Cookie', 'b=2']] });
    assert.deepEqual(h, { 'set-cookie': ['a=1', 'b=2'] });
    const fresh: HeaderMap = {};
    applyHeaderOps(fresh, { add: [['set-cookie', 'c=3']] });
    assert.deepEqual(fresh, { 'set-cookie': ['c=3'] });
  });

  it('refuses pseudo-headers, hop-by-hop headers and content-length, and says which ops it ignored', () => {
    const h: HeaderMap = { connection: 'keep-alive', 'content-length': '5', 'transfer-encoding': 'chunked' };
    const r = applyHeaderOps(h, {
      set: [[':path', '/x'], ['Connection', 'close'], ['content-length', '0'], ['upgrade', 'websocket']],
      add: [['te', 'trailers'], ['keep-alive', '1'], ['proxy-connection', 'x'], ['trailer', 'x']],
      remove: ['transfer-encoding', ':authority'],
    });
    assert.deepEqual(h, { connection: 'keep-alive', 'content-length': '5', 'transfer-encoding': 'chunked' });
    assert.deepEqual(r.ignored, ['remove transfer-encoding', 'remove :authority', 'set :path', 'set connection', 'set content-length', 'set upgrade',
      'add te', 'add keep-alive', 'add proxy-connection', 'add trailer']);
  });

  it('host is the authority: set returns it, add and remove are ignored, the map keeps no host op', () => {
    const h: HeaderMap = { host: 'a:80' };
    const r = applyHeaderOps(h, { set: [['Host', 'b.example']], add: [['host', 'c']], remove: ['host'] });
    assert.deepEqual(r, { authority: 'b.example', ignored: ['remove host', 'add host'] });
    assert.deepEqual(h, { host: 'a:80' });
  });

  it('no ops changes nothing', () => {
    const h: HeaderMap = { a: '1' };
    assert.deepEqual(applyHeaderOps(h, undefined), { ignored: [] });
    assert.deepEqual(h, { a: '1' });
  });
});

describe('rewritePath', () => {
  it('ReplacePrefixMatch follows the Gateway API table, edge cases included', () => {
    // request path, prefix match, replacement, result (Gateway API HTTPPathModifier)
    const cases: [string, string, string, string][] = [
      ['/foo/bar', '/foo', '/xyz', '/xyz/bar'],
      ['/foo/bar', '/foo', '/xyz/', '/xyz/bar'],
      ['/foo/bar', '/foo/', '/xyz', '/xyz/bar'],
      ['/foo/bar', '/foo/', '/xyz/', '/xyz/bar'],
      ['/foo', '/foo', '/xyz', '/xyz'],
      ['/foo/', '/foo', '/xyz', '/xyz/'],
      ['/foo/bar', '/foo', '', '/bar'],
      ['/foo/', '/foo', '', '/'],
      ['/foo', '/foo', '', '/'],
      ['/foo/', '/foo', '/', '/'],
      ['/foo', '/foo', '/', '/'],
      ['/anything/x', '/', '/v2', '/v2/anything/x'],
    ];
    for (const [path, prefix, replacement, want] of cases) {
      assert.equal(rewritePath(path, segPrefix(prefix), { prefix: replacement }), want, `${path} ${prefix} → ${JSON.stringify(replacement)}`);
    }
  });

  it('keeps the query', () => {
    assert.equal(rewritePath('/foo/bar?a=1&b=/x', segPrefix('/foo'), { prefix: '/xyz' }), '/xyz/bar?a=1&b=/x');
    assert.equal(rewritePath('/foo/bar?a=1', segPrefix('/foo'), { fullPath: '/new' }), '/new?a=1');
  });

  it('fullPath replaces the whole path whatever the match', () => {
    assert.equal(rewritePath('/a/b/c', rule({ type: 'regex', value: '/a/.*' }), { fullPath: '/z' }), '/z');
    assert.equal(rewritePath('/a', rule(), { fullPath: '' }), '/');
  });

  it('a VirtualService prefix replaces the matched characters (Envoy prefix_rewrite)', () => {
    assert.equal(rewritePath('/foo/bar', rule({ type: 'prefix', value: '/foo/' }), { prefix: '/' }), '/bar');
    assert.equal(rewritePath('/foobar', rule({ type: 'prefix', value: '/foo' }), { prefix: '/x' }), '/xbar');
    assert.equal(rewritePath('/reviews/1', rule({ type: 'prefix', value: '/reviews' }), { prefix: '/v1/reviews' }), '/v1/reviews/1');
  });

  it('with no path match, the implicit prefix "/" is replaced; with exact or regex, the whole path', () => {
    assert.equal(rewritePath('/foo', rule(), { prefix: '/v2' }), '/v2foo');
    assert.equal(rewritePath('/old?q', rule({ type: 'exact', value: '/old' }), { prefix: '/new' }), '/new?q');
    assert.equal(rewritePath('/a/1', rule({ type: 'regex', value: '/a/[0-9]' }), { prefix: '/b' }), '/b');
  });

  it('leaves the target alone without a path rewrite', () => {
    assert.equal(rewritePath('/a?b', segPrefix('/a'), undefined), '/a?b');
    assert.equal(rewritePath('/a?b', segPrefix('/a'), {}), '/a?b');
  });
});

describe('redirectLocation', () => {
  const base: RedirectInput = { scheme: 'http', authority: 'api.shop:8080', port: 8080, path: '/old/x?q=1' };

  it('keeps scheme, host, port and path by default, and the query always', () => {
    assert.equal(redirectLocation(base, { statusCode: 302 }, rule()), 'http://api.shop:8080/old/x?q=1');
  });

  it('a scheme change without a port goes to the scheme\'s well-known port, left out of the Location', () => {
    assert.equal(redirectLocation(base, { scheme: 'https', statusCode: 301 }, rule()), 'https://api.shop/old/x?q=1');
    assert.equal(redirectLocation(base, { scheme: 'http', statusCode: 301 }, rule()), 'http://api.shop/old/x?q=1');
  });

  it('drops port 80 for http and 443 for https, keeps any other', () => {
    assert.equal(redirectLocation({ ...base, authority: 'a', port: 80 }, { statusCode: 302 }, rule()), 'http://a/old/x?q=1');
    assert.equal(redirectLocation(base, { scheme: 'https', port: 443, statusCode: 302 }, rule()), 'https://api.shop/old/x?q=1');
    assert.equal(redirectLocation(base, { scheme: 'https', port: 8443, statusCode: 302 }, rule()), 'https://api.shop:8443/old/x?q=1');
    assert.equal(redirectLocation(base, { port: 80, statusCode: 302 }, rule()), 'http://api.shop/old/x?q=1');
  });

  it('replaces the host and the path (full or prefix)', () => {
    assert.equal(redirectLocation(base, { host: 'new.example', fullPath: '/landing', statusCode: 302 }, rule()), 'http://new.example:8080/landing?q=1');
    assert.equal(redirectLocation(base, { prefix: '/new', statusCode: 302 }, segPrefix('/old')), 'http://api.shop:8080/new/x?q=1');
  });

  it('brackets IPv6 hosts and strips the port of an IPv6 authority', () => {
    assert.equal(redirectLocation({ ...base, authority: '[fd00::1]:8080' }, { statusCode: 302 }, rule()), 'http://[fd00::1]:8080/old/x?q=1');
    assert.equal(redirectLocation(base, { host: 'fd00::2', statusCode: 302 }, rule()), 'http://[fd00::2]:8080/old/x?q=1');
  });
});

describe('shadowAuthority', () => {
  it('suffixes the host with -shadow and keeps the port, IPv6 literals included', () => {
    assert.equal(shadowAuthority('reviews.default'), 'reviews.default-shadow');
    assert.equal(shadowAuthority('reviews.default:9080'), 'reviews.default-shadow:9080');
    assert.equal(shadowAuthority('10.96.0.1:80'), '10.96.0.1-shadow:80');
    assert.equal(shadowAuthority('[fd00::1]:80'), '[fd00::1]-shadow:80');
    assert.equal(shadowAuthority('[fd00::1]'), '[fd00::1]-shadow');
  });
});
