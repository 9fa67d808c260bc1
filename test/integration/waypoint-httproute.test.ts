/**
 * Gateway API HTTPRoutes attached to Services (GAMMA) through the waypoint in a real `strait up`, with curl over
 * HTTP/1.1 and h2c: path Exact / PathPrefix (whole segments) / RegularExpression, header matches (names
 * case-insensitive), query parameters, method; the spec's precedence between rules and between routes, each case built
 * so that the wrong order answers from a visibly different backend (each backend is its own app); weights (0 gets
 * nothing); the filters; route status in the controller's /debug/configz; an HTTPRoute winning over a VirtualService.
 * Addresses: pods 127.0.200.120-.139, Service VIPs 127.0.201.120-.139, nodes 127.0.203.31-.32, the waypoint
 * 127.0.203.33, the controller 127.0.203.39.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { docs } from '../helpers/manifests.js';
import { H2C, TestMesh, demoPod, node } from '../helpers/mesh.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually } from '../helpers/eventually.js';

const NS = 'gw';
const CLIENT = '127.0.200.120';
const SHADOW_POD = '127.0.200.136';
const BACKENDS = ['a', 'b', 'c', 'd', 'e', 'f'] as const;

const namespace = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: { 'istio.io/dataplane-mode': 'ambient', 'istio.io/use-waypoint': 'waypoint' } } };
const gateway = {
  apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'waypoint', namespace: NS },
  spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }], addresses: [{ type: 'IPAddress', value: '127.0.203.33' }] },
};
const service = (name: string, ip: string, app = name) => ({
  apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: NS }, spec: { clusterIP: ip, selector: { app }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
});
const route = (name: string, parent: string, rules: unknown[], created?: string) => ({
  apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute',
  metadata: { name, namespace: NS, ...(created ? { creationTimestamp: created } : {}) },
  spec: { parentRefs: [{ group: '', kind: 'Service', name: parent, port: 80 }], rules },
});
const to = (backend: string, weight?: number, filters?: unknown[]) => ({ name: backend, port: 80, ...(weight !== undefined ? { weight } : {}), ...(filters ? { filters } : {}) });
const prefix = (value: string) => ({ path: { type: 'PathPrefix', value } });
const exact = (value: string) => ({ path: { type: 'Exact', value } });
const rule = (matches: unknown[], backend: string, filters?: unknown[]) => ({ matches, backendRefs: [to(backend)], ...(filters ? { filters } : {}) });

const manifests = () => docs(
  namespace, gateway, node('node-a', '127.0.203.31'), node('node-b', '127.0.203.32'),
  demoPod(NS, 'client', 'node-a', CLIENT, 'client'),
  ...BACKENDS.map((b, i) => demoPod(NS, b, i % 2 ? 'node-a' : 'node-b', `127.0.200.${130 + i}`, b)),
  ...BACKENDS.map((b, i) => service(b, `127.0.201.${130 + i}`)),
  {
    apiVersion: 'v1', kind: 'Pod', metadata: { name: 'shadow', namespace: NS, labels: { app: 'shadow' } },
    spec: { nodeName: 'node-b', serviceAccountName: 'shadow', containers: [{ name: 'app', image: 'example/app', ports: [{ name: 'http', containerPort: 8080 }] }] },
    status: { podIP: SHADOW_POD },
  },
  service('shadow', '127.0.201.136'),
  // Services the routes attach to; their own endpoints are backend a (they are reached only when no route applies).
  service('target', '127.0.201.121', 'a'), service('paths', '127.0.201.122', 'a'), service('weighted', '127.0.201.123', 'a'),
  service('flt', '127.0.201.124', 'a'), service('brk', '127.0.201.125', 'a'), service('both', '127.0.201.126', 'a'),
  {
    apiVersion: 'v1', kind: 'Service', metadata: { name: 'twoport', namespace: NS },
    spec: { clusterIP: '127.0.201.127', selector: { app: 'a' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }, { name: 'http-admin', port: 8081, targetPort: 8080 }] },
  },
  {
    apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'admin-only', namespace: NS },
    spec: { parentRefs: [{ group: '', kind: 'Service', name: 'twoport', sectionName: 'http-admin' }], rules: [{ backendRefs: [to('f')] }] },
  },

  // ---- precedence (Service target) ----
  route('main', 'target', [
    rule([prefix('/foo')], 'a'),
    rule([exact('/foo/bar')], 'b'), // Exact beats any prefix, whatever the rule order
    rule([prefix('/foo/bar')], 'c'), // the longer prefix beats /foo
    rule([prefix('/m')], 'a'),
    rule([{ ...prefix('/m'), method: 'POST' }], 'd'), // a method match beats none
    rule([{ ...prefix('/h'), headers: [{ name: 'x-one', value: '1' }] }], 'a'),
    rule([{ ...prefix('/h'), headers: [{ name: 'x-one', value: '1' }, { name: 'x-two', value: '2' }] }], 'e'), // more headers
    rule([{ ...prefix('/q'), queryParams: [{ name: 'a', value: '1' }] }], 'a'),
    rule([{ ...prefix('/q'), queryParams: [{ name: 'a', value: '1' }, { name: 'b', value: '2' }] }], 'f'), // more query params
    rule([{ ...prefix('/mh'), headers: [{ name: 'x-one', value: '1' }, { name: 'x-two', value: '2' }] }], 'a'),
    rule([{ ...prefix('/mh'), method: 'GET' }], 'b'), // method before header count
    rule([prefix('/same')], 'c'),
    rule([prefix('/same')], 'd'), // equal precedence: the first rule of the route
  ], '2024-03-01T00:00:00Z'),
  // Between routes: equal precedence → the oldest route, then namespace/name; precedence first, whatever the age.
  route('tie-new', 'target', [rule([prefix('/tie')], 'c'), rule([exact('/tie/exact')], 'f')], '2025-01-01T00:00:00Z'),
  route('tie-old', 'target', [rule([prefix('/tie')], 'b')], '2023-01-01T00:00:00Z'),
  route('name-b', 'target', [rule([prefix('/name')], 'e')], '2024-06-01T00:00:00Z'),
  route('name-a', 'target', [rule([prefix('/name')], 'd')], '2024-06-01T00:00:00Z'),

  // ---- path, header, query and method matching (Service paths) ----
  route('paths', 'paths', [
    rule([prefix('/seg/')], 'b'), // a trailing "/" in the value is ignored
    rule([{ path: { type: 'RegularExpression', value: '/rx/[0-9]+' } }], 'c'),
    rule([exact('/only')], 'd'),
    rule([{ ...prefix('/hc'), headers: [{ name: 'X-Mixed-Case', value: 'v' }] }], 'e'),
    rule([{ ...prefix('/hre'), headers: [{ type: 'RegularExpression', name: 'x-re', value: 'a+b' }] }], 'f'),
    rule([{ ...prefix('/qp'), queryParams: [{ name: 'k', value: 'v' }] }], 'a'),
    rule([{ ...prefix('/meth'), method: 'PATCH' }], 'b'),
    rule([exact('/or-1'), exact('/or-2')], 'c'),
    // "/tr/" is the prefix "/tr" (a trailing "/" is ignored), as long as "/tr": the header match decides.
    rule([prefix('/tr/')], 'd'),
    rule([{ ...prefix('/tr'), headers: [{ name: 'x-one', value: '1' }] }], 'e'),
  ]),

  // ---- weights (Service weighted) ----
  route('weighted', 'weighted', [{ backendRefs: [to('a', 3), to('b', 1), to('c', 0)] }]),

  // ---- filters (Service flt) ----
  route('filters', 'flt', [
    rule([prefix('/rhm')], 'a', [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'X-Set', value: 'one' }, { name: 'x-over', value: 'replaced' }], add: [{ name: 'x-add', value: 'added' }], remove: ['x-remove'] } }]),
    rule([prefix('/resp')], 'a', [{ type: 'ResponseHeaderModifier', responseHeaderModifier: { set: [{ name: 'x-resp', value: 'r' }], add: [{ name: 'x-resp-add', value: 'r2' }], remove: ['cache-control'] } }]),
    { matches: [prefix('/per-backend')], backendRefs: [to('b', 1, [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-backend', value: 'b' }] } }])] },
    { matches: [prefix('/redir')], filters: [{ type: 'RequestRedirect', requestRedirect: { scheme: 'https', hostname: 'example.com', statusCode: 301 } }] },
    { matches: [prefix('/moved')], filters: [{ type: 'RequestRedirect', requestRedirect: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/new' } } }] },
    rule([prefix('/rw-full')], 'a', [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplaceFullPath', replaceFullPath: '/full' } } }]),
    rule([prefix('/rw-prefix')], 'a', [{ type: 'URLRewrite', urlRewrite: { hostname: 'rewritten.gw', path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/new' } } }]),
    rule([prefix('/rw-root')], 'a', [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/' } } }]),
    rule([prefix('/mirror')], 'c', [{ type: 'RequestMirror', requestMirror: { backendRef: { name: 'shadow', port: 80 } } }]),
  ]),

  // ---- a missing backend (Service brk) ----
  route('broken', 'brk', [rule([prefix('/missing')], 'nope'), rule([prefix('/fine')], 'b'), { matches: [prefix('/half')], backendRefs: [to('nope', 1), to('c', 1)] }]),

  // ---- an HTTPRoute and a VirtualService for one Service (both) ----
  route('both-route', 'both', [{ backendRefs: [to('e')] }]),
  { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'both-vs', namespace: NS }, spec: { hosts: ['both'], http: [{ route: [{ destination: { host: 'f' } }] }] } },
);

describe('HTTPRoute (GAMMA) through the waypoint', () => {
  const dir = tempDir('wp-httproute');
  let mesh: TestMesh;
  let shadow: http.Server;
  const mirrored: { url: string; authority: string }[] = [];

  before(async () => {
    writeFileSync(join(dir.path, 'mesh.yaml'), manifests());
    shadow = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => { mirrored.push({ url: req.url ?? '', authority: req.headers.host ?? '' }); res.end('shadow\n'); });
    });
    await new Promise<void>((r) => shadow.listen(8080, SHADOW_POD, r));
    mesh = await new TestMesh(dir.path, ['--controller-address', '127.0.203.39']).start();
  });
  after(async () => {
    await mesh?.stop();
    mesh?.cleanup();
    shadow?.closeAllConnections();
    shadow?.close();
    dir.remove();
  });

  const configz = async () => (await fetch(`http://${mesh.state.controller.admin}/debug/configz`)).json() as Promise<any>;
  const accessLine = (path: string) => eventually(() => mesh.logs(`waypoint/${NS}/waypoint`).find((l) => l.msg === 'request complete' && l.path === path), 5000, `access log line for ${path}`);

  for (const [proto, extra] of [['HTTP/1.1', []], ['h2c', H2C]] as const) {
    /** Which backend answered ("404" etc. when none did). */
    const who = async (url: string, more: string[] = []): Promise<string> => {
      const r = await mesh.curlJson(CLIENT, 'node-a', url, [...extra, ...more]);
      assert.equal(r.exit, 0, r.stderr);
      assert.equal(r.httpVersion, proto === 'h2c' ? '2' : '1.1');
      return r.status === 200 ? String(r.body?.app) : String(r.status);
    };

    it(`precedence between rules: Exact, longest prefix, method, header count, query count, then rule order (${proto})`, async () => {
      assert.equal(await who(`http://target.${NS}/foo`), 'a');
      assert.equal(await who(`http://target.${NS}/foo/bar`), 'b', 'Exact beats the prefixes /foo and /foo/bar');
      assert.equal(await who(`http://target.${NS}/foo/bar/baz`), 'c', 'the longer prefix wins');
      assert.equal(await who(`http://target.${NS}/foo/barn`), 'a', '/foo/bar does not cover /foo/barn');
      assert.equal(await who(`http://target.${NS}/m`, ['-X', 'POST']), 'd', 'a method match beats none');
      assert.equal(await who(`http://target.${NS}/m`), 'a');
      assert.equal(await who(`http://target.${NS}/h`, ['-H', 'x-one: 1', '-H', 'x-two: 2']), 'e', 'two header matches beat one');
      assert.equal(await who(`http://target.${NS}/h`, ['-H', 'x-one: 1']), 'a');
      assert.equal(await who(`http://target.${NS}/q?a=1&b=2`), 'f', 'two query matches beat one');
      assert.equal(await who(`http://target.${NS}/q?a=1`), 'a');
      assert.equal(await who(`http://target.${NS}/mh`, ['-H', 'x-one: 1', '-H', 'x-two: 2']), 'b', 'a method match beats two header matches');
      assert.equal(await who(`http://target.${NS}/same`), 'c', 'equal precedence: the first rule');
    });

    it(`precedence between routes: the oldest creationTimestamp, then the name; precedence before age (${proto})`, async () => {
      assert.equal(await who(`http://target.${NS}/tie`), 'b', 'tie-old (2023) before tie-new (2025)');
      assert.equal(await who(`http://target.${NS}/name`), 'd', 'same age: name-a before name-b');
      assert.equal(await who(`http://target.${NS}/tie/exact`), 'f', 'the newer route\'s Exact beats the older route\'s prefix');
      assert.equal(await who(`http://target.${NS}/unrouted`), '404', 'no rule matches: 404');
    });

    it(`path Exact, PathPrefix by whole segments, RegularExpression; headers (any case), regex; query; method; several matches (${proto})`, async () => {
      assert.equal(await who(`http://paths.${NS}/seg`), 'b');
      assert.equal(await who(`http://paths.${NS}/seg/`), 'b');
      assert.equal(await who(`http://paths.${NS}/seg/deeper`), 'b');
      assert.equal(await who(`http://paths.${NS}/segment`), '404', 'PathPrefix /seg does not match /segment');
      assert.equal(await who(`http://paths.${NS}/rx/42`), 'c');
      assert.equal(await who(`http://paths.${NS}/rx/42x`), '404', 'a regex matches the whole path');
      assert.equal(await who(`http://paths.${NS}/only`), 'd');
      assert.equal(await who(`http://paths.${NS}/only/`), '404', 'Exact is exact');
      assert.equal(await who(`http://paths.${NS}/hc`, ['-H', 'x-mixed-case: v']), 'e', 'header names are case-insensitive');
      assert.equal(await who(`http://paths.${NS}/hc`, ['-H', 'X-MIXED-CASE: v']), 'e');
      assert.equal(await who(`http://paths.${NS}/hc`, ['-H', 'x-mixed-case: V']), '404', 'header values are not');
      assert.equal(await who(`http://paths.${NS}/hre`, ['-H', 'x-re: aaab']), 'f');
      assert.equal(await who(`http://paths.${NS}/hre`, ['-H', 'x-re: aaabc']), '404');
      assert.equal(await who(`http://paths.${NS}/qp?x=1&k=v`), 'a');
      assert.equal(await who(`http://paths.${NS}/qp?k=w`), '404');
      assert.equal(await who(`http://paths.${NS}/meth`, ['-X', 'PATCH']), 'b');
      assert.equal(await who(`http://paths.${NS}/meth`), '404');
      assert.equal(await who(`http://paths.${NS}/or-2`), 'c');
      assert.equal(await who(`http://paths.${NS}/tr/x`, ['-H', 'x-one: 1']), 'e', 'PathPrefix "/tr/" is no longer than "/tr"');
      assert.equal(await who(`http://paths.${NS}/tr/x`), 'd');
    });
  }

  it('no matching rule: 404 with flag NR', async () => {
    const r = await mesh.curlJson(CLIENT, 'node-a', `http://paths.${NS}/nowhere`);
    assert.equal(r.status, 404);
    const line = await accessLine('/nowhere');
    assert.equal(line.response_flags, 'NR');
  });

  it('the access log names the route, rule and match', async () => {
    await mesh.curlJson(CLIENT, 'node-a', `http://paths.${NS}/or-2?log`);
    assert.equal((await accessLine('/or-2?log')).route, 'HTTPRoute/gw/paths/rules[7]/matches[1]');
  });

  it('backendRefs weights 3 / 1 / 0 over 400 requests: 75 % / 25 % within ±7 %, weight 0 gets nothing', async () => {
    const r = await mesh.curlBatch(CLIENT, 'node-a', `http://weighted.${NS}/`, 400, { tally: 'app' });
    assert.deepEqual(r.statuses, { 200: 400 });
    assert.equal(r.tally.c, undefined, 'weight 0');
    const a = (r.tally.a ?? 0) / 400;
    assert.ok(Math.abs(a - 0.75) <= 0.07, `a got ${(a * 100).toFixed(1)} % (want 75 ± 7)`);
    assert.equal((r.tally.a ?? 0) + (r.tally.b ?? 0), 400);
  });

  for (const [proto, extra] of [['HTTP/1.1', []], ['h2c', H2C]] as const) {
    it(`RequestHeaderModifier (rule and backendRef) and ResponseHeaderModifier (${proto})`, async () => {
      const r = await mesh.curlJson(CLIENT, 'node-a', `http://flt.${NS}/rhm`, [...extra, '-H', 'x-over: original', '-H', 'x-add: first', '-H', 'x-remove: gone']);
      const h = r.body.headers as Record<string, string>;
      assert.equal(h['x-set'], 'one');
      assert.equal(h['x-over'], 'replaced');
      assert.equal(h['x-add'], 'first,added');
      assert.equal(h['x-remove'], undefined);
      const b = await mesh.curlJson(CLIENT, 'node-a', `http://flt.${NS}/per-backend`, [...extra]);
      assert.equal(b.body.app, 'b');
      assert.equal(b.body.headers['x-backend'], 'b');
      const s = await mesh.curlJson(CLIENT, 'node-a', `http://flt.${NS}/resp`, [...extra]);
      assert.equal(s.status, 200);
      assert.deepEqual(s.headers['x-resp'], ['r']);
      assert.deepEqual(s.headers['x-resp-add'], ['r2']);
      assert.equal(s.headers['cache-control'], undefined);
    });

    it(`RequestRedirect: scheme and host (port dropped), ReplacePrefixMatch path, status 301 / 302 (${proto})`, async () => {
      const a = await mesh.curlJson(CLIENT, 'node-a', `http://flt.${NS}/redir/x?y=1`, [...extra]);
      assert.equal(a.status, 301);
      assert.deepEqual(a.headers.location, ['https://example.com/redir/x?y=1']);
      const b = await mesh.curlJson(CLIENT, 'node-a', `http://flt.${NS}/moved/page`, [...extra]);
      assert.equal(b.status, 302, 'Gateway API default');
      assert.deepEqual(b.headers.location, [`http://flt.${NS}/new/page`]);
    });

    it(`URLRewrite ReplaceFullPath, ReplacePrefixMatch (whole segments), hostname: what the backend sees (${proto})`, async () => {
      const full = await mesh.curlJson(CLIENT, 'node-a', `http://flt.${NS}/rw-full/a/b?k=1`, [...extra]);
      assert.equal(full.body.path, '/full');
      assert.deepEqual(full.body.query, { k: '1' });
      const pre = await mesh.curlJson(CLIENT, 'node-a', `http://flt.${NS}/rw-prefix/a/b`, [...extra]);
      assert.equal(pre.body.path, '/new/a/b');
      assert.equal(pre.body.authority, 'rewritten.gw');
      const bare = await mesh.curlJson(CLIENT, 'node-a', `http://flt.${NS}/rw-prefix`, [...extra]);
      assert.equal(bare.body.path, '/new');
      const root = await mesh.curlJson(CLIENT, 'node-a', `http://flt.${NS}/rw-root/x`, [...extra]);
      assert.equal(root.body.path, '/x', 'replacing with "/" never leaves "//"');
    });
  }

  it('RequestMirror: the mirror backend gets a copy; the client gets the primary\'s answer', async () => {
    const before = mirrored.length;
    const r = await mesh.curlJson(CLIENT, 'node-a', `http://flt.${NS}/mirror/m1`);
    assert.equal(r.status, 200);
    assert.equal(r.body.app, 'c');
    const copy = await eventually(() => mirrored.slice(before).find((m) => m.url === '/mirror/m1'), 5000, 'the mirrored copy');
    assert.match(copy.authority, /-shadow/);
  });

  it('a backendRef to a missing Service: ResolvedRefs False (BackendNotFound) in /debug/configz, 500 for its rule, the others work', async () => {
    const cz = await configz();
    const parents = cz.httpRoutes[`${NS}/broken`].parents as { conditions: { type: string; status: string; reason: string }[] }[];
    assert.deepEqual(parents[0]!.conditions.map((c) => [c.type, c.status, c.reason]), [['Accepted', 'True', 'Accepted'], ['ResolvedRefs', 'False', 'BackendNotFound']]);
    const ok = cz.httpRoutes[`${NS}/paths`].parents[0].conditions as { type: string; status: string }[];
    assert.deepEqual(ok.map((c) => [c.type, c.status]), [['Accepted', 'True'], ['ResolvedRefs', 'True']]);
    const missing = await mesh.curlJson(CLIENT, 'node-a', `http://brk.${NS}/missing`);
    assert.equal(missing.status, 500);
    assert.equal((await mesh.curlJson(CLIENT, 'node-a', `http://brk.${NS}/fine`)).body.app, 'b');
    // Half the weight on the missing Service: that half gets 500, the rest reach c.
    const half = await mesh.curlBatch(CLIENT, 'node-a', `http://brk.${NS}/half`, 100, { tally: 'app' });
    assert.equal((half.statuses[500] ?? 0) + (half.statuses[200] ?? 0), 100, JSON.stringify(half.statuses));
    assert.ok((half.statuses[500] ?? 0) >= 25 && (half.statuses[200] ?? 0) >= 25, JSON.stringify(half.statuses));
    assert.equal(half.tally.c, half.statuses[200]);
  });

  it('a route attached to one port (sectionName) routes that port; the other port reaches the Service\'s own endpoints', async () => {
    assert.equal((await mesh.curlJson(CLIENT, 'node-a', `http://twoport.${NS}:8081/`)).body.app, 'f');
    assert.equal((await mesh.curlJson(CLIENT, 'node-a', `http://twoport.${NS}/`)).body.app, 'a');
  });

  it('an HTTPRoute and a VirtualService for one Service: the HTTPRoute routes it, and /debug/configz says so', async () => {
    const r = await mesh.curlBatch(CLIENT, 'node-a', `http://both.${NS}/`, 10, { tally: 'app' });
    assert.deepEqual(r.tally, { e: 10 });
    const routedBy = (await configz()).waypoints[`${NS}/waypoint`].services[`${NS}/both`].routedBy;
    assert.equal(routedBy.kind, 'HTTPRoute');
    assert.deepEqual(routedBy.objects, [`${NS}/both-route`]);
    assert.equal(routedBy.shadowed[0].object, `${NS}/both-vs`);
    assert.match(routedBy.shadowed[0].reason, /HTTPRoutes win over VirtualServices/);
  });
});
