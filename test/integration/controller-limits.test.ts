// Issue 13, defects 2–5 against the real controller process: subscriptions of any size, streams per credential
// and per connection, authentication at stream start (xDS and CA) with bounded logs and a metric, and what each
// credential may subscribe as. Clients are grpc-js (the proxies' library) and, for calls that send headers and
// then nothing, node:http2.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TYPE_AUTHORIZATION, TYPE_ROUTE, TYPE_WORKLOAD } from '../../src/common/xds/resources.js';
import { CaClient } from '../../src/identity/ca-client.js';
import { createKeyAndCsr } from '../../src/identity/index.js';
import { startController, type ControllerHandle } from '../helpers/controller.js';
import { docs, namespace, pod, service, waypoint } from '../helpers/manifests.js';
import { metricValue } from '../helpers/metrics.js';
import { run, STRAIT_BIN } from '../helpers/procs.js';
import { RawGrpcCall } from '../helpers/raw-grpc.js';
import { RawAdsStream, wireNode, type StreamEnd } from '../helpers/xds.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually } from '../helpers/eventually.js';

const NODES = ['node-a', 'node-b', 'node-c', 'node-d'];
const mesh = docs(
  namespace('shop', { 'istio.io/dataplane-mode': 'ambient' }),
  ...NODES.map((n, i) => pod('shop', `web-${i}`, { node: n, sa: 'web', ip: `10.0.0.${i + 1}`, labels: { app: 'web' } })),
  service('shop', 'web', { ip: '10.96.0.1' }),
  waypoint('shop', 'wp'),
);
const CA_PATH = '/strait.ca.v1.CertificateService/CreateCertificate';
const within = <T>(p: Promise<T>, ms: number, what: string) =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms))]);

describe('controller limits, authentication at stream start and kinds per credential', () => {
  const cfg = tempDir('lim-cfg');
  const data = tempDir('lim-data');
  let c: ControllerHandle;
  const streams: RawAdsStream[] = [];
  const raws: RawGrpcCall[] = [];

  before(async () => {
    writeFileSync(join(cfg.path, 'mesh.yaml'), mesh);
    c = await startController(cfg.path, data.path, ['--xds-max-streams-per-credential', '10', '--xds-first-request-timeout', '1s']);
    await eventually(() => NODES.every((n) => { try { return c.token(`node-${n}.token`); } catch { return false; } }), 5000, 'tokens');
  });
  after(async () => {
    for (const s of streams) s.close();
    for (const r of raws) r.close();
    await c?.stop();
    cfg.remove();
    data.remove();
  });

  const md = (node: string, token = c.token(`node-${node}.token`)) => {
    const m = new grpc.Metadata();
    m.set('authorization', `Bearer ${token}`);
    m.set('x-strait-node', node);
    return m;
  };
  let creds: grpc.ChannelCredentials | undefined;
  /** Streams share one connection (one credentials object, grpc-js's shared subchannel) unless ownConnection. */
  const open = (metadata: grpc.Metadata, ownConnection = false) => {
    const s = new RawAdsStream(c.xds, metadata, (creds ??= c.credentials()), ownConnection);
    streams.push(s);
    return s;
  };
  const ztunnel = (node: string, i = 0) => ({ node: wireNode({ id: `ztunnel~${node}~${i}`, kind: 'ztunnel', nodeName: node }), type_url: TYPE_WORKLOAD });
  const metrics = async () => (await c.get('/metrics')).text;

  describe('subscriptions of any size (defect 2)', () => {
    it('refuses 100,000 names in one request with RESOURCE_EXHAUSTED naming --xds-max-names-per-request', async () => {
      const s = open(md('node-a'));
      s.write({ ...ztunnel('node-a'), resource_names_subscribe: Array.from({ length: 100_000 }, (_, i) => `shop/w-${i}`) });
      const end = await within(s.ended, 5000, 'refusal');
      assert.equal(end.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.match(end.details, /names 100000 resources; the limit is 20000 per request \(raise it with --xds-max-names-per-request/);
      assert.equal(metricValue(await metrics(), 'strait_xds_limit_exceeded_total', { limit: 'names_per_request' }), 1);
    });

    it('refuses a 1 MB resource name with INVALID_ARGUMENT naming --xds-max-name-length', async () => {
      const s = open(md('node-a'));
      s.write({ ...ztunnel('node-a'), resource_names_subscribe: ['x'.repeat(1024 * 1024)] });
      const end = await within(s.ended, 5000, 'refusal');
      assert.equal(end.code, grpc.status.INVALID_ARGUMENT);
      assert.match(end.details, /resource name "x{40}…" is 1048576 bytes; the limit is 1024 \(raise it with --xds-max-name-length\)/);
    });

    it('refuses a stream whose subscriptions add up past --xds-max-names-per-stream', async () => {
      const s = open(md('node-a'));
      s.write({ ...ztunnel('node-a'), resource_names_subscribe: Array.from({ length: 15_000 }, (_, i) => `shop/a-${i}`) });
      await s.next(5000);
      for (let r = 1; r < 4; r++) s.write({ type_url: TYPE_WORKLOAD, resource_names_subscribe: Array.from({ length: 15_000 }, (_, i) => `shop/r${r}-${i}`) });
      const end = await within(s.ended, 5000, 'refusal');
      assert.equal(end.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.match(end.details, /would subscribe to 60000 resource names; the limit is 50000 per stream \(raise it with --xds-max-names-per-stream/);
    });

    it('refuses more initial_resource_versions than --xds-max-initial-versions', async () => {
      const s = open(md('node-a'));
      s.write({ ...ztunnel('node-a'), initial_resource_versions: Object.fromEntries(Array.from({ length: 60_000 }, (_, i) => [`shop/w-${i}`, 'v1'])) });
      const end = await within(s.ended, 5000, 'refusal');
      assert.equal(end.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.match(end.details, /carries 60000 initial_resource_versions; the limit is 50000 \(raise it with --xds-max-initial-versions\)/);
    });

    it('refuses a request over --xds-max-message-size with RESOURCE_EXHAUSTED naming the flag', async () => {
      const s = open(md('node-a'));
      s.write({ ...ztunnel('node-a'), resource_names_subscribe: Array.from({ length: 5 }, (_, i) => `${i}`.repeat(1000 * 1024)) });
      const end = await within(s.ended, 5000, 'refusal');
      assert.equal(end.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.match(end.details, /a DeltaDiscoveryRequest of \d+ bytes is over the limit of 4194304 bytes \(raise it with --xds-max-message-size\)/);
      const m = await metrics();
      for (const limit of ['name_length', 'names_per_stream', 'initial_versions', 'message_size']) {
        assert.equal(metricValue(m, 'strait_xds_limit_exceeded_total', { limit }), 1, limit);
      }
      // None of the refused streams is held: /debug/syncz stays small.
      const syncz = await c.get('/debug/syncz');
      assert.ok(syncz.text.length < 10_000, `/debug/syncz is ${syncz.text.length} bytes`);
    });
  });

  describe('streams per credential and per connection (defect 3)', () => {
    it('refuses the 9th stream on one connection and the 11th of one token, naming the flags; connection lines stay bounded', async () => {
      const linesBefore = c.proc.lines.filter((l) => l.msg === 'proxy connected').length;
      const shared = Array.from({ length: 9 }, (_, i) => {
        const s = open(md('node-b'));
        s.write(ztunnel('node-b', i));
        return s;
      });
      const ninth = await within(shared[8]!.ended, 5000, '9th stream on one connection');
      assert.equal(ninth.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.match(ninth.details, /already carries 8 xDS streams; the limit is 8 per connection \(raise it with --xds-max-streams-per-connection\)/);
      for (const s of shared.slice(0, 8)) await s.next(5000);
      for (const s of shared.slice(0, 8)) s.close();

      const own = Array.from({ length: 11 }, (_, i) => {
        const s = open(md('node-c'), true);
        s.write(ztunnel('node-c', i));
        return s;
      });
      const results = await Promise.all(own.map((s) => Promise.race([s.next(5000).then(() => 'served'), s.ended.then((e: StreamEnd) => e)])));
      const refused = results.filter((r): r is StreamEnd => typeof r !== 'string');
      assert.equal(refused.length, 1, 'exactly one of 11 streams of one token is refused');
      assert.equal(refused[0]!.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.match(refused[0]!.details, /node\/node-c already has 10 xDS streams open; the limit is 10 per credential \(raise it with --xds-max-streams-per-credential\)/);
      // More streams of node-d: 28 accepted in total here, but "proxy connected" is logged at most 20 times per 10 s.
      const more = Array.from({ length: 10 }, (_, i) => {
        const s = open(md('node-d'), true);
        s.write(ztunnel('node-d', i));
        return s;
      });
      await Promise.all(more.map((s) => s.next(5000)));
      const connected = c.proc.lines.filter((l) => l.msg === 'proxy connected').length - linesBefore;
      assert.ok(connected <= 20, `${connected} "proxy connected" lines for 28 streams`);
      const m = await metrics();
      assert.equal(metricValue(m, 'strait_xds_limit_exceeded_total', { limit: 'streams_per_connection' }), 1);
      assert.equal(metricValue(m, 'strait_xds_limit_exceeded_total', { limit: 'streams_per_credential' }), 1);
      for (const s of [...own, ...more]) s.close();
    });
  });

  describe('authentication at stream start (defect 4)', () => {
    it('refuses a stream with a wrong token at once, before it sends anything', async () => {
      const s = open(md('node-a', 'not-the-token'));
      const end = await within(s.ended, 2000, 'refusal of a silent stream with a wrong token');
      assert.equal(end.code, grpc.status.UNAUTHENTICATED);
      assert.match(end.details, /bootstrap token for node\/node-a is wrong/);
    });

    it('closes a stream with a valid token that sends no first request within --xds-first-request-timeout', async () => {
      const s = open(md('node-a'));
      const t0 = Date.now();
      const end = await within(s.ended, 4000, 'close of a silent stream');
      assert.equal(end.code, grpc.status.DEADLINE_EXCEEDED);
      assert.match(end.details, /no DeltaDiscoveryRequest within 1000 ms of opening the stream \(raise it with --xds-first-request-timeout\)/);
      assert.ok(Date.now() - t0 >= 900);
    });

    it('counts 300 refused streams by reason and logs them in a bounded number of lines', async () => {
      const before = c.proc.lines.filter((l) => l.msg === 'request refused').length;
      const m0 = metricValue(await metrics(), 'strait_auth_refused_total', { service: 'xds', reason: 'wrong_token' });
      for (let batch = 0; batch < 6; batch++) {
        const ss = Array.from({ length: 50 }, () => open(md('node-a', 'wrong')));
        const ends = await Promise.all(ss.map((s) => within(s.ended, 5000, 'refusal')));
        assert.ok(ends.every((e) => e.code === grpc.status.UNAUTHENTICATED));
        for (const s of ss) s.close();
      }
      const m1 = metricValue(await metrics(), 'strait_auth_refused_total', { service: 'xds', reason: 'wrong_token' });
      assert.equal(m1 - m0, 300);
      const lines = c.proc.lines.filter((l) => l.msg === 'request refused').length - before;
      assert.ok(lines <= 2, `${lines} log lines for 300 refusals`);
    });

    it('refuses a CA call with a wrong token from its headers alone, and bounds its log lines too', async () => {
      const raw = new RawGrpcCall(c.xds, c.rootPem, CA_PATH, { authorization: 'Bearer wrong', 'x-strait-node': 'node-a' });
      raws.push(raw);
      const end = await within(raw.ended, 2000, 'CA refusal before any request message');
      assert.equal(end.status, grpc.status.UNAUTHENTICATED);
      assert.match(end.message ?? '', /bootstrap token for node\/node-a is wrong/);

      const silent = new RawGrpcCall(c.xds, c.rootPem, CA_PATH, { authorization: `Bearer ${c.token('node-node-a.token')}`, 'x-strait-node': 'node-a' });
      raws.push(silent);
      const timedOut = await within(silent.ended, 4000, 'CA call without a request');
      assert.equal(timedOut.status, grpc.status.DEADLINE_EXCEEDED);

      const before = c.proc.lines.filter((l) => l.msg === 'request refused').length;
      const { csrPem } = await createKeyAndCsr();
      const ca = new CaClient({ address: c.xds, credentials: c.credentials(), metadata: () => ({ authorization: 'Bearer wrong', 'x-strait-node': 'node-a' }) });
      try {
        const results = await Promise.allSettled(Array.from({ length: 100 }, () => ca.createCertificate(csrPem, 'spiffe://cluster.local/ns/shop/sa/web')));
        assert.ok(results.every((r) => r.status === 'rejected' && /UNAUTHENTICATED/.test(String(r.reason))));
      } finally {
        ca.close();
      }
      const m = await metrics();
      assert.ok(metricValue(m, 'strait_auth_refused_total', { service: 'ca', reason: 'wrong_token' }) >= 101);
      const lines = c.proc.lines.filter((l) => l.msg === 'request refused').length - before;
      assert.ok(lines <= 2, `${lines} log lines for 100 refused CA calls`);
    });
  });

  describe('kinds per credential (defect 5)', () => {
    it('refuses a node token subscribing as kind "debug", naming the debug credential', async () => {
      const s = open(md('node-a'));
      s.write({ node: wireNode({ id: 'sneaky', kind: 'debug', nodeName: 'node-a' }), type_url: TYPE_ROUTE });
      const end = await within(s.ended, 3000, 'refusal');
      assert.equal(end.code, grpc.status.PERMISSION_DENIED);
      assert.match(end.details, /node\/node-a may not subscribe as debug on node node-a: a node credential connects only as kind "ztunnel" \(kind "debug" needs the debug credential: `strait token --debug`\)/);
      assert.equal(metricValue(await metrics(), 'strait_auth_refused_total', { service: 'xds', reason: 'wrong_kind' }), 1);
    });

    it('serves kind "debug" to the debug credential from `strait token --debug`, which the CA refuses', async () => {
      const tok = await run(process.execPath, [STRAIT_BIN, 'token', '--data-dir', data.path, '--debug']);
      assert.equal(tok.code, 0, tok.stderr);
      const m = new grpc.Metadata();
      m.set('authorization', `Bearer ${tok.stdout.trim()}`);
      m.set('x-strait-debug', 'alice');
      const s = open(m);
      s.write({ node: wireNode({ id: 'debug~alice', kind: 'debug', nodeName: 'node-a' }), type_url: TYPE_AUTHORIZATION });
      const r = await s.next(3000);
      assert.equal(r.type_url, TYPE_AUTHORIZATION);
      s.write({ type_url: TYPE_ROUTE });
      assert.equal((await s.next(3000)).type_url, TYPE_ROUTE);

      const wrongKind = open(m);
      wrongKind.write({ ...ztunnel('node-a', 99) });
      assert.equal((await within(wrongKind.ended, 3000, 'refusal')).code, grpc.status.PERMISSION_DENIED);

      const { csrPem } = await createKeyAndCsr();
      const ca = new CaClient({ address: c.xds, credentials: c.credentials(), metadata: () => ({ authorization: `Bearer ${tok.stdout.trim()}`, 'x-strait-debug': 'alice' }) });
      try {
        await assert.rejects(ca.createCertificate(csrPem, 'spiffe://cluster.local/ns/shop/sa/web'), /PERMISSION_DENIED: the debug credential reads xDS only/);
      } finally {
        ca.close();
      }
    });
  });
});
