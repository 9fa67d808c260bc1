// The controller's door (15012) against one node token, or no credential at all (review of issue 13): what a
// peer can make a real controller process do must be bounded in count and rate, and every line it can cause
// must be rate-limited. Clients are grpc-js (the proxies' library) and node:http2 for what grpc-js cannot play
// (calls that send headers and nothing else, connections that never open a call).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { XDS_METHOD_NAME, loadXdsProto } from '../../src/common/xds/index.js';
import { TYPE_WORKLOAD } from '../../src/common/xds/resources.js';
import { startController, type ControllerHandle } from '../helpers/controller.js';
import { docs, namespace, pod } from '../helpers/manifests.js';
import { tempDir } from '../helpers/procs.js';
import { ADS_PATH, grpcFrame } from '../helpers/raw-grpc.js';
import { RawAdsStream } from '../helpers/xds.js';

function rssOf(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
}

describe('controller door under one node token or no credential', () => {
  const cfg = tempDir('door-cfg');
  const data = tempDir('door-data');
  let c: ControllerHandle;
  const toClose: Array<() => void> = [];

  before(async () => {
    writeFileSync(join(cfg.path, 'mesh.yaml'), docs(
      namespace('apps', { 'istio.io/dataplane-mode': 'ambient' }),
      pod('apps', 'client', { node: 'node-a', ip: '10.0.0.1', sa: 'client' }),
      pod('apps', 'other', { node: 'node-b', ip: '10.0.0.2', sa: 'other' }),
    ));
    c = await startController(cfg.path, data.path);
  });
  after(async () => {
    for (const f of toClose) f();
    await c?.stop();
    cfg.remove();
    data.remove();
  });

  const md = (node: string) => ({ authorization: `Bearer ${c.token(`node-${node}.token`)}`, 'x-strait-node': node });

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
