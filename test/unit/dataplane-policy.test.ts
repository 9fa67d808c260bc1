import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { authorize, policyApplies, type AuthzTarget, type ConnectionAttrs } from '../../src/dataplane/policy/authorize.js';
import { IpBlocks, parseIpAddress, parseIpBlock } from '../../src/dataplane/policy/ip-blocks.js';
import { effectiveMtlsMode } from '../../src/dataplane/policy/peer-authentication.js';
import type { AuthorizationResource, L4Match, L4Rule } from '../../src/common/xds/resources.js';
import type { MtlsMode } from '../../src/common/model/types.js';

// ---------- fixtures ----------

type Scope = 'global' | 'namespace' | 'workload';
type Action = 'ALLOW' | 'DENY' | 'AUDIT';

function authz(ns: string, name: string, action: Action, rules: L4Rule[], opts: { scope?: Scope; selector?: Record<string, string> } = {}): AuthorizationResource {
  const scope = opts.scope ?? (opts.selector ? 'workload' : 'namespace');
  return { type: 'authz', name, namespace: ns, scope, ...(opts.selector ? { selector: opts.selector } : {}), action, rules, notes: [] };
}

function peer(ns: string, name: string, scope: Scope, mode: MtlsMode, opts: { selector?: Record<string, string>; portLevel?: Record<string, MtlsMode> } = {}): AuthorizationResource {
  return { type: 'peerauthn', name, namespace: ns, scope, ...(opts.selector ? { selector: opts.selector } : {}), mode, portLevel: opts.portLevel ?? {} };
}

/** One-rule policy with one `from` entry. */
const from = (m: L4Match): L4Rule[] => [{ from: [m] }];
/** One-rule policy with one `to` entry. */
const to = (m: L4Match): L4Rule[] => [{ to: [m] }];
/** One-rule policy with one `when` condition. */
const when = (key: string, values?: string[], notValues?: string[]): L4Rule[] =>
  [{ when: [{ key, ...(values ? { values } : {}), ...(notValues ? { notValues } : {}) }] }];

const web: AuthzTarget = { namespace: 'shop', labels: { app: 'web', version: 'v1' } };

function conn(over: Partial<ConnectionAttrs> = {}): ConnectionAttrs {
  return {
    sourceIdentity: 'spiffe://cluster.local/ns/front/sa/ui',
    sourceIp: '10.0.1.5',
    destinationIp: '10.0.2.7',
    destinationPort: 8080,
    ...over,
  };
}
const plaintext = (over: Partial<ConnectionAttrs> = {}): ConnectionAttrs => {
  const c = conn(over);
  delete c.sourceIdentity;
  return c;
};

/** Whether an ALLOW policy with `rules` (alone, applied to web) lets `c` through. */
function allows(rules: L4Rule[], c: ConnectionAttrs = conn()): boolean {
  return authorize([authz('shop', 'p', 'ALLOW', rules)], web, c).allowed;
}

// ---------- decision order ----------

describe('authorize: decision order', () => {
  it('allows when no policy exists at all', () => {
    assert.deepEqual(authorize([], web, conn()), { allowed: true, reason: 'allowed: no ALLOW policy applies', audited: [] });
  });

  it('denies on a matching DENY policy even when an ALLOW policy matches too', () => {
    const d = authorize([
      authz('shop', 'allow-all', 'ALLOW', [{}]),
      authz('shop', 'deny-evil', 'DENY', [{ from: [{ namespaces: ['evil'] }] }, { from: [{ namespaces: ['front'] }] }]),
    ], web, conn());
    assert.equal(d.allowed, false);
    assert.equal(d.policy, 'shop/deny-evil');
    assert.equal(d.reason, 'denied by DENY policy shop/deny-evil (rules[1])');
  });

  it('allows when the DENY policy does not match and no ALLOW policy applies', () => {
    const d = authorize([authz('shop', 'deny-evil', 'DENY', from({ namespaces: ['evil'] }))], web, conn());
    assert.deepEqual(d, { allowed: true, reason: 'allowed: no ALLOW policy applies', audited: [] });
  });

  it('allows when an applicable ALLOW policy matches and names the policy and rule', () => {
    const d = authorize([
      authz('shop', 'allow-front', 'ALLOW', [{ from: [{ namespaces: ['other'] }] }, { from: [{ namespaces: ['front'] }] }]),
    ], web, conn());
    assert.deepEqual(d, { allowed: true, policy: 'shop/allow-front', reason: 'allowed by ALLOW policy shop/allow-front (rules[1])', audited: [] });
  });

  it('denies when ALLOW policies apply but none matches, listing them', () => {
    const d = authorize([
      authz('shop', 'allow-a', 'ALLOW', from({ namespaces: ['a'] })),
      authz('shop', 'allow-b', 'ALLOW', from({ namespaces: ['b'] })),
    ], web, conn());
    assert.equal(d.allowed, false);
    assert.equal(d.policy, undefined);
    assert.equal(d.reason, 'denied: no ALLOW policy matched (shop/allow-a, shop/allow-b)');
  });

  it('allows when any one of several ALLOW policies matches', () => {
    const d = authorize([
      authz('shop', 'allow-a', 'ALLOW', from({ namespaces: ['a'] })),
      authz('shop', 'allow-front', 'ALLOW', from({ namespaces: ['front'] })),
    ], web, conn());
    assert.equal(d.allowed, true);
    assert.equal(d.policy, 'shop/allow-front');
  });

  it('ignores ALLOW policies that do not apply to the target (no deny-by-default from them)', () => {
    const d = authorize([authz('other', 'allow-nothing', 'ALLOW', []), authz('shop', 'db-only', 'ALLOW', [{}], { selector: { app: 'db' } })], web, conn());
    assert.deepEqual(d, { allowed: true, reason: 'allowed: no ALLOW policy applies', audited: [] });
  });

  it('ignores peerauthn entries', () => {
    const d = authorize([peer('shop', 'strict', 'namespace', 'STRICT')], web, plaintext());
    assert.equal(d.allowed, true);
  });

  it('accepts any iterable (a Map\'s values)', () => {
    const m = new Map([['authz/shop/deny', authz('shop', 'deny', 'DENY', [{}])]]);
    assert.equal(authorize(m.values(), web, conn()).allowed, false);
  });
});

describe('authorize: empty policies and empty rules', () => {
  it('an applicable ALLOW policy without rules denies everything (allow-nothing)', () => {
    const d = authorize([authz('shop', 'allow-nothing', 'ALLOW', [])], web, conn());
    assert.equal(d.allowed, false);
    assert.equal(d.reason, 'denied: no ALLOW policy matched (shop/allow-nothing)');
    assert.equal(authorize([authz('shop', 'allow-nothing', 'ALLOW', [])], web, plaintext()).allowed, false);
  });

  it('a DENY policy without rules denies nothing', () => {
    assert.equal(authorize([authz('shop', 'deny-nothing', 'DENY', [])], web, conn()).allowed, true);
  });

  it('a rule {} matches everything, plaintext included', () => {
    assert.equal(allows([{}]), true);
    assert.equal(allows([{}], plaintext({ sourceIp: '192.168.9.9', destinationPort: 1 })), true);
    assert.equal(authorize([authz('shop', 'deny-all', 'DENY', [{}])], web, plaintext()).allowed, false);
  });

  it('treats empty lists as absent fields (proto semantics)', () => {
    assert.equal(allows([{ from: [], to: [], when: [] }]), true);
    assert.equal(allows(from({ principals: [], ipBlocks: [] })), true);
    assert.equal(allows([{ from: [{}] }]), true);
  });
});

describe('authorize: rule structure', () => {
  it('a rule needs all of from, to and when to match', () => {
    const rule: L4Rule = { from: [{ namespaces: ['front'] }], to: [{ ports: ['8080'] }], when: [{ key: 'source.ip', values: ['10.0.1.0/24'] }] };
    assert.equal(allows([rule]), true);
    assert.equal(allows([rule], conn({ destinationPort: 9090 })), false);
    assert.equal(allows([rule], conn({ sourceIp: '10.0.9.5' })), false);
    assert.equal(allows([rule], conn({ sourceIdentity: 'spiffe://cluster.local/ns/other/sa/ui' })), false);
  });

  it('from matches when any entry matches', () => {
    assert.equal(allows([{ from: [{ namespaces: ['x'] }, { namespaces: ['front'] }] }]), true);
    assert.equal(allows([{ from: [{ namespaces: ['x'] }, { namespaces: ['y'] }] }]), false);
  });

  it('to matches when any entry matches', () => {
    assert.equal(allows([{ to: [{ ports: ['80'] }, { ports: ['8080'] }] }]), true);
    assert.equal(allows([{ to: [{ ports: ['80'] }, { ports: ['443'] }] }]), false);
  });

  it('when needs all conditions', () => {
    const both: L4Rule = { when: [{ key: 'source.namespace', values: ['front'] }, { key: 'destination.port', values: ['8080'] }] };
    assert.equal(allows([both]), true);
    assert.equal(allows([both], conn({ destinationPort: 81 })), false);
  });

  it('an entry needs all its present fields', () => {
    assert.equal(allows(from({ namespaces: ['front'], ipBlocks: ['10.0.1.0/24'] })), true);
    assert.equal(allows(from({ namespaces: ['front'], ipBlocks: ['10.9.0.0/16'] })), false);
  });

  it('a positive field and its not-variant combine (any namespace but kube-system)', () => {
    const rules = from({ namespaces: ['*'], notNamespaces: ['kube-system'] });
    assert.equal(allows(rules), true);
    assert.equal(allows(rules, conn({ sourceIdentity: 'spiffe://cluster.local/ns/kube-system/sa/x' })), false);
    assert.equal(allows(rules, plaintext()), false);
  });

  it('a policy matches when any rule matches', () => {
    assert.equal(allows([{ to: [{ ports: ['1'] }] }, { to: [{ ports: ['8080'] }] }]), true);
  });
});

// ---------- sources ----------

describe('authorize: principals', () => {
  it('compares with the identity without spiffe://', () => {
    assert.equal(allows(from({ principals: ['cluster.local/ns/front/sa/ui'] })), true);
    assert.equal(allows(from({ principals: ['cluster.local/ns/front/sa/other'] })), false);
    assert.equal(allows(from({ principals: ['spiffe://cluster.local/ns/front/sa/ui'] })), false);
  });

  it('supports "*", prefix and suffix wildcards', () => {
    assert.equal(allows(from({ principals: ['*'] })), true);
    assert.equal(allows(from({ principals: ['cluster.local/ns/front/*'] })), true);
    assert.equal(allows(from({ principals: ['cluster.local/ns/back/*'] })), false);
    assert.equal(allows(from({ principals: ['*/sa/ui'] })), true);
    assert.equal(allows(from({ principals: ['*/sa/api'] })), false);
  });

  it('positive principals never match plaintext, even "*"', () => {
    assert.equal(allows(from({ principals: ['*'] }), plaintext()), false);
    assert.equal(allows(from({ principals: ['*/sa/ui'] }), plaintext()), false);
  });

  it('notPrincipals ["*"] matches plaintext only: the Istio way to deny plaintext', () => {
    const denyPlain = [authz('shop', 'deny-plaintext', 'DENY', from({ notPrincipals: ['*'] }))];
    const d = authorize(denyPlain, web, plaintext());
    assert.equal(d.allowed, false);
    assert.equal(d.reason, 'denied by DENY policy shop/deny-plaintext (rules[0])');
    assert.equal(authorize(denyPlain, web, conn()).allowed, true);
  });

  it('notPrincipals excludes matching identities', () => {
    assert.equal(allows(from({ notPrincipals: ['cluster.local/ns/front/*'] })), false);
    assert.equal(allows(from({ notPrincipals: ['cluster.local/ns/back/*'] })), true);
  });

  it('an identity that is not ns/sa shaped still has a principal but no namespace', () => {
    const odd = conn({ sourceIdentity: 'spiffe://example.org/custom/path' });
    assert.equal(allows(from({ principals: ['example.org/*'] }), odd), true);
    assert.equal(allows(from({ namespaces: ['*'] }), odd), false);
    assert.equal(allows(from({ serviceAccounts: ['custom/path'] }), odd), false);
  });
});

describe('authorize: namespaces', () => {
  it('matches the /ns/ segment of the identity, with wildcards', () => {
    assert.equal(allows(from({ namespaces: ['front'] })), true);
    assert.equal(allows(from({ namespaces: ['back'] })), false);
    assert.equal(allows(from({ namespaces: ['fro*'] })), true);
    assert.equal(allows(from({ namespaces: ['*ont'] })), true);
    assert.equal(allows(from({ namespaces: ['*'] })), true);
  });

  it('does not take the trust domain or service account for the namespace', () => {
    assert.equal(allows(from({ namespaces: ['ui'] })), false);
    assert.equal(allows(from({ namespaces: ['cluster.local'] })), false);
  });

  it('plaintext has no namespace: positive never matches, negative always does', () => {
    assert.equal(allows(from({ namespaces: ['*'] }), plaintext()), false);
    assert.equal(allows(from({ notNamespaces: ['front'] }), plaintext()), true);
    assert.equal(allows(from({ notNamespaces: ['front'] })), false);
  });
});

describe('authorize: serviceAccounts', () => {
  it('compares "ns/sa" with the identity\'s namespace and service account', () => {
    assert.equal(allows(from({ serviceAccounts: ['front/ui'] })), true);
    assert.equal(allows(from({ serviceAccounts: ['front/api', 'front/ui'] })), true);
    assert.equal(allows(from({ serviceAccounts: ['front/api'] })), false);
    assert.equal(allows(from({ serviceAccounts: ['other/ui'] })), false);
    assert.equal(allows(from({ serviceAccounts: ['ui'] })), false);
  });

  it('never matches plaintext; notServiceAccounts does', () => {
    assert.equal(allows(from({ serviceAccounts: ['front/ui'] }), plaintext()), false);
    assert.equal(allows(from({ notServiceAccounts: ['front/ui'] }), plaintext()), true);
    assert.equal(allows(from({ notServiceAccounts: ['front/ui'] })), false);
    assert.equal(allows(from({ notServiceAccounts: ['front/api'] })), true);
  });
});

describe('authorize: ipBlocks', () => {
  it('matches IPv4 single addresses and CIDRs', () => {
    assert.equal(allows(from({ ipBlocks: ['10.0.1.5'] })), true);
    assert.equal(allows(from({ ipBlocks: ['10.0.1.6'] })), false);
    assert.equal(allows(from({ ipBlocks: ['10.0.1.5/32'] })), true);
    assert.equal(allows(from({ ipBlocks: ['10.0.1.0/24'] })), true);
    assert.equal(allows(from({ ipBlocks: ['10.0.0.0/24'] })), false);
    assert.equal(allows(from({ ipBlocks: ['10.0.0.0/8'] })), true);
    assert.equal(allows(from({ ipBlocks: ['0.0.0.0/0'] })), true);
    assert.equal(allows(from({ ipBlocks: ['192.168.0.0/16', '10.0.1.4/31'] })), true);
  });

  it('clears host bits of a non-canonical CIDR', () => {
    assert.equal(allows(from({ ipBlocks: ['10.0.1.77/24'] })), true);
  });

  it('handles prefixes that do not fall on an octet boundary', () => {
    assert.equal(allows(from({ ipBlocks: ['10.0.0.0/23'] })), true); // 10.0.0.0 - 10.0.1.255
    assert.equal(allows(from({ ipBlocks: ['10.0.0.0/24'] }), conn({ sourceIp: '10.0.0.255' })), true);
    assert.equal(allows(from({ ipBlocks: ['10.0.1.4/30'] }), conn({ sourceIp: '10.0.1.8' })), false);
    assert.equal(allows(from({ ipBlocks: ['128.0.0.0/1'] }), conn({ sourceIp: '200.1.1.1' })), true);
    assert.equal(allows(from({ ipBlocks: ['128.0.0.0/1'] }), conn({ sourceIp: '127.255.255.255' })), false);
  });

  it('matches IPv6 addresses and CIDRs', () => {
    const v6 = conn({ sourceIp: '2001:db8:0:1::5' });
    assert.equal(allows(from({ ipBlocks: ['2001:db8::/32'] }), v6), true);
    assert.equal(allows(from({ ipBlocks: ['2001:db8:0:1::/64'] }), v6), true);
    assert.equal(allows(from({ ipBlocks: ['2001:db8:0:2::/64'] }), v6), false);
    assert.equal(allows(from({ ipBlocks: ['2001:db8:0:1::5'] }), v6), true);
    assert.equal(allows(from({ ipBlocks: ['2001:db8:0:1:0:0:0:5/128'] }), v6), true);
    assert.equal(allows(from({ ipBlocks: ['2001:db8:0:1::6/128'] }), v6), false);
    assert.equal(allows(from({ ipBlocks: ['::/0'] }), v6), true);
    assert.equal(allows(from({ ipBlocks: ['2001:db8:0:1:8000::/65'] }), v6), false);
    assert.equal(allows(from({ ipBlocks: ['2001:DB8::/32'] }), conn({ sourceIp: 'fe80::1%eth0' })), false);
    assert.equal(allows(from({ ipBlocks: ['fe80::/10'] }), conn({ sourceIp: 'fe80::1%eth0' })), true);
  });

  it('keeps families apart', () => {
    assert.equal(allows(from({ ipBlocks: ['0.0.0.0/0'] }), conn({ sourceIp: '2001:db8::1' })), false);
    assert.equal(allows(from({ ipBlocks: ['::/0'] })), false);
  });

  it('matches an IPv4-mapped IPv6 source against IPv4 blocks', () => {
    const mapped = conn({ sourceIp: '::ffff:10.0.1.5' });
    assert.equal(allows(from({ ipBlocks: ['10.0.1.0/24'] }), mapped), true);
    assert.equal(allows(from({ ipBlocks: ['10.0.1.5'] }), mapped), true);
    assert.equal(allows(from({ ipBlocks: ['10.0.2.0/24'] }), mapped), false);
    assert.equal(allows(from({ ipBlocks: ['10.0.1.0/24'] }), conn({ sourceIp: '::ffff:a00:105' })), true);
  });

  it('treats an IPv4-mapped block as the IPv4 block', () => {
    assert.equal(allows(from({ ipBlocks: ['::ffff:10.0.1.0/120'] })), true);
    assert.equal(allows(from({ ipBlocks: ['::ffff:10.0.2.0/120'] })), false);
  });

  it('notIpBlocks excludes sources', () => {
    assert.equal(allows(from({ notIpBlocks: ['10.0.1.0/24'] })), false);
    assert.equal(allows(from({ notIpBlocks: ['10.0.1.0/24'] }), conn({ sourceIp: '10.0.3.1' })), true);
    assert.equal(allows(from({ ipBlocks: ['10.0.0.0/8'], notIpBlocks: ['10.0.1.5'] })), false);
  });

  it('works for plaintext sources (IP is always known)', () => {
    assert.equal(allows(from({ ipBlocks: ['10.0.1.0/24'] }), plaintext()), true);
  });

  it('an invalid block never matches', () => {
    assert.equal(allows(from({ ipBlocks: ['10.0.1.0/33'] })), false);
    assert.equal(allows(from({ ipBlocks: ['not-an-ip'] })), false);
    assert.equal(allows(from({ notIpBlocks: ['not-an-ip'] })), true);
  });
});

describe('authorize: ports', () => {
  it('matches the destination port', () => {
    assert.equal(allows(to({ ports: ['8080'] })), true);
    assert.equal(allows(to({ ports: ['80', '443'] })), false);
    assert.equal(allows(to({ ports: ['8080'] }), plaintext()), true);
  });

  it('notPorts excludes ports', () => {
    assert.equal(allows(to({ notPorts: ['8080'] })), false);
    assert.equal(allows(to({ notPorts: ['9090'] })), true);
  });

  it('denies one port by DENY to.ports', () => {
    const deny = [authz('shop', 'no-admin', 'DENY', to({ ports: ['9000'] }))];
    assert.equal(authorize(deny, web, conn({ destinationPort: 9000 })).allowed, false);
    assert.equal(authorize(deny, web, conn()).allowed, true);
  });

  it('ignores malformed ports', () => {
    assert.equal(allows(to({ ports: ['http'] })), false);
    assert.equal(allows(to({ ports: ['70000'] }), conn({ destinationPort: 70000 })), false);
  });
});

// ---------- when conditions ----------

describe('authorize: when conditions', () => {
  it('source.ip', () => {
    assert.equal(allows(when('source.ip', ['10.0.1.0/24'])), true);
    assert.equal(allows(when('source.ip', ['10.0.2.0/24'])), false);
    assert.equal(allows(when('source.ip', undefined, ['10.0.1.5'])), false);
    assert.equal(allows(when('source.ip', undefined, ['10.0.2.0/24'])), true);
    assert.equal(allows(when('source.ip', ['10.0.0.0/8']), conn({ sourceIp: '::ffff:10.9.9.9' })), true);
    assert.equal(allows(when('source.ip', ['2001:db8::/32']), conn({ sourceIp: '2001:db8::9' })), true);
  });

  it('source.namespace', () => {
    assert.equal(allows(when('source.namespace', ['front'])), true);
    assert.equal(allows(when('source.namespace', ['fr*'])), true);
    assert.equal(allows(when('source.namespace', ['back'])), false);
    assert.equal(allows(when('source.namespace', undefined, ['front'])), false);
    assert.equal(allows(when('source.namespace', ['*']), plaintext()), false);
    assert.equal(allows(when('source.namespace', undefined, ['front']), plaintext()), true);
  });

  it('source.principal', () => {
    assert.equal(allows(when('source.principal', ['cluster.local/ns/front/sa/ui'])), true);
    assert.equal(allows(when('source.principal', ['*/sa/ui'])), true);
    assert.equal(allows(when('source.principal', ['cluster.local/ns/x/*'])), false);
    assert.equal(allows(when('source.principal', ['*']), plaintext()), false);
    assert.equal(allows(when('source.principal', undefined, ['*']), plaintext()), true);
    assert.equal(allows(when('source.principal', undefined, ['*'])), false);
  });

  it('destination.ip', () => {
    assert.equal(allows(when('destination.ip', ['10.0.2.7'])), true);
    assert.equal(allows(when('destination.ip', ['10.0.2.0/24'])), true);
    assert.equal(allows(when('destination.ip', ['10.0.1.0/24'])), false);
    assert.equal(allows(when('destination.ip', undefined, ['10.0.2.0/24'])), false);
    assert.equal(allows(when('destination.ip', ['fd00::/8']), conn({ destinationIp: 'fd00::7' })), true);
  });

  it('destination.port', () => {
    assert.equal(allows(when('destination.port', ['8080'])), true);
    assert.equal(allows(when('destination.port', ['80'])), false);
    assert.equal(allows(when('destination.port', undefined, ['8080'])), false);
    assert.equal(allows(when('destination.port', undefined, ['80'])), true);
  });

  it('values and notValues together', () => {
    assert.equal(allows(when('source.ip', ['10.0.0.0/8'], ['10.0.1.0/24'])), false);
    assert.equal(allows(when('source.ip', ['10.0.0.0/8'], ['10.0.2.0/24'])), true);
  });

  it('an unknown key never matches', () => {
    assert.equal(allows(when('request.headers[x]', ['a'])), false);
    assert.equal(allows(when('request.headers[x]', undefined, ['a'])), false);
    assert.equal(authorize([authz('shop', 'd', 'DENY', when('source.serviceAccount', ['x']))], web, conn()).allowed, true);
  });
});

// ---------- AUDIT ----------

describe('authorize: AUDIT', () => {
  it('lists matching AUDIT policies without deciding', () => {
    const d = authorize([authz('shop', 'audit-front', 'AUDIT', from({ namespaces: ['front'] })), authz('shop', 'audit-back', 'AUDIT', from({ namespaces: ['back'] }))], web, conn());
    assert.deepEqual(d, { allowed: true, reason: 'allowed: no ALLOW policy applies', audited: ['shop/audit-front'] });
  });

  it('does not count as an ALLOW policy (no deny-by-default from AUDIT)', () => {
    assert.equal(authorize([authz('shop', 'audit-none', 'AUDIT', [])], web, conn()).allowed, true);
  });

  it('is reported alongside a DENY decision and an ALLOW decision', () => {
    const audit = authz('istio-system', 'audit-all', 'AUDIT', [{}], { scope: 'global' });
    assert.deepEqual(authorize([authz('shop', 'deny', 'DENY', [{}]), audit], web, conn()).audited, ['istio-system/audit-all']);
    assert.deepEqual(authorize([audit, authz('shop', 'allow', 'ALLOW', [{}])], web, conn()).audited, ['istio-system/audit-all']);
    assert.deepEqual(authorize([audit, authz('shop', 'allow', 'ALLOW', [])], web, conn()).audited, ['istio-system/audit-all']);
  });

  it('only lists AUDIT policies that apply to the target', () => {
    assert.deepEqual(authorize([authz('other', 'audit', 'AUDIT', [{}])], web, conn()).audited, []);
  });
});

// ---------- scoping ----------

describe('policyApplies / scoping', () => {
  it('namespace scope applies to every workload of its namespace only', () => {
    const p = authz('shop', 'ns', 'DENY', [{}], { scope: 'namespace' });
    assert.equal(policyApplies(p, web), true);
    assert.equal(policyApplies(p, { namespace: 'shop', labels: {} }), true);
    assert.equal(policyApplies(p, { namespace: 'other', labels: web.labels }), false);
  });

  it('workload scope needs the same namespace and every selector label equal', () => {
    const p = authz('shop', 'wl', 'DENY', [{}], { selector: { app: 'web' } });
    assert.equal(policyApplies(p, web), true);
    assert.equal(policyApplies(authz('shop', 'wl', 'DENY', [{}], { selector: { app: 'web', version: 'v1' } }), web), true);
    assert.equal(policyApplies(authz('shop', 'wl', 'DENY', [{}], { selector: { app: 'web', version: 'v2' } }), web), false);
    assert.equal(policyApplies(authz('shop', 'wl', 'DENY', [{}], { selector: { tier: 'front' } }), web), false);
    assert.equal(policyApplies(p, { namespace: 'other', labels: { app: 'web' } }), false);
  });

  it('does not confuse inherited object properties with labels', () => {
    assert.equal(policyApplies(authz('shop', 'wl', 'DENY', [{}], { selector: { constructor: 'x' } }), web), false);
  });

  it('global scope without selector applies to every workload of every namespace', () => {
    const p = authz('istio-system', 'mesh', 'DENY', [{}], { scope: 'global' });
    assert.equal(policyApplies(p, web), true);
    assert.equal(policyApplies(p, { namespace: 'anything', labels: {} }), true);
  });

  it('global scope with a selector applies to matching workloads of any namespace', () => {
    const p = authz('istio-system', 'mesh-web', 'DENY', [{}], { scope: 'global', selector: { app: 'web' } });
    assert.equal(policyApplies(p, web), true);
    assert.equal(policyApplies(p, { namespace: 'elsewhere', labels: { app: 'web' } }), true);
    assert.equal(policyApplies(p, { namespace: 'shop', labels: { app: 'db' } }), false);
  });

  it('authorize uses scoping: a root-namespace selector DENY hits matching workloads only', () => {
    const policies = [authz('istio-system', 'deny-web', 'DENY', [{}], { scope: 'global', selector: { app: 'web' } })];
    assert.equal(authorize(policies, { namespace: 'far', labels: { app: 'web' } }, conn()).allowed, false);
    assert.equal(authorize(policies, { namespace: 'far', labels: { app: 'db' } }, conn()).allowed, true);
  });

  it('a workload ALLOW policy makes only its workloads deny-by-default', () => {
    const policies = [authz('shop', 'allow-web', 'ALLOW', from({ namespaces: ['x'] }), { selector: { app: 'web' } })];
    assert.equal(authorize(policies, web, conn()).allowed, false);
    assert.equal(authorize(policies, { namespace: 'shop', labels: { app: 'db' } }, conn()).allowed, true);
  });

  it('policies of all levels combine: a global ALLOW and a namespace DENY', () => {
    const policies = [
      authz('istio-system', 'allow-front', 'ALLOW', from({ namespaces: ['front'] }), { scope: 'global' }),
      authz('shop', 'deny-ui', 'DENY', from({ serviceAccounts: ['front/ui'] })),
    ];
    assert.equal(authorize(policies, web, conn()).allowed, false);
    assert.equal(authorize(policies, web, conn({ sourceIdentity: 'spiffe://cluster.local/ns/front/sa/api' })).allowed, true);
    assert.equal(authorize(policies, web, conn({ sourceIdentity: 'spiffe://cluster.local/ns/back/sa/api' })).allowed, false);
    assert.equal(authorize(policies, { namespace: 'other', labels: {} }, conn()).allowed, true);
  });
});

// ---------- caching ----------

describe('authorize: caching', () => {
  it('gives the same answers on repeated calls with the same resources', () => {
    const policies = [authz('shop', 'allow', 'ALLOW', from({ ipBlocks: ['10.0.1.0/24'], principals: ['*/sa/ui'] }))];
    for (let i = 0; i < 3; i++) {
      assert.equal(authorize(policies, web, conn()).allowed, true);
      assert.equal(authorize(policies, web, conn({ sourceIp: '10.0.2.1' })).allowed, false);
    }
  });

  it('sees a replaced resource (new rules array) immediately', () => {
    const before = [authz('shop', 'allow', 'ALLOW', to({ ports: ['80'] }))];
    assert.equal(authorize(before, web, conn()).allowed, false);
    const after = [authz('shop', 'allow', 'ALLOW', to({ ports: ['8080'] }))];
    assert.equal(authorize(after, web, conn()).allowed, true);
  });
});

// ---------- address parsing ----------

describe('parseIpAddress / parseIpBlock / IpBlocks (net.BlockList)', () => {
  it('parses valid addresses', () => {
    assert.deepEqual(parseIpAddress('1.2.3.4'), { family: 'ipv4', address: '1.2.3.4' });
    assert.deepEqual(parseIpAddress('::ffff:1.2.3.4'), { family: 'ipv4', address: '1.2.3.4' });
    assert.deepEqual(parseIpAddress('::'), { family: 'ipv6', address: '::' });
    assert.deepEqual(parseIpAddress('::1'), { family: 'ipv6', address: '::1' });
    assert.deepEqual(parseIpAddress('2001:db8::'), { family: 'ipv6', address: '2001:db8::' });
    assert.deepEqual(parseIpAddress('64:ff9b::1.2.3.4'), { family: 'ipv6', address: '64:ff9b::102:304' });
    assert.deepEqual(parseIpAddress('1:2:3:4:5:6:7:8'), { family: 'ipv6', address: '1:2:3:4:5:6:7:8' });
  });

  it('rejects invalid addresses', () => {
    for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.-1', '1::2::3', 'gggg::', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', '1:2:3:4::5:6:7:8', '12345::', '1.2.3.4::']) {
      assert.equal(parseIpAddress(bad), null, bad);
    }
  });

  it('parses CIDRs and rejects bad prefixes', () => {
    // Host bits never count: 10.1.2.3/8 is 10.0.0.0/8.
    assert.deepEqual(parseIpBlock('10.1.2.3/8'), { family: 'ipv4', address: '10.1.2.3', prefix: 8 });
    assert.equal(new IpBlocks(['10.1.2.3/8']).has('10.200.0.1'), true);
    assert.equal(new IpBlocks(['10.1.2.3/8']).has('11.0.0.1'), false);
    assert.deepEqual(parseIpBlock('10.1.2.3'), { family: 'ipv4', address: '10.1.2.3', prefix: 32 });
    assert.deepEqual(parseIpBlock('2001:db8:ffff::/33'), { family: 'ipv6', address: '2001:db8:ffff::', prefix: 33 });
    assert.equal(new IpBlocks(['2001:db8:ffff::/33']).has('2001:db8:8000::1'), true);
    assert.equal(new IpBlocks(['2001:db8:ffff::/33']).has('2001:db8:7fff::1'), false);
    assert.deepEqual(parseIpBlock('::ffff:10.0.0.0/104'), { family: 'ipv4', address: '10.0.0.0', prefix: 8 });
    assert.equal(new IpBlocks(['::ffff:10.0.0.0/104']).has('10.9.9.9'), true);
    assert.equal(parseIpBlock('10.0.0.0/33'), null);
    assert.equal(parseIpBlock('::/129'), null);
    assert.equal(parseIpBlock('10.0.0.0/'), null);
    assert.equal(parseIpBlock('10.0.0.0/x'), null);
  });
});

// ---------- peer authentication ----------

describe('effectiveMtlsMode', () => {
  const root = 'istio-system';

  it('defaults to PERMISSIVE', () => {
    assert.equal(effectiveMtlsMode([], web, 8080), 'PERMISSIVE');
    assert.equal(effectiveMtlsMode([authz('shop', 'x', 'DENY', [{}])], web, 8080), 'PERMISSIVE');
  });

  it('a global policy applies everywhere', () => {
    assert.equal(effectiveMtlsMode([peer(root, 'default', 'global', 'STRICT')], web, 8080), 'STRICT');
    assert.equal(effectiveMtlsMode([peer(root, 'default', 'global', 'STRICT')], { namespace: 'x', labels: {} }, 1), 'STRICT');
  });

  it('a namespace policy overrides the global one, for its namespace only', () => {
    const ps = [peer(root, 'default', 'global', 'STRICT'), peer('shop', 'default', 'namespace', 'DISABLE')];
    assert.equal(effectiveMtlsMode(ps, web, 8080), 'DISABLE');
    assert.equal(effectiveMtlsMode(ps, { namespace: 'other', labels: {} }, 8080), 'STRICT');
  });

  it('a workload policy overrides the namespace one, for matching workloads only', () => {
    const ps = [peer('shop', 'default', 'namespace', 'STRICT'), peer('shop', 'web', 'workload', 'PERMISSIVE', { selector: { app: 'web' } })];
    assert.equal(effectiveMtlsMode(ps, web, 8080), 'PERMISSIVE');
    assert.equal(effectiveMtlsMode(ps, { namespace: 'shop', labels: { app: 'db' } }, 8080), 'STRICT');
    assert.equal(effectiveMtlsMode(ps, { namespace: 'other', labels: { app: 'web' } }, 8080), 'PERMISSIVE');
  });

  it('UNSET inherits from the next level up', () => {
    assert.equal(effectiveMtlsMode([peer(root, 'default', 'global', 'STRICT'), peer('shop', 'default', 'namespace', 'UNSET')], web, 8080), 'STRICT');
    assert.equal(effectiveMtlsMode([
      peer(root, 'default', 'global', 'DISABLE'),
      peer('shop', 'default', 'namespace', 'STRICT'),
      peer('shop', 'web', 'workload', 'UNSET', { selector: { app: 'web' } }),
    ], web, 8080), 'STRICT');
    assert.equal(effectiveMtlsMode([peer(root, 'default', 'global', 'DISABLE'), peer('shop', 'web', 'workload', 'UNSET', { selector: { app: 'web' } })], web, 8080), 'DISABLE');
    assert.equal(effectiveMtlsMode([peer(root, 'default', 'global', 'UNSET')], web, 8080), 'PERMISSIVE');
  });

  it('port-level modes of the workload policy apply to that port only', () => {
    const ps = [peer('shop', 'web', 'workload', 'STRICT', { selector: { app: 'web' }, portLevel: { '8080': 'DISABLE', '9090': 'PERMISSIVE' } })];
    assert.equal(effectiveMtlsMode(ps, web, 8080), 'DISABLE');
    assert.equal(effectiveMtlsMode(ps, web, 9090), 'PERMISSIVE');
    assert.equal(effectiveMtlsMode(ps, web, 443), 'STRICT');
  });

  it('a port-level UNSET inherits the workload mode, itself possibly inherited', () => {
    const ps = [
      peer('shop', 'default', 'namespace', 'STRICT'),
      peer('shop', 'web', 'workload', 'UNSET', { selector: { app: 'web' }, portLevel: { '8080': 'UNSET', '9090': 'DISABLE' } }),
    ];
    assert.equal(effectiveMtlsMode(ps, web, 8080), 'STRICT');
    assert.equal(effectiveMtlsMode(ps, web, 9090), 'DISABLE');
  });

  it('ignores port-level modes on namespace and global policies', () => {
    const ps = [peer(root, 'default', 'global', 'STRICT', { portLevel: { '8080': 'DISABLE' } }), peer('shop', 'default', 'namespace', 'UNSET', { portLevel: { '8080': 'DISABLE' } })];
    assert.equal(effectiveMtlsMode(ps, web, 8080), 'STRICT');
  });

  it('picks one policy per level by name order, whatever the iteration order', () => {
    const a = peer('shop', 'a-strict', 'namespace', 'STRICT');
    const b = peer('shop', 'b-disable', 'namespace', 'DISABLE');
    assert.equal(effectiveMtlsMode([a, b], web, 8080), 'STRICT');
    assert.equal(effectiveMtlsMode([b, a], web, 8080), 'STRICT');
    const wa = peer('shop', 'a', 'workload', 'DISABLE', { selector: { app: 'web' } });
    const wb = peer('shop', 'b', 'workload', 'STRICT', { selector: { version: 'v1' } });
    assert.equal(effectiveMtlsMode([wb, wa], web, 8080), 'DISABLE');
  });

  it('the chosen policy of a level being UNSET does not fall through to another of the same level', () => {
    const ps = [peer(root, 'default', 'global', 'DISABLE'), peer('shop', 'b-strict', 'namespace', 'STRICT'), peer('shop', 'a-unset', 'namespace', 'UNSET')];
    assert.equal(effectiveMtlsMode(ps, web, 8080), 'DISABLE');
  });

  it('a non-matching workload policy does not shadow a matching one', () => {
    const ps = [peer('shop', 'a-db', 'workload', 'DISABLE', { selector: { app: 'db' } }), peer('shop', 'b-web', 'workload', 'STRICT', { selector: { app: 'web' } })];
    assert.equal(effectiveMtlsMode(ps, web, 8080), 'STRICT');
  });

  it('ignores a root-namespace selector policy when told the root namespace (as Istio does)', () => {
    const ps = [peer(root, 'default', 'global', 'STRICT'), peer(root, 'sel', 'workload', 'DISABLE', { selector: { app: 'web' } })];
    const rootWl: AuthzTarget = { namespace: root, labels: { app: 'web' } };
    assert.equal(effectiveMtlsMode(ps, rootWl, 8080, { rootNamespace: root }), 'STRICT');
    assert.equal(effectiveMtlsMode(ps, rootWl, 8080), 'DISABLE');
    assert.equal(effectiveMtlsMode(ps, web, 8080), 'STRICT');
  });
});

describe('authorize: policies a waypoint enforces whole (waypointEnforced)', () => {
  const WP = 'spiffe://cluster.local/ns/shop/sa/waypoint';
  const enforced = (action: Action, rules: L4Rule[]): AuthorizationResource => ({ ...authz('shop', 'p', action, rules, { selector: { app: 'web' } }), waypointEnforced: [WP] } as AuthorizationResource);

  it('an ALLOW policy reduced to nothing at L4 denies everyone but the waypoint that enforced it', () => {
    assert.equal(authorize([enforced('ALLOW', [])], web, conn({ sourceIdentity: WP })).allowed, true);
    assert.equal(authorize([enforced('ALLOW', [])], web, conn()).allowed, false);
    assert.equal(authorize([enforced('ALLOW', [])], web, plaintext()).allowed, false);
  });

  it('a DENY policy does not deny the waypoint that enforced it, and denies the same identity\'s workloads otherwise', () => {
    const denyAll = enforced('DENY', [{}]);
    assert.equal(authorize([denyAll], web, conn({ sourceIdentity: WP })).allowed, true);
    assert.equal(authorize([denyAll], web, conn()).allowed, false);
  });

  it('other policies still apply to the waypoint', () => {
    const d = authorize([enforced('ALLOW', []), authz('shop', 'ns', 'ALLOW', from({ principals: ['cluster.local/ns/shop/sa/web'] }))], web, conn({ sourceIdentity: WP }));
    assert.equal(d.allowed, false);
    assert.match(d.reason, /no ALLOW policy matched \(shop\/ns\)/);
  });
});
