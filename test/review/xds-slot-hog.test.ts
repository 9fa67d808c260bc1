// Review of issue 13 (attacker holding ONE valid node token). The controller lets at most 32 large initial syncs
// be unanswered at once (DEFAULT_XDS_MAX_CONCURRENT_INITIAL_SYNCS), each slot held until the proxy answers its
// first response or 10 s pass. Nothing bounds how many of those slots one credential holds: one node token opens
// 64 streams (its --xds-max-streams-per-credential), each subscribes to Workloads, reads, and never answers. Every
// other proxy's initial sync then waits behind them. Expected (what should hold): a healthy proxy of another node
// gets its first Workload response as fast as without the attacker (a few hundred ms here), because slots are
// shared fairly per credential. FAILS on main: it waits ~10-20 s (one or two slot timeouts).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { XdsClient } from '../../src/common/xds/index.js';
import { TYPE_WORKLOAD } from '../../src/common/xds/resources.js';
import { generateMesh, type GeneratedMesh } from '../../bench/lib/controller-mesh.js';
import { startController, type ControllerHandle } from '../helpers/controller.js';
import { eventually } from '../helpers/eventually.js';
import { tempDir } from '../helpers/temp-dir.js';
import { ADS_PATH, RawGrpcCall } from '../helpers/raw-grpc.js';

describe('initial-sync slots under one hostile node token (review)', () => {
  const cfg = tempDir('hog-cfg');
  const data = tempDir('hog-data');
  let c: ControllerHandle;
  let mesh: GeneratedMesh;
  const opened: RawGrpcCall[] = [];
  const clients: XdsClient[] = [];

  before(async () => {
    mesh = generateMesh(cfg.path, { pods: 1200, services: 120, policies: 24, namespaces: 6, nodes: 12 });
    c = await startController(cfg.path, data.path, ['--push-debounce', '20ms']);
    await eventually(() => mesh.nodes.every((n) => existsSync(join(data.path, 'tokens', `node-${n}.token`))), 10_000, 'node tokens');
  });
  after(async () => {
    for (const x of clients) x.close();
    for (const o of opened) o.close();
    await c?.stop();
    cfg.remove();
    data.remove();
  });

  const md = (node: string) => ({ authorization: `Bearer ${c.token(`node-${node}.token`)}`, 'x-strait-node': node });

  async function timeToFirstSync(node: string, id: string): Promise<number> {
    const t0 = Date.now();
    let at = 0;
    const x = new XdsClient({
      address: c.xds, credentials: c.credentials(), metadata: () => md(node),
      node: { id, kind: 'ztunnel', nodeName: node },
      subscriptions: [{ typeUrl: TYPE_WORKLOAD, apply: () => void (at ||= Date.now()) }],
    });
    clients.push(x);
    x.start();
    await eventually(() => at > 0, 40_000, `${id} synced`);
    return at - t0;
  }

  it('a healthy proxy of another node is not held back by one token that never answers its initial syncs', async (t) => {
    const baseline = await timeToFirstSync(mesh.nodes[11]!, 'ztunnel~baseline');
    const attacker = mesh.nodes[0]!;
    for (let i = 0; i < 64; i++) {
      const call = new RawGrpcCall(c.xds, c.rootPem, ADS_PATH, md(attacker), { read: true });
      call.writeAds({ node: { id: `ztunnel~${attacker}~hog-${i}`, kind: 'ztunnel', node_name: attacker, namespace: '', name: '' }, type_url: TYPE_WORKLOAD });
      opened.push(call);
    }
    await eventually(() => opened.filter((o) => o.messages.length > 0).length >= 32, 10_000, 'the attacker holds the slots');
    const victim = await timeToFirstSync(mesh.nodes[10]!, 'ztunnel~victim');
    t.diagnostic(`first Workload response: ${baseline} ms alone, ${victim} ms behind one token's 64 unanswered initial syncs`);
    assert.ok(victim < Math.max(2000, 4 * baseline), `healthy proxy waited ${victim} ms for its initial sync (alone: ${baseline} ms)`);
  });
});
