/**
 * Istio VirtualService routing through the waypoint in a real `strait up`, with curl over HTTP/1.1 and h2c: every
 * match kind (uri exact / prefix / regex, ignoreUriCase, headers exact / prefix / regex / present, withoutHeaders,
 * method, queryParams, port), OR between matches, the first matching http[] rule winning, no match → 404 NR, a service
 * with no route reaching all its endpoints; header manipulation (request set / add / remove, response, per
 * destination), redirect, rewrite (uri, authority), mirror and mirrorPercentage.
 * Each rule of the `match` VirtualService tags the request with `x-rule`, which the demo app echoes back, so every
 * case shows which rule matched.
 * Addresses: pods 127.0.200.40-.59, Service VIPs 127.0.201.40-.59, nodes 127.0.203.11-.12, the waypoint
 * 127.0.203.13, the controller 127.0.203.19.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { docs } from '../helpers/manifests.js';
import { H2C, TestMesh, demoPod, node } from '../helpers/mesh.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually } from '../helpers/eventually.js';

const NS = 'vs';
const CLIENT = '127.0.200.40';
const SHADOW_POD = '127.0.200.48';

const namespace = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: { 'istio.io/dataplane-mode': 'ambient', 'istio.io/use-waypoint': 'waypoint' } } };
const gateway = {
  apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'waypoint', namespace: NS },
  spec: { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }], addresses: [{ type: 'IPAddress', value: '127.0.203.13' }] },
};
const service = (name: string, ip: string, selector: Record<string, string>, ports: unknown[] = [{ name: 'http', port: 80, targetPort: 8080 }]) => ({
  apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: NS }, spec: { clusterIP: ip, selector, ports },
});
const vs = (name: string, spec: Record<string, unknown>) => ({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name, namespace: NS }, spec });
/** A route to echo whose request carries x-rule: <tag>. */
const tagged = (tag: string, match?: unknown[]) => ({
  ...(match ? { match } : {}),
  route: [{ destination: { host: 'echo' } }],
  headers: { request: { set: { 'x-rule': tag } } },
});

const manifests = () => docs(
  namespace, gateway, node('node-a', '127.0.203.11'), node('node-b', '127.0.203.12'),
  demoPod(NS, 'client', 'node-a', CLIENT, 'client'),
  demoPod(NS, 'echo-v1', 'node-b', '127.0.200.41', 'echo', { labels: { app: 'echo', version: 'v1' } }),
  demoPod(NS, 'echo-v2', 'node-a', '127.0.200.42', 'echo', { labels: { app: 'echo', version: 'v2' } }),
  demoPod(NS, 'plain-1', 'node-b', '127.0.200.46', 'plain', { labels: { app: 'plain' } }),
  demoPod(NS, 'plain-2', 'node-a', '127.0.200.47', 'plain', { labels: { app: 'plain' } }),
  // The mirror target: the test's own HTTP server on the pod's address records what it receives.
  {
    apiVersion: 'v1', kind: 'Pod', metadata: { name: 'shadow', namespace: NS, labels: { app: 'shadow' } },
    spec: { nodeName: 'node-b', serviceAccountName: 'shadow', containers: [{ name: 'app', image: 'example/app', ports: [{ name: 'http', containerPort: 8080 }] }] },
    status: { podIP: SHADOW_POD },
  },
  service('echo', '127.0.201.40', { app: 'echo' }),
  service('match', '127.0.201.41', { app: 'echo' }, [{ name: 'http', port: 80, targetPort: 8080 }, { name: 'http-alt', port: 8081, targetPort: 8080 }]),
  service('filters', '127.0.201.42', { app: 'echo' }, [{ name: 'http', port: 80, targetPort: 8080 }, { name: 'http-alt', port: 8082, targetPort: 8080 }]),
  service('plain', '127.0.201.43', { app: 'plain' }),
  service('shadow', '127.0.201.48', { app: 'shadow' }),
  vs('match', {
    hosts: ['match'],
    http: [
      tagged('uri-exact', [{ uri: { exact: '/exact' } }]),
      tagged('uri-prefix', [{ uri: { prefix: '/pre' } }]),
      tagged('uri-regex', [{ uri: { regex: '/re/[0-9]+' } }]),
      tagged('ignore-case', [{ uri: { exact: '/Case' }, ignoreUriCase: true }]),
      tagged('h-exact', [{ headers: { 'x-h-exact': { exact: 'yes' } } }]),
      tagged('h-prefix', [{ headers: { 'x-h-prefix': { prefix: 'abc' } } }]),
      tagged('h-regex', [{ headers: { 'x-h-regex': { regex: 'v[0-9]+\\.[0-9]+' } } }]),
      tagged('h-present', [{ headers: { 'x-h-present': {} } }]),
      tagged('method', [{ method: { exact: 'DELETE' } }]),
      tagged('query-exact', [{ queryParams: { q: { exact: '1' } } }]),
      tagged('query-regex', [{ queryParams: { r: { regex: '[a-z]+' } } }]),
      tagged('port', [{ port: 8081 }]),
      tagged('first-a', [{ uri: { prefix: '/first' }, headers: { 'x-order': { exact: 'a' } } }]),
      tagged('first', [{ uri: { prefix: '/first' } }]),
      tagged('without', [{ uri: { prefix: '/wo' }, withoutHeaders: { 'x-block': { exact: 'yes' } } }]),
      tagged('or', [{ uri: { exact: '/or1' } }, { uri: { exact: '/or2' } }]),
      tagged('authority', [{ authority: { prefix: 'alias.' } }]),
      // No catch-all: anything else gets 404 with flag NR.
    ],
  }),
  {
    apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'echo', namespace: NS },
    spec: { host: 'echo', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] },
  },
  vs('filters', {
    hosts: ['filters'],
    http: [
      {
        match: [{ uri: { prefix: '/hdr' } }],
        route: [{ destination: { host: 'echo', subset: 'v1' }, headers: { request: { set: { 'x-dest': 'v1' } }, response: { add: { 'x-dest-resp': 'v1' } } } }],
        headers: {
          request: { set: { 'x-set': 'one', 'x-over': 'replaced' }, add: { 'x-add': 'added' }, remove: ['x-remove'] },
          response: { set: { 'x-resp-set': 'r1' }, add: { 'x-resp-add': 'r2' }, remove: ['cache-control'] },
        },
      },
      { match: [{ uri: { prefix: '/old' } }], redirect: { uri: '/new', authority: 'other.vs', redirectCode: 308 } },
      { match: [{ uri: { prefix: '/moved' } }], redirect: { uri: '/here' } },
      { match: [{ uri: { prefix: '/rw' } }], route: [{ destination: { host: 'echo' } }], rewrite: { uri: '/rewritten', authority: 'rewritten.example' } },
      { match: [{ uri: { exact: '/full' } }], route: [{ destination: { host: 'echo' } }], rewrite: { uri: '/replaced/whole' } },
      { match: [{ uri: { prefix: '/mirror' } }], route: [{ destination: { host: 'echo', subset: 'v2' } }], mirror: { host: 'shadow' } },
      { match: [{ uri: { prefix: '/half' } }], route: [{ destination: { host: 'echo' } }], mirror: { host: 'shadow' }, mirrorPercentage: { value: 50 } },
    ],
  }),
);

interface Mirrored { url: string; authority: string; headers: http.IncomingHttpHeaders; bodyBytes: number }

describe('VirtualService routing through the waypoint', () => {
  const dir = tempDir('wp-vs');
  let mesh: TestMesh;
  let shadow: http.Server;
  const mirrored: Mirrored[] = [];

  before(async () => {
    writeFileSync(join(dir.path, 'mesh.yaml'), manifests());
    shadow = http.createServer((req, res) => {
      let bodyBytes = 0;
      req.on('data', (c: Buffer) => { bodyBytes += c.length; });
      req.on('end', () => {
        mirrored.push({ url: req.url ?? '', authority: req.headers.host ?? '', headers: req.headers, bodyBytes });
        res.end('shadow\n');
      });
    });
    await new Promise<void>((r) => shadow.listen(8080, SHADOW_POD, r));
    mesh = await new TestMesh(dir.path, ['--controller-address', '127.0.203.19']).start();
  });
  after(async () => {
    await mesh?.stop();
    mesh?.cleanup();
    shadow?.closeAllConnections();
    shadow?.close();
    dir.remove();
  });

  const accessLine = (path: string) => eventually(() => mesh.logs(`waypoint/${NS}/waypoint`).find((l) => l.msg === 'request complete' && l.path === path), 5000, `access log line for ${path}`);

  for (const [proto, extra] of [['HTTP/1.1', []], ['h2c', H2C]] as const) {
    const get = async (url: string, more: string[] = []) => {
      const r = await mesh.curlJson(CLIENT, 'node-a', url, [...extra, ...more]);
      assert.equal(r.exit, 0, r.stderr);
      assert.equal(r.httpVersion, proto === 'h2c' ? '2' : '1.1');
      return r;
    };
    const rule = async (url: string, more: string[] = []) => {
      const r = await get(url, more);
      return r.status === 200 ? String(r.body?.headers?.['x-rule']) : `status ${r.status}`;
    };

    it(`uri exact, prefix (a plain string prefix), regex (whole path) and ignoreUriCase (${proto})`, async () => {
      assert.equal(await rule(`http://match.${NS}/exact`), 'uri-exact');
      assert.equal(await rule(`http://match.${NS}/exact/more`), 'status 404', 'exact is the whole path');
      assert.equal(await rule(`http://match.${NS}/exact?x=1`), 'uri-exact', 'the query is not part of the path');
      assert.equal(await rule(`http://match.${NS}/pre`), 'uri-prefix');
      assert.equal(await rule(`http://match.${NS}/prefix/a`), 'uri-prefix', 'a VirtualService prefix is a string prefix');
      assert.equal(await rule(`http://match.${NS}/re/2024`), 'uri-regex');
      assert.equal(await rule(`http://match.${NS}/re/20x4`), 'status 404');
      assert.equal(await rule(`http://match.${NS}/x/re/1`), 'status 404', 'a regex matches the whole path');
      assert.equal(await rule(`http://match.${NS}/cASE`), 'ignore-case');
      assert.equal(await rule(`http://match.${NS}/CASE/x`), 'status 404');
    });

    it(`headers exact, prefix, regex and present; withoutHeaders (${proto})`, async () => {
      assert.equal(await rule(`http://match.${NS}/h`, ['-H', 'x-h-exact: yes']), 'h-exact');
      assert.equal(await rule(`http://match.${NS}/h`, ['-H', 'x-h-exact: yes!']), 'status 404');
      assert.equal(await rule(`http://match.${NS}/h`, ['-H', 'X-H-Exact: yes']), 'h-exact', 'header names are case-insensitive');
      assert.equal(await rule(`http://match.${NS}/h`, ['-H', 'x-h-prefix: abcdef']), 'h-prefix');
      assert.equal(await rule(`http://match.${NS}/h`, ['-H', 'x-h-prefix: xabc']), 'status 404');
      assert.equal(await rule(`http://match.${NS}/h`, ['-H', 'x-h-regex: v1.25']), 'h-regex');
      assert.equal(await rule(`http://match.${NS}/h`, ['-H', 'x-h-regex: v1.25-beta']), 'status 404', 'a header regex matches the whole value');
      assert.equal(await rule(`http://match.${NS}/h`, ['-H', 'x-h-present: anything']), 'h-present');
      assert.equal(await rule(`http://match.${NS}/h`, ['-H', 'x-h-present;']), 'h-present', 'an empty value is present');
      assert.equal(await rule(`http://match.${NS}/wo`), 'without', 'withoutHeaders: the header absent');
      assert.equal(await rule(`http://match.${NS}/wo`, ['-H', 'x-block: no']), 'without', 'withoutHeaders: another value');
      assert.equal(await rule(`http://match.${NS}/wo`, ['-H', 'x-block: yes']), 'status 404', 'withoutHeaders: the value named');
    });

    it(`method, queryParams, port, OR between matches (${proto})`, async () => {
      assert.equal(await rule(`http://match.${NS}/m`, ['-X', 'DELETE']), 'method');
      assert.equal(await rule(`http://match.${NS}/m`, ['-X', 'PUT']), 'status 404');
      assert.equal(await rule(`http://match.${NS}/q?q=1`), 'query-exact');
      assert.equal(await rule(`http://match.${NS}/q?q=10`), 'status 404');
      assert.equal(await rule(`http://match.${NS}/q?a=b&r=abc`), 'query-regex');
      assert.equal(await rule(`http://match.${NS}/q?r=abc1`), 'status 404');
      assert.equal(await rule(`http://match.${NS}:8081/anything`), 'port');
      assert.equal(await rule(`http://match.${NS}/or1`), 'or');
      assert.equal(await rule(`http://match.${NS}/or2`), 'or');
      assert.equal(await rule(`http://match.${NS}/auth`, ['-H', 'host: alias.example']), 'authority');
      assert.equal(await rule(`http://match.${NS}/auth`), 'status 404');
      // Addressed by its cluster IP rather than its name: the same Service, the same routes.
      assert.equal(await rule('http://127.0.201.41/exact'), 'uri-exact');
    });

    it(`the first matching http[] rule wins (${proto})`, async () => {
      assert.equal(await rule(`http://match.${NS}/first`, ['-H', 'x-order: a']), 'first-a');
      assert.equal(await rule(`http://match.${NS}/first`), 'first');
      // /exact with x-h-exact: both rules 0 and 4 match; rule 0 comes first.
      assert.equal(await rule(`http://match.${NS}/exact`, ['-H', 'x-h-exact: yes']), 'uri-exact');
      // Port 8081 with a DELETE: the method rule comes before the port rule.
      assert.equal(await rule(`http://match.${NS}:8081/p`, ['-X', 'DELETE']), 'method');
    });
  }

  it('no matching rule: 404 with flag NR in the access log, and nothing reaches a backend', async () => {
    const r = await mesh.curlJson(CLIENT, 'node-a', `http://match.${NS}/nothing-matches`);
    assert.equal(r.status, 404);
    const line = await accessLine('/nothing-matches');
    assert.equal(line.status, 404);
    assert.equal(line.response_flags, 'NR');
    assert.equal(line.attempts, 0);
    assert.equal(line.upstream, undefined);
  });

  it('the access log names the rule that matched, with its match index when a rule has several', async () => {
    await mesh.curlJson(CLIENT, 'node-a', `http://match.${NS}/or2?log=1`);
    assert.equal((await accessLine('/or2?log=1')).route, 'VirtualService/vs/match/http[15]/match[1]');
    await mesh.curlJson(CLIENT, 'node-a', `http://match.${NS}/re/7`);
    assert.equal((await accessLine('/re/7')).route, 'VirtualService/vs/match/http[2]');
  });

  it('a service with no route goes to its own endpoints, every one of them', async () => {
    const r = await mesh.curlBatch(CLIENT, 'node-a', `http://plain.${NS}/`, 40, { tally: 'pod' });
    assert.deepEqual(r.statuses, { 200: 40 });
    assert.ok((r.tally['plain-1'] ?? 0) >= 5 && (r.tally['plain-2'] ?? 0) >= 5, JSON.stringify(r.tally));
    const line = await eventually(() => mesh.logs(`waypoint/${NS}/waypoint`).find((l) => l.msg === 'request complete' && l['dst.service'] === `plain.${NS}.svc.cluster.local`), 5000, 'an access-log line for plain');
    assert.equal(line.route, `Service/${NS}/plain`);
  });

  it('a VirtualService added to the manifest directory routes at once, and removed gives the service back its endpoints', async () => {
    const file = join(dir.path, 'live.yaml');
    writeFileSync(file, docs(vs('plain', { hosts: ['plain'], http: [{ route: [{ destination: { host: 'echo', subset: 'v2' } }] }] })));
    await eventually(async () => (await mesh.curlJson(CLIENT, 'node-a', `http://plain.${NS}/live`)).body?.pod === 'echo-v2', 10_000, 'the new VirtualService to route plain to echo v2');
    const r = await mesh.curlBatch(CLIENT, 'node-a', `http://plain.${NS}/live`, 20, { tally: 'pod' });
    assert.deepEqual(r.tally, { 'echo-v2': 20 });
    rmSync(file);
    await eventually(async () => String((await mesh.curlJson(CLIENT, 'node-a', `http://plain.${NS}/live`)).body?.pod).startsWith('plain-'), 10_000, 'plain to answer itself again');
  });

  for (const [proto, extra] of [['HTTP/1.1', []], ['h2c', H2C]] as const) {
    it(`request headers set / add / remove, per-destination headers, response headers set / add / remove (${proto})`, async () => {
      const r = await mesh.curlJson(CLIENT, 'node-a', `http://filters.${NS}/hdr`, [...extra, '-H', 'x-over: original', '-H', 'x-add: first', '-H', 'x-remove: gone', '-H', 'x-keep: kept']);
      assert.equal(r.status, 200, r.stderr);
      const h = r.body.headers as Record<string, string>;
      assert.equal(h['x-set'], 'one');
      assert.equal(h['x-over'], 'replaced', 'set replaces the value sent');
      assert.equal(h['x-add'], 'first,added', 'add appends to the value sent');
      assert.equal(h['x-remove'], undefined);
      assert.equal(h['x-keep'], 'kept');
      assert.equal(h['x-dest'], 'v1', 'the destination\'s own request headers');
      assert.equal(r.body.version, 'v1');
      assert.deepEqual(r.headers['x-resp-set'], ['r1']);
      assert.deepEqual(r.headers['x-resp-add'], ['r2']);
      assert.deepEqual(r.headers['x-dest-resp'], ['v1'], 'the destination\'s own response headers');
      assert.equal(r.headers['cache-control'], undefined, 'removed from the response');
      assert.deepEqual(r.headers['content-type'], ['application/json']);
    });

    it(`redirect: Location and status as written, 301 by default, query kept (${proto})`, async () => {
      const a = await mesh.curlJson(CLIENT, 'node-a', `http://filters.${NS}/old/page?x=1`, [...extra]);
      assert.equal(a.status, 308);
      assert.deepEqual(a.headers.location, ['http://other.vs/new?x=1']);
      const b = await mesh.curlJson(CLIENT, 'node-a', `http://filters.${NS}/moved`, [...extra]);
      assert.equal(b.status, 301);
      assert.deepEqual(b.headers.location, [`http://filters.${NS}/here`]);
    });

    it(`rewrite: a prefix match's prefix replaced, an exact match's whole path, the authority (${proto})`, async () => {
      const a = await mesh.curlJson(CLIENT, 'node-a', `http://filters.${NS}/rw/deeper/x?q=2`, [...extra]);
      assert.equal(a.status, 200);
      assert.equal(a.body.path, '/rewritten/deeper/x');
      assert.deepEqual(a.body.query, { q: '2' });
      assert.equal(a.body.authority, 'rewritten.example');
      const b = await mesh.curlJson(CLIENT, 'node-a', `http://filters.${NS}/full`, [...extra]);
      assert.equal(b.body.path, '/replaced/whole');
      assert.equal(b.body.authority, `filters.${NS}`);
    });
  }

  it('mirror: the shadow gets a copy (host with -shadow, the body too); the client gets the primary\'s answer', async () => {
    const before = mirrored.length;
    const r = await mesh.curlJson(CLIENT, 'node-a', `http://filters.${NS}/mirror/one`, ['-d', 'hello shadow', '-H', 'x-trace-me: 1']);
    assert.equal(r.status, 200);
    assert.equal(r.body.version, 'v2', 'the primary answered');
    const copy = await eventually(() => mirrored.slice(before).find((m) => m.url === '/mirror/one'), 5000, 'the mirrored copy');
    assert.match(copy.authority, new RegExp(`^filters\\.${NS}-shadow(:80)?$`));
    assert.equal(copy.headers['x-trace-me'], '1');
    assert.equal(copy.bodyBytes, 'hello shadow'.length);
    // On another port: the port stays after the suffix (Envoy's shadow host), it is not dropped.
    await mesh.curlJson(CLIENT, 'node-a', `http://filters.${NS}:8082/mirror/two`);
    const two = await eventually(() => mirrored.find((m) => m.url === '/mirror/two'), 5000, 'the mirrored copy on port 8082');
    assert.equal(two.authority, `filters.${NS}-shadow:8082`);
  });

  it('mirrorPercentage 50: about half of 200 requests are mirrored', async () => {
    const before = mirrored.length;
    const r = await mesh.curlBatch(CLIENT, 'node-a', `http://filters.${NS}/half`, 200);
    assert.deepEqual(r.statuses, { 200: 200 });
    await new Promise((res) => setTimeout(res, 500));
    const n = mirrored.slice(before).filter((m) => m.url === '/half').length;
    // Binomial(200, 0.5): sd 7.1, so 65..135 is nearly 5 sd either side.
    assert.ok(n >= 65 && n <= 135, `${n} of 200 mirrored`);
  });
});
