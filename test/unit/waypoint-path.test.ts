import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { normalizePath, pathOf, queryOf, type NormalizedTarget } from '../../src/waypoint/path.js';

function norm(target: string): string {
  const r = normalizePath(target);
  assert.ok(!('error' in r), `expected ${target} to normalise, got ${JSON.stringify(r)}`);
  return r.path + r.query;
}

describe('normalizePath (Istio BASE)', () => {
  it('leaves an ordinary path and its query untouched', () => {
    assert.deepEqual(normalizePath('/api/orders/17?x=1&y=%2F'), { path: '/api/orders/17', query: '?x=1&y=%2F' });
    assert.deepEqual(normalizePath('/'), { path: '/', query: '' });
  });

  it('resolves dot segments as RFC 3986 §5.2.4 does', () => {
    assert.equal(norm('/public/./data/abc/../xyz'), '/public/data/xyz');
    assert.equal(norm('/a/b/..'), '/a/');
    assert.equal(norm('/a/.'), '/a/');
    assert.equal(norm('/../../etc'), '/etc');
    assert.equal(norm('/..'), '/');
    assert.equal(norm('/a/..b/c'), '/a/..b/c', '"..b" is not a dot segment');
  });

  it('decodes escaped unreserved characters once, before resolving dot segments', () => {
    assert.equal(norm('/some/%61%62%63'), '/some/abc');
    assert.equal(norm('/a/%2e%2E/b'), '/b', 'an escaped ".." is still a dot segment');
    assert.equal(norm('/%7e%5f%2d%30'), '/~_-0');
    assert.equal(norm('/%2561'), '/%2561', 'no double decoding: %25 is not unreserved, and stays');
  });

  it('keeps escaped slashes, backslashes and other reserved characters escaped, with upper-case hex', () => {
    assert.equal(norm('/a%2fb'), '/a%2Fb');
    assert.equal(norm('/a%5cb'), '/a%5Cb');
    assert.equal(norm('/x%3fy'), '/x%3Fy');
    assert.equal(norm('/bad%zz%4'), '/bad%zz%4', 'a malformed escape is kept as sent');
  });

  it('turns backslashes into slashes and keeps repeated slashes (that is MERGE_SLASHES, not BASE)', () => {
    assert.equal(norm('/some\\data'), '/some/data');
    assert.equal(norm('/some//data///abc'), '/some//data///abc');
    assert.equal(norm('/a\\..\\b'), '/b');
  });

  it('drops a fragment and leaves the query as sent', () => {
    assert.deepEqual(normalizePath('/a/../b?q=/../x#frag'), { path: '/b', query: '?q=/../x' });
    assert.deepEqual(normalizePath('/a#f?notquery'), { path: '/a', query: '' });
  });

  it('rejects an encoded NUL and a target that is not an absolute path', () => {
    assert.match((normalizePath('/a%00b') as { error: string }).error, /NUL/);
    assert.match((normalizePath('*') as { error: string }).error, /not an absolute path/);
    assert.match((normalizePath('http://x/y') as { error: string }).error, /not an absolute path/);
    assert.match((normalizePath('') as { error: string }).error, /not an absolute path/);
  });

  it('is idempotent and always yields an absolute path without dot segments (property)', () => {
    const segment = fc.oneof(fc.constantFrom('.', '..', '%2e', '%2E%2e', 'a', 'b%2f', '', '%41', '\\'), fc.string({ maxLength: 4 }).filter((s) => !/[?#%]/.test(s)));
    fc.assert(fc.property(fc.array(segment, { maxLength: 8 }), (segs) => {
      const r = normalizePath(`/${segs.join('/')}`);
      if ('error' in r) return;
      const once = r as NormalizedTarget;
      assert.ok(once.path.startsWith('/'));
      assert.ok(!/(^|\/)\.\.?(\/|$)/.test(once.path), `dot segment left in ${once.path}`);
      assert.deepEqual(normalizePath(once.path), once);
    }), { numRuns: 2000 });
  });
});

describe('pathOf / queryOf', () => {
  it('split a target at the first "?" and ignore a fragment', () => {
    assert.equal(pathOf('/a/b?c=d?e'), '/a/b');
    assert.equal(queryOf('/a/b?c=d?e'), 'c=d?e');
    assert.equal(pathOf('/a#x'), '/a');
    assert.equal(queryOf('/a?x=1#y'), 'x=1');
    assert.equal(queryOf('/a'), '');
  });
});
