// Issue 13, defect 1: a proxy that stops reading (or stops answering) must not make the real controller queue
// every push for it, nor be taken for in sync. Stalled proxies are raw HTTP/2 clients with a tiny window that
// never read; healthy proxies are the XdsClient ztunnels use. The mesh is generated (1,200 pods).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { XdsClient, type WireDeltaResponse } from '../../src/common/xds/index.js';
import { TYPE_AUTHORIZATION, TYPE_WORKLOAD } from '../../src/common/xds/resources.js';
import { generateMesh, type GeneratedMesh } from '../../bench/lib/controller-mesh.js';
import { startController, type ControllerHandle } from '../helpers/controller.js';

import { ADS_PATH, RawGrpcCall } from '../helpers/raw-grpc.js';
import { metricValue } from '../helpers/metrics.js';
import { tempDir } from '../helpers/temp-dir.js';
import { eventually } from '../helpers/eventually.js';

// Long enough for the changes below on a busy 2-core machine; the two tests run side by side to keep the file short.
const STALL_TIMEOUT_MS = 10_000;
const MAX_QUEUED = 64 * 1024;

describe('controller under proxies that stop reading or answering', { concurrency: true }, () => {
  const cfg = tempDir('bp-cfg');
  const data = tempDir('bp-data');
  let c: ControllerHandle;
  let mesh: GeneratedMesh;
  const opened: RawGrpcCall[] = [];
  let healthy: XdsClient | undefined;

  before(async () => {
    mesh = generateMesh(cfg.path, { pods: 1200, services: 120, policies: 24, namespaces: 6, nodes: 12 });
    c = await startController(cfg.path, data.path, [
      '--push-debounce', '20ms', '--xds-stall-timeout', `${STALL_TIMEOUT_MS / 1000}s`, '--xds-max-queued-bytes', `${MAX_QUEUED}`, '--xds-max-unacked', '3',
    ]);
    await eventually(() => mesh.nodes.every((n) => existsSync(join(data.path, 'tokens', `node-${n}.token`))), 10_000, 'node tokens');
  });
  after(async () => {
    healthy?.close();
    for (const o of opened) o.close();
    await c?.stop();
    cfg.remove();
    data.remove();
  });

  const md = (node: string) => ({ authorization: `Bearer ${c.token(`node-${node}.token`)}`, 'x-strait-node': node });
  const rawProxy = (i: number, type: string, opts: { read: boolean }) => {
    const node = mesh.nodes[i % mesh.nodes.length]!;
    const call = new RawGrpcCall(c.xds, c.rootPem, ADS_PATH, md(node), { read: opts.read, windowBytes: 1024 });
    call.writeAds({ node: { id: `ztunnel~${node}~raw-${i}`, kind: 'ztunnel', node_name: node, namespace: '', name: '' }, type_url: type });
    opened.push(call);
    return { call, id: `ztunnel~${node}~raw-${i}` };
  };
  const syncz = async () => (await c.get('/debug/syncz')).body.proxies as any[];
  const startHealthy = () => {
    const node = mesh.nodes[mesh.nodes.length - 1]!;
    const seen: { type: string; at: number; u: { added: { name: string; body: any }[] } }[] = [];
    healthy = new XdsClient({
      address: c.xds, credentials: c.credentials(), metadata: () => md(node),
      node: { id: `ztunnel~${node}~healthy`, kind: 'ztunnel', nodeName: node },
      subscriptions: [TYPE_WORKLOAD, TYPE_AUTHORIZATION].map((typeUrl) => ({ typeUrl, apply: (u) => void seen.push({ type: typeUrl, at: Date.now(), u: u as never }) })),
    });
    healthy.start();
    return seen;
  };

  it('coalesces pushes to a proxy that stops reading, keeps others fast, and disconnects it after --xds-stall-timeout', async () => {
    const seen = startHealthyOnce();
    await eventually(() => healthy!.held(TYPE_WORKLOAD).size === 1200, 10_000, 'healthy proxy synced');
    // Five proxies that never read: the initial Workload snapshot (~0.5 MB) fills their 1 KiB window at once.
    const stalled = [0, 1, 2, 3].map((i) => rawProxy(i, TYPE_WORKLOAD, { read: false }));
    const resumer = rawProxy(4, TYPE_WORKLOAD, { read: false });
    const ids = [...stalled, resumer].map((s) => s.id);
    await eventually(async () => (await syncz()).filter((p) => ids.includes(p.proxy.id) && p.queuedBytes > 0).length === 5, 5000, 'stalled streams in syncz');

    // Four changes touching every pod. The healthy proxy gets each one promptly.
    for (let g = 1; g <= 4; g++) {
      const t0 = Date.now();
      mesh.relabelAllPods(`g${g}`);
      const hit = await eventually(() => seen.find((s) => s.type === TYPE_WORKLOAD && s.at >= t0 && s.u.added.some((a) => a.body.labels?.rollout === `g${g}`)), 5000, `change g${g} at the healthy proxy`);
      assert.ok(hit.at - t0 < 3000, `change g${g} took ${hit.at - t0} ms to reach the healthy proxy`);
    }

    const during = await syncz();
    for (const id of ids) {
      const p = during.find((x) => x.proxy.id === id);
      assert.ok(p, `${id} in /debug/syncz`);
      const w = p.types[TYPE_WORKLOAD];
      assert.equal(w.versionAcked, '', `${id}: an unanswered response is not taken as applied`);
      assert.equal(w.unanswered, 1, `${id}: only the first response went out; the four changes were not queued behind it`);
      assert.equal(w.coalesced, true, `${id}: pushes wait as one difference`);
      assert.ok(p.stalledSince, `${id}: stalledSince is set`);
      assert.equal(p.lastAckAt, null);
      assert.ok(p.queuedBytes > 0 && p.queuedBytes < 2 * 1024 * 1024, `${id}: ${p.queuedBytes} bytes queued`);
    }
    const metrics = (await c.get('/metrics')).text;
    assert.ok(metricValue(metrics, 'strait_xds_stalls_total', { kind: 'ztunnel' }) >= 5, 'stalls are counted');

    // The resumer reads again: it gets what was in flight plus ONE response with the difference, not four.
    resumer.call.startReading();
    await resumer.call.waitForMessages(1, 5000);
    resumer.call.writeAds({ type_url: TYPE_WORKLOAD, response_nonce: resumer.call.messages[0]!.nonce });
    await resumer.call.waitForMessages(2, 5000);
    resumer.call.writeAds({ type_url: TYPE_WORKLOAD, response_nonce: resumer.call.messages[1]!.nonce });
    // Once the controller has every response answered and nothing coalesced, it has nothing more to send.
    await eventually(async () => {
      const t = (await syncz()).find((x) => x.proxy.id === resumer.id)?.types[TYPE_WORKLOAD];
      return t?.unanswered === 0 && t.coalesced === false;
    }, 5000, 'the resumer answered everything');
    assert.equal(resumer.call.messages.length, 2, 'in-flight snapshot + one coalesced difference');
    const held = new Map<string, any>();
    for (const m of resumer.call.messages as WireDeltaResponse[]) {
      for (const r of m.resources) held.set(r.name, JSON.parse(r.body.toString('utf8')));
      for (const n of m.removed_resources) held.delete(n);
    }
    assert.equal(held.size, 1200);
    assert.ok([...held.values()].every((w) => w.labels.rollout === 'g4'), 'the difference brings it to the current state');
    const caughtUp = await eventually(async () => {
      const p = (await syncz()).find((x) => x.proxy.id === resumer.id);
      return p?.types[TYPE_WORKLOAD].unanswered === 0 ? p : undefined;
    }, 3000, 'resumer caught up');
    assert.equal(caughtUp.types[TYPE_WORKLOAD].versionAcked, caughtUp.types[TYPE_WORKLOAD].versionSent);
    assert.equal(caughtUp.stalledSince, null);
    assert.equal(caughtUp.queuedBytes, 0);

    // The four that never read are reset (RST_STREAM ENHANCE_YOUR_CALM: their unread data would hold a status back).
    const ends = await Promise.all(stalled.map((s) => s.call.ended));
    for (const e of ends) assert.equal(e.rstCode, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    const lines = c.proc.lines.filter((l) => l.msg === 'xDS stream stalled; disconnecting it' && l.reason === 'unread');
    assert.deepEqual(lines.map((l) => l.proxy).sort(), stalled.map((s) => s.id).sort(), 'one log line per stalled proxy, naming it');
    for (const l of lines) assert.match(String(l.err), /stalled: it has not read \d+ bytes sent \d+ s ago; .*--xds-stall-timeout/);
    const after = (await c.get('/metrics')).text;
    assert.equal(metricValue(after, 'strait_xds_stall_disconnects_total', { kind: 'ztunnel', why: 'unread' }), 4);
    const left = await syncz();
    for (const s of stalled) assert.ok(!left.some((p) => p.proxy.id === s.id), `${s.id} is gone from syncz`);
    assert.ok(left.some((p) => p.proxy.id === resumer.id), 'the proxy that caught up stays connected');
  });

  it('sends at most --xds-max-unacked responses to a proxy that reads but does not answer, then one difference when it does', async () => {
    const seen = startHealthyOnce();
    const quiet = rawProxy(7, TYPE_AUTHORIZATION, { read: true });
    const silent = rawProxy(8, TYPE_AUTHORIZATION, { read: true });
    await quiet.call.waitForMessages(1);
    await silent.call.waitForMessages(1);
    for (let i = 0; i < 5; i++) {
      const t0 = Date.now();
      const marker = mesh.writeEditVariant(i % 2 === 0 ? 'b' : 'a');
      await eventually(() => seen.find((s) => s.type === TYPE_AUTHORIZATION && s.at >= t0 && JSON.stringify(s.u.added).includes(marker)), 5000, `edit ${i} at the healthy proxy`);
    }
    // The controller has taken every edit (the healthy proxy saw them all): it holds the rest back as one difference.
    await eventually(async () => (await syncz()).find((x) => x.proxy.id === quiet.id)?.types[TYPE_AUTHORIZATION].coalesced === true, 5000, 'pushes to the quiet proxy coalesced');
    // Limit 3: the initial response plus two pushes (b, a); the other three changes (b, a, b) wait as one difference.
    assert.equal(quiet.call.messages.length, 3);
    const p = (await syncz()).find((x) => x.proxy.id === quiet.id);
    assert.equal(p.types[TYPE_AUTHORIZATION].unanswered, 3);
    assert.equal(p.types[TYPE_AUTHORIZATION].coalesced, true);
    assert.equal(p.types[TYPE_AUTHORIZATION].versionAcked, '');
    for (const m of quiet.call.messages.slice()) quiet.call.writeAds({ type_url: TYPE_AUTHORIZATION, response_nonce: m.nonce });
    await quiet.call.waitForMessages(4);
    const diff = quiet.call.messages[3]!;
    assert.deepEqual(diff.resources.map((r) => r.name), [mesh.editTarget.resourceName]);
    assert.match(diff.resources[0]!.body.toString('utf8'), /\/sa\/edit-b/, 'the difference carries the last edit');
    quiet.call.writeAds({ type_url: TYPE_AUTHORIZATION, response_nonce: diff.nonce });
    await eventually(async () => {
      const t = (await syncz()).find((x) => x.proxy.id === quiet.id)?.types[TYPE_AUTHORIZATION];
      return t?.unanswered === 0 && t.coalesced === false;
    }, 5000, 'the quiet proxy answered everything');
    assert.equal(quiet.call.messages.length, 4);

    // The one that never answers is ended once its oldest response is older than the stall timeout.
    const end = await silent.call.ended;
    assert.equal(end.status, 8 /* RESOURCE_EXHAUSTED */);
    assert.match(end.message ?? '', /has not answered response \S+ \(type\.strait\.dev\/Authorization\) sent \d+ s ago; .*--xds-stall-timeout/);
    const m = (await c.get('/metrics')).text;
    assert.equal(metricValue(m, 'strait_xds_stall_disconnects_total', { kind: 'ztunnel', why: 'unanswered' }), 1);
  });

  let healthySeen: ReturnType<typeof startHealthy> | undefined;
  function startHealthyOnce() {
    return (healthySeen ??= startHealthy());
  }
});
