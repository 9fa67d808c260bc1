import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_TRUST_DOMAIN, SpiffeId, validateTrustDomain } from '../../src/identity/index.js';
import { isStraitError } from '../../src/common/errors.js';

const FORM = '(expected spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>)';

describe('SpiffeId', () => {
  it('parses a workload id into its parts and prints it back unchanged', () => {
    const id = SpiffeId.parse('spiffe://cluster.local/ns/default/sa/web-frontend');
    assert.equal(id.trustDomain, 'cluster.local');
    assert.equal(id.namespace, 'default');
    assert.equal(id.serviceAccount, 'web-frontend');
    assert.equal(id.toString(), 'spiffe://cluster.local/ns/default/sa/web-frontend');
    assert.equal(JSON.stringify({ id }), '{"id":"spiffe://cluster.local/ns/default/sa/web-frontend"}');
  });

  it('accepts the characters SPIFFE allows in trust domains and path segments', () => {
    const id = SpiffeId.parse('spiffe://prod-1.example_corp.io/ns/Team.A_b-1/sa/SA.x_y-z');
    assert.equal(id.trustDomain, 'prod-1.example_corp.io');
    assert.equal(id.namespace, 'Team.A_b-1');
    assert.equal(id.serviceAccount, 'SA.x_y-z');
  });

  it('builds ids with of() and compares them with equals()', () => {
    const a = SpiffeId.of(DEFAULT_TRUST_DOMAIN, 'ns1', 'sa1');
    assert.equal(DEFAULT_TRUST_DOMAIN, 'cluster.local');
    assert.ok(a.equals(SpiffeId.parse('spiffe://cluster.local/ns/ns1/sa/sa1')));
    assert.ok(a.equals('spiffe://cluster.local/ns/ns1/sa/sa1'));
    assert.ok(!a.equals(SpiffeId.of('cluster.local', 'ns1', 'sa2')));
    assert.ok(!a.equals(SpiffeId.of('other.local', 'ns1', 'sa1')));
    assert.ok(!a.equals(undefined));
  });

  const bad: Array<[input: string, problem: string]> = [
    ['', 'it is empty'],
    ['http://cluster.local/ns/a/sa/b', 'the scheme is "http" but must be "spiffe"'],
    ['SPIFFE://cluster.local/ns/a/sa/b', 'the scheme must be lowercase "spiffe://"'],
    ['cluster.local/ns/a/sa/b', 'it does not start with "spiffe://"'],
    ['spiffe:///ns/a/sa/b', 'the trust domain is empty'],
    ['spiffe://Cluster.Local/ns/a/sa/b', 'the trust domain "Cluster.Local" must be lowercase'],
    ['spiffe://clus ter/ns/a/sa/b', 'the trust domain "clus ter" contains a space (allowed: a-z 0-9 . - _)'],
    ['spiffe://user@cluster.local/ns/a/sa/b', 'the trust domain must not contain user info ("@")'],
    ['spiffe://cluster.local:8080/ns/a/sa/b', 'the trust domain must not contain a port (":")'],
    ['spiffe://cluster.local', 'the path is empty'],
    ['spiffe://cluster.local/ns/a', 'the path "/ns/a" is not /ns/<namespace>/sa/<service-account>'],
    ['spiffe://cluster.local/namespace/a/sa/b', 'the path "/namespace/a/sa/b" is not /ns/<namespace>/sa/<service-account>'],
    ['spiffe://cluster.local/ns/a/sa/b/extra', 'the path "/ns/a/sa/b/extra" is not /ns/<namespace>/sa/<service-account>'],
    ['spiffe://cluster.local//ns/a/sa/b', 'the path "//ns/a/sa/b" is not /ns/<namespace>/sa/<service-account>'],
    ['spiffe://cluster.local/ns/a/sa/', 'the service account is empty'],
    ['spiffe://cluster.local/ns/../sa/b', 'the namespace must not be ".."'],
    ['spiffe://cluster.local/ns/a b/sa/b', 'the namespace "a b" contains a space (allowed: A-Z a-z 0-9 . - _)'],
    ['spiffe://cluster.local/ns/a/sa/b%20', 'the service account "b%20" contains the character "%" (allowed: A-Z a-z 0-9 . - _)'],
    ['spiffe://cluster.local/ns/a\u0000/sa/b', 'the namespace "a\\u0000" contains the control character U+0000 (allowed: A-Z a-z 0-9 . - _)'],
    ['spiffe://cluster.local/ns/a/sa/b?x=1', 'it must not contain a query ("?...")'],
    ['spiffe://cluster.local/ns/a/sa/b#frag', 'it must not contain a fragment ("#...")'],
  ];
  for (const [input, problem] of bad) {
    it(`rejects ${JSON.stringify(input)}: ${problem}`, () => {
      assert.throws(
        () => SpiffeId.parse(input),
        (err: unknown) => {
          assert.ok(isStraitError(err, 'STRAIT_ERR_SPIFFE_ID'));
          assert.equal(err.message, `invalid SPIFFE id ${JSON.stringify(input)}: ${problem} ${FORM}`);
          return true;
        },
      );
    });
  }

  it('rejects an id longer than 2048 characters', () => {
    const long = `spiffe://cluster.local/ns/a/sa/${'x'.repeat(2048)}`;
    assert.throws(() => SpiffeId.parse(long), /longer than 2048 characters/);
  });

  it('rejects bad parts in of() the same way as parse()', () => {
    assert.throws(() => SpiffeId.of('cluster.local', 'a/b', 'c'), /the namespace "a\/b" contains the character "\/"/);
    assert.throws(() => SpiffeId.of('', 'a', 'b'), /the trust domain is empty/);
  });

  it('validates a configured trust domain', () => {
    validateTrustDomain('cluster.local');
    assert.throws(() => validateTrustDomain('Cluster'), {
      code: 'STRAIT_ERR_SPIFFE_ID',
      message: 'invalid trust domain: the trust domain "Cluster" must be lowercase (check the configured trust domain)',
    });
  });
});
