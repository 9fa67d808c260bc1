// The controller's door (15012) against one node token, or no credential at all (review of issue 13): what a
// peer can make a real controller process do must be bounded in count and rate, and every line it can cause
// must be rate-limited. Clients are grpc-js (the proxies' library) and node:http2 for what grpc-js cannot play
// (calls that send headers and nothing else, connections that never open a call).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { XDS_METHOD_NAME, loadXdsProto } from '../../src/common/xds/index.js';
import { createKeyAndCsr } from '../../src/identity/index.js';
import { CaClient } from '../../src/identity/ca-client.js';
import { CA_METHOD_PATH } from '../../src/controller/ca-server.js';
import { DEFAULT_DOOR_LIMITS } from '../../src/controller/door-limits.js';
import { metricValue } from '../helpers/metrics.js';
import { TYPE_WORKLOAD } from '../../src/common/xds/resources.js';
import { startController, type ControllerHandle } from '../helpers/controller.js';
import { docs, namespace, pod } from '../helpers/manifests.js';
import { tempDir } from '../helpers/temp-dir.js';
import { ADS_PATH, grpcFrame } from '../helpers/raw-grpc.js';
import { RawAdsStream } from '../helpers/xds.js';
import { cpuMsOf, rssOf } from '../helpers/proc-stats.js';

/** --xds-max-connection-idle here (default 10 s); grpc-js checks idleness once per period, so closing takes 1-2 periods. */
const IDLE_MS = 3000;

describe('controller door under one node token or no credential', () => {
  const cfg = tempDir('door-cfg');
  const data = tempDir('door-data');
  let c: ControllerHandle;
  let pid: number;
  const toClose: Array<() => void> = [];

  before(async () => {
    writeFileSync(join(cfg.path, 'mesh.yaml'), docs(
      namespace('apps', { 'istio.io/dataplane-mode': 'ambient' }),
      pod('apps', 'client', { node: 'node-a', ip: '10.0.0.1', sa: 'client' }),
      pod('apps', 'other', { node: 'node-b', ip: '10.0.0.2', sa: 'other' }),
      pod('apps', 'third', { node: 'node-c', ip: '10.0.0.3', sa: 'third' }),
    ));
    c = await startController(cfg.path, data.path, ['--xds-max-connection-idle', `${IDLE_MS}ms`]);
    pid = c.proc.child.pid!;
  });
  after(async () => {
    for (const f of toClose) f();
    await c?.stop();
    cfg.remove();
    data.remove();
  });

  const md = (node: string) => ({ authorization: `Bearer ${c.token(`node-${node}.token`)}`, 'x-strait-node': node });

  // Defaults: a burst of 256 certificates per credential, then 300 per minute (--ca-cert-burst, --ca-certs-per-minute).
  it('one node token asking for 3,000 certificates as fast as it can is refused past its burst with RESOURCE_EXHAUSTED; another node is served', async (t) => {
    const ca = new CaClient({ address: c.xds, credentials: c.credentials(), metadata: () => md('node-a') });
    toClose.push(() => ca.close());
    const { csrPem } = await createKeyAndCsr();
    const cpu0 = cpuMsOf(pid);
    const t0 = Date.now();
    let issued = 0;
    const errors: string[] = [];
    for (let round = 0; round < 60; round++) {
      const r = await Promise.allSettled(Array.from({ length: 50 }, () => ca.createCertificate(csrPem, 'spiffe://cluster.local/ns/apps/sa/client')));
      issued += r.filter((x) => x.status === 'fulfilled').length;
      for (const x of r) if (x.status === 'rejected') errors.push(String((x.reason as Error).message));
    }
    const ms = Date.now() - t0;
    const other = new CaClient({ address: c.xds, credentials: c.credentials(), metadata: () => md('node-b') });
    toClose.push(() => other.close());
    const t1 = Date.now();
    await other.createCertificate(csrPem, 'spiffe://cluster.local/ns/apps/sa/other');
    const otherMs = Date.now() - t1;
    const metrics = (await c.get('/metrics')).text;
    const cpu = Math.round(cpuMsOf(pid) - cpu0);
    t.diagnostic(`${issued} issued, ${errors.length} refused in ${ms} ms; controller CPU ${cpu} ms; ` +
      `strait_ca_refused_total{reason="rate_limited"} ${metricValue(metrics, 'strait_ca_refused_total', { reason: 'rate_limited' })}; another node's request after: ${otherMs} ms`);
    const { caCertBurst, caCertsPerMinute } = DEFAULT_DOOR_LIMITS;
    const allowed = caCertBurst + Math.ceil((ms / 60_000) * caCertsPerMinute) + 1;
    assert.ok(issued >= caCertBurst && issued <= allowed, `${issued} certificates issued to one token in ${ms} ms (burst ${caCertBurst}, at most ${allowed})`);
    assert.equal(issued + errors.length, 3000);
    assert.ok(errors.every((e) => /RESOURCE_EXHAUSTED: node\/node-a has obtained its 256 certificates at once and 300 per minute after that; retry in \d+ ms \(raise the limits with --ca-cert-burst and --ca-certs-per-minute\)/.test(e)), errors[0]);
    assert.equal(metricValue(metrics, 'strait_ca_refused_total', { reason: 'rate_limited' }), errors.length, 'every refusal is counted with reason="rate_limited"');
    assert.equal(metricValue(metrics, 'strait_auth_refused_total', { service: 'ca', reason: 'rate_limited' }), errors.length);
    assert.ok(otherMs < 1000, `another node's certificate took ${otherMs} ms`);
  });

  it('one node token holds at most 32 CreateCertificate calls open; the others are refused at once with RESOURCE_EXHAUSTED', async (t) => {
    const rss0 = rssOf(pid);
    const session = http2.connect(`https://${c.xds}`, { ca: c.rootPem, minVersion: 'TLSv1.3' });
    session.on('error', () => undefined);
    toClose.push(() => session.destroy());
    await new Promise((r) => session.once('remoteSettings', r));
    assert.equal(session.remoteSettings.maxConcurrentStreams, DEFAULT_DOOR_LIMITS.maxCallsPerConnection, 'the server announces its calls-per-connection limit');
    const streams: http2.ClientHttp2Stream[] = [];
    const refusals: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const s = session.request({ ':method': 'POST', ':path': CA_METHOD_PATH, 'content-type': 'application/grpc', te: 'trailers', ...md('node-c') }, { endStream: false });
      s.on('error', () => undefined);
      s.on('response', (h) => {
        if (h['grpc-status'] !== undefined) refusals.push(`${h['grpc-status']} ${decodeURIComponent(String(h['grpc-message']))}`);
      });
      streams.push(s);
    }
    await new Promise((r) => setTimeout(r, 2000));
    const open = streams.filter((s) => !s.closed).length;
    t.diagnostic(`${open} of 2000 calls open after 2 s (refused at once: ${refusals.length}); controller RSS +${((rssOf(pid) - rss0) / 1048576).toFixed(1)} MiB`);
    session.destroy();
    assert.equal(open, DEFAULT_DOOR_LIMITS.caMaxCallsPerCredential, `${open} CA calls held open by one credential`);
    assert.equal(refusals.length, 2000 - open);
    assert.ok(refusals.every((r) => r.startsWith(`${grpc.status.RESOURCE_EXHAUSTED} node/node-c already has 32 CreateCertificate calls open; the limit is 32 per credential (raise it with --ca-max-calls-per-credential)`)), refusals[0]);
    const metrics = (await c.get('/metrics')).text;
    assert.ok(metricValue(metrics, 'strait_ca_refused_total', { reason: 'calls_per_credential' }) >= refusals.length);
  });

  it('TLS connections without any credential are closed once idle, also when they keep a refused call open', async (t) => {
    const rss0 = rssOf(pid);
    const sessions: http2.ClientHttp2Session[] = [];
    for (let i = 0; i < 500; i++) {
      const s = http2.connect(`https://${c.xds}`, { ca: c.rootPem, minVersion: 'TLSv1.3' });
      s.on('error', () => undefined);
      sessions.push(s);
      toClose.push(() => s.destroy());
    }
    await Promise.all(sessions.map((s) => new Promise((r) => { s.once('connect', r); s.once('close', r); })));
    const connected = sessions.filter((s) => !s.closed && !s.destroyed).length;
    // Half of them open one xDS call without a token and never end their side of it.
    const calls = sessions.slice(250).map((s) => {
      const st = s.request({ ':method': 'POST', ':path': ADS_PATH, 'content-type': 'application/grpc', te: 'trailers' }, { endStream: false });
      st.on('error', () => undefined);
      let status: number | undefined;
      st.on('response', (h) => { if (h['grpc-status'] !== undefined) status = Number(h['grpc-status']); });
      return { st, status: () => status };
    });
    await new Promise((r) => setTimeout(r, 1000));
    const rssOpen = rssOf(pid);
    assert.ok(calls.every((x) => x.status() === grpc.status.UNAUTHENTICATED), 'every call without a token is refused with UNAUTHENTICATED');
    assert.ok(calls.every((x) => x.st.closed && x.st.rstCode === http2.constants.NGHTTP2_NO_ERROR), 'the server resets (NO_ERROR) a refused call the client keeps open');
    await new Promise((r) => setTimeout(r, 2 * IDLE_MS + 1000));
    const open = sessions.filter((s) => !s.closed && !s.destroyed).length;
    t.diagnostic(`${connected} connected; ${open} of 500 credential-less connections open ${(2 * IDLE_MS + 2000) / 1000} s later; controller RSS +${((rssOpen - rss0) / 1048576).toFixed(1)} MiB while open, +${((rssOf(pid) - rss0) / 1048576).toFixed(1)} MiB after`);
    for (const s of sessions) s.destroy();
    assert.equal(connected, 500, 'every connection was accepted');
    assert.equal(open, 0, 'connections without a call are closed');
  });

  it('1,000 streams of one node token asking for a type it may not read cause a bounded number of log lines', async (t) => {
    const { requestSerialize } = (loadXdsProto().service as Record<string, grpc.MethodDefinition<unknown, unknown>>)[XDS_METHOD_NAME]!;
    const req = grpcFrame(requestSerialize({ node: { id: 'ztunnel~node-a~x', kind: 'ztunnel', node_name: 'node-a' }, type_url: 'type.strait.dev/Route' }));
    const session = http2.connect(`https://${c.xds}`, { ca: c.rootPem, minVersion: 'TLSv1.3' });
    session.on('error', () => undefined);
    toClose.push(() => session.destroy());
    const lines0 = c.proc.lines.length;
    const t0 = Date.now();
    let refused = 0;
    for (let round = 0; round < 125; round++) {
      await Promise.all(Array.from({ length: 8 }, () => new Promise<void>((resolve) => {
        const s = session.request({ ':method': 'POST', ':path': ADS_PATH, 'content-type': 'application/grpc', te: 'trailers', ...md('node-a') }, { endStream: false });
        s.on('error', () => resolve());
        s.on('close', () => resolve());
        s.resume();
        s.on('trailers', (h) => { if (Number(h['grpc-status']) === grpc.status.INVALID_ARGUMENT) refused++; s.close(); });
        s.write(req);
      })));
    }
    await new Promise((r) => setTimeout(r, 300));
    const lines = c.proc.lines.slice(lines0);
    const warn = lines.filter((l) => l.msg === 'xDS protocol error; ending the stream').length;
    t.diagnostic(`1000 streams in ${Date.now() - t0} ms; ${lines.length} controller log lines, ${warn} "xDS protocol error" warnings`);
    session.destroy();
    assert.equal(refused, 1000, 'every stream is refused with INVALID_ARGUMENT');
    assert.ok(warn >= 1 && warn <= 5, `${warn} "xDS protocol error" lines for 1,000 refused streams (at most 5 per 10 s, then a summary)`);
    assert.ok(lines.length <= 50, `${lines.length} log lines for 1,000 refused streams`);
  });

  it('a proxy that subscribes and NACKs in a loop causes a bounded number of NACK warnings, all counted', async (t) => {
    const lines0 = c.proc.lines.length;
    const rejects0 = metricOf((await c.get('/metrics')).text, 'pilot_total_xds_rejects');
    const creds = c.credentials();
    for (let i = 0; i < 100; i++) {
      const m = new grpc.Metadata();
      for (const [k, v] of Object.entries(md('node-b'))) m.set(k, v);
      const s = new RawAdsStream(c.xds, m, creds);
      s.write({ node: { id: `ztunnel~node-b~nack-${i}`, kind: 'ztunnel', node_name: 'node-b', namespace: '', name: '' }, type_url: TYPE_WORKLOAD });
      s.nack(await s.next(5000), 'rejected on purpose');
      await new Promise((r) => setTimeout(r, 5));
      s.close();
    }
    await new Promise((r) => setTimeout(r, 300));
    const metrics = (await c.get('/metrics')).text;
    const lines = c.proc.lines.slice(lines0);
    const nackLines = lines.filter((l) => String(l.msg).includes('(NACK)')).length;
    const counted = metricOf(metrics, 'pilot_total_xds_rejects') - rejects0;
    t.diagnostic(`100 NACKs: ${nackLines} NACK log lines, ${lines.length} lines in all; pilot_total_xds_rejects +${counted}`);
    assert.equal(counted, 100, 'every NACK is counted');
    assert.ok(nackLines >= 1 && nackLines <= 5, `${nackLines} NACK lines for 100 NACKs`);
  });
});

/** Sum of a metric over all its label sets. */
function metricOf(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{.*\})?\s+(\S+)$/.exec(line);
    if (m && m[1] === name) sum += Number(m[2]);
  }
  return sum;
}
