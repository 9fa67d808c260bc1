// Initial-sync slots are shared per credential (review of issue 13): the controller holds at most 32 large first
// responses at once, each from the first request until the transport has taken it, and one credential holds at
// most --xds-max-initial-syncs-per-credential (2) of them. One node token that opens 64 streams which read and
// never answer, or never read at all, must not delay another node's proxy: its first Workload response comes as
// fast as without them. (On the code before the fix it waited ~10-20 s: one or two slot timeouts.)
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

describe('initial-sync slots under one hostile node token', () => {
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

  function hog(node: string, n: number, read: boolean): RawGrpcCall[] {
    const calls: RawGrpcCall[] = [];
    for (let i = 0; i < n; i++) {
      const call = new RawGrpcCall(c.xds, c.rootPem, ADS_PATH, md(node), { read });
      call.writeAds({ node: { id: `ztunnel~${node}~hog-${i}`, kind: 'ztunnel', node_name: node, namespace: '', name: '' }, type_url: TYPE_WORKLOAD });
      calls.push(call);
      opened.push(call);
    }
    return calls;
  }

  it('a healthy proxy of another node is not held back by one token whose 64 streams read their initial syncs and never answer', async (t) => {
    const baseline = await timeToFirstSync(mesh.nodes[11]!, 'ztunnel~baseline');
    const calls = hog(mesh.nodes[0]!, 64, true);
    await eventually(() => calls.filter((o) => o.messages.length > 0).length >= 32, 20_000, 'the attacker got 32 initial syncs');
    const victim = await timeToFirstSync(mesh.nodes[10]!, 'ztunnel~victim');
    t.diagnostic(`first Workload response: ${baseline} ms alone, ${victim} ms behind one token's 64 unanswered initial syncs`);
    assert.ok(victim < Math.max(2000, 4 * baseline), `healthy proxy waited ${victim} ms for its initial sync (alone: ${baseline} ms)`);
    // Every hog stream was served in turn (none of them holds a slot once its response was read).
    await eventually(() => calls.every((o) => o.messages.length > 0), 20_000, 'every hog stream served');
  });

  it('a healthy proxy of another node is not held back by one token whose 64 streams never read their initial syncs', async (t) => {
    const calls = hog(mesh.nodes[1]!, 64, false);
    // The controller serves two of them (the credential's share) and queues the rest.
    await eventually(async () => {
      const proxies = (await c.get('/debug/syncz')).body.proxies as Array<{ proxy: { id: string }; types: Record<string, unknown> }>;
      const mine = proxies.filter((p) => p.proxy.id.startsWith(`ztunnel~${mesh.nodes[1]}~hog-`));
      return mine.length === 64 && mine.filter((p) => p.types[TYPE_WORKLOAD]).length === 2;
    }, 20_000, 'the hog token connected 64 streams, 2 of them served');
    const victim = await timeToFirstSync(mesh.nodes[9]!, 'ztunnel~victim-2');
    t.diagnostic(`first Workload response behind one token's 64 unread initial syncs: ${victim} ms`);
    assert.ok(victim < 2000, `healthy proxy waited ${victim} ms for its initial sync`);
    const proxies = (await c.get('/debug/syncz')).body.proxies as Array<{ proxy: { id: string }; types: Record<string, unknown> }>;
    const served = proxies.filter((p) => p.proxy.id.startsWith(`ztunnel~${mesh.nodes[1]}~hog-`) && p.types[TYPE_WORKLOAD]).length;
    assert.equal(served, 2, 'the unread hog streams still hold only their credential\'s 2 slots');
    for (const x of calls) x.close();
  });
});
