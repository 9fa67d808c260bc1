// Review of issue 13, the controller's door (15012): what one node token, or no credential at all, can still make
// a real controller do. Each case says the limit that should apply; cases marked FAILS fail on main.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createKeyAndCsr } from '../../src/identity/index.js';
import { CaClient } from '../../src/identity/ca-client.js';
import { startController, type ControllerHandle } from '../helpers/controller.js';
import { docs, namespace, pod } from '../helpers/manifests.js';
import { tempDir } from '../helpers/procs.js';
import { metricValue } from '../helpers/metrics.js';
import { CA_METHOD_PATH } from '../../src/controller/ca-server.js';

function rssOf(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
}
function cpuMsOf(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
}

describe('controller door under one node token / no credential (review)', () => {
  const cfg = tempDir('rvc-cfg');
  const data = tempDir('rvc-data');
  let c: ControllerHandle;
  let pid: number;
  const toClose: Array<() => void> = [];

  before(async () => {
    writeFileSync(join(cfg.path, 'mesh.yaml'), docs(
      namespace('apps', { 'istio.io/dataplane-mode': 'ambient' }),
      pod('apps', 'client', { node: 'node-a', ip: '10.0.0.1', sa: 'client' }),
      pod('apps', 'other', { node: 'node-b', ip: '10.0.0.2', sa: 'other' }),
    ));
    c = await startController(cfg.path, data.path);
    pid = c.proc.child.pid!;
  });
  after(async () => {
    for (const f of toClose) f();
    await c?.stop();
    cfg.remove();
    data.remove();
  });

  const md = (node: string) => ({ authorization: `Bearer ${c.token(`node-${node}.token`)}`, 'x-strait-node': node });

  // Limit that should apply: certificates per credential per interval (a node needs about one per pod per
  // rotation), past which CreateCertificate answers RESOURCE_EXHAUSTED and the refusal is counted.
  it('FAILS: one node token asks for 3,000 certificates as fast as it can', async (t) => {
    const ca = new CaClient({ address: c.xds, credentials: c.credentials(), metadata: () => md('node-a') });
    toClose.push(() => ca.close());
    const { csrPem } = await createKeyAndCsr();
    const cpu0 = cpuMsOf(pid);
    const t0 = Date.now();
    let issued = 0;
    let refused = 0;
    for (let round = 0; round < 60; round++) {
      const r = await Promise.allSettled(Array.from({ length: 50 }, () => ca.createCertificate(csrPem, 'spiffe://cluster.local/ns/apps/sa/client')));
      issued += r.filter((x) => x.status === 'fulfilled').length;
      refused += r.filter((x) => x.status === 'rejected').length;
    }
    const ms = Date.now() - t0;
    // Meanwhile another node's certificate takes this long:
    const other = new CaClient({ address: c.xds, credentials: c.credentials(), metadata: () => md('node-b') });
    toClose.push(() => other.close());
    const t1 = Date.now();
    await other.createCertificate(csrPem, 'spiffe://cluster.local/ns/apps/sa/other');
    const metrics = (await c.get('/metrics')).text;
    t.diagnostic(`${issued} issued, ${refused} refused in ${ms} ms (${Math.round(issued / (ms / 1000))}/s); controller CPU ${Math.round(cpuMsOf(pid) - cpu0)} ms; ` +
      `certs issued metric ${metricValue(metrics, 'citadel_server_success_cert_issuance_count')}; another node's request after: ${Date.now() - t1} ms`);
    assert.ok(refused > 0, `${issued} certificates for one identity from one node token in ${ms} ms, none refused`);
  });

  // Limit that should apply: CA calls open at once per credential (like --xds-max-streams-per-credential).
  it('FAILS: one node token holds 2,000 CreateCertificate calls open that never send their request', async (t) => {
    const rss0 = rssOf(pid);
    const session = http2.connect(`https://${c.xds}`, { ca: c.rootPem, minVersion: 'TLSv1.3' });
    session.on('error', () => undefined);
    toClose.push(() => session.destroy());
    const streams: http2.ClientHttp2Stream[] = [];
    let refusedEarly = 0;
    for (let i = 0; i < 2000; i++) {
      const s = session.request({ ':method': 'POST', ':path': CA_METHOD_PATH, 'content-type': 'application/grpc', te: 'trailers', ...md('node-a') }, { endStream: false });
      s.on('error', () => undefined);
      s.on('response', (h) => { if (h['grpc-status'] !== undefined) refusedEarly++; });
      streams.push(s);
    }
    await new Promise((r) => setTimeout(r, 2000));
    const open = streams.filter((s) => !s.closed).length;
    t.diagnostic(`${open} of 2000 calls open after 2 s (refused at once: ${refusedEarly}); controller RSS +${((rssOf(pid) - rss0) / 1048576).toFixed(1)} MiB`);
    session.destroy();
    assert.ok(open <= 64, `${open} CA calls held open by one credential`);
  });

  // Limit that should apply: a connection that carries no stream for a while is closed (grpc.max_connection_idle_ms),
  // and/or connections per source address are bounded. Today a TLS connection without any credential stays.
  it('FAILS: 500 TLS connections without any credential or stream stay open past every timeout (15 s)', async (t) => {
    const rss0 = rssOf(pid);
    const sessions: http2.ClientHttp2Session[] = [];
    for (let i = 0; i < 500; i++) {
      const s = http2.connect(`https://${c.xds}`, { ca: c.rootPem, minVersion: 'TLSv1.3' });
      s.on('error', () => undefined);
      sessions.push(s);
      toClose.push(() => s.destroy());
    }
    await Promise.all(sessions.map((s) => new Promise((r) => { s.once('connect', r); s.once('close', r); })));
    await new Promise((r) => setTimeout(r, 15_000));
    const open = sessions.filter((s) => !s.closed && !s.destroyed).length;
    t.diagnostic(`${open} of 500 credential-less connections open after 15 s; controller RSS +${((rssOf(pid) - rss0) / 1048576).toFixed(1)} MiB`);
    for (const s of sessions) s.destroy();
    assert.ok(open < 500, 'connections without a credential or a stream are never closed');
  });
});
