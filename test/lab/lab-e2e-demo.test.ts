/**
 * `strait lab up` without a directory runs the built-in demo (examples/demo) as a cluster (issue 11, README "try it as
 * a cluster"): its 127.x manifest addresses read as 198.18.x, and plain curl inside its pods sees what the demo
 * promises — cross-node calls in mTLS with the caller's identity, the orders ALLOW policy refusing shop/client, and the
 * store's waypoint answering 403 to client's DELETE while its GET gets 200.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { requireLab } from '../helpers/netns.js';
import { LabCli, REFUSED_OR_RESET } from '../helpers/lab-cli.js';

/** The demo's Service VIPs (127.0.20.x in examples/demo/20-services.yaml, 21-store-services.yaml) as the lab reads them. */
const VIP = { catalog: '198.18.20.11', orders: '198.18.20.12', api: '198.18.20.21' };

test('strait lab up without a directory: the built-in demo as a cluster, for plain curl in its pods', async (t) => {
  if (!requireLab(t)) return;
  const lab = await LabCli.start({});
  try {
    await t.test('the demo\'s 127.x addresses are read as 198.18.x, its two nodes and its waypoint run', () => {
      assert.deepEqual(Object.keys(lab.state.nodes).sort(), ['node-a', 'node-b']);
      assert.equal(lab.pod('shop/client-1').address, '198.18.10.1');
      assert.equal(lab.pod('backend/orders-1').address, '198.18.10.13');
      assert.equal(lab.pod('backend/orders-1').node, 'node-b');
      assert.equal(lab.state.services['backend/orders']?.clusterIP, VIP.orders);
      assert.deepEqual(lab.state.services['backend/orders']?.endpoints, ['198.18.10.13']);
      assert.ok(lab.state.waypoints['store/waypoint'], JSON.stringify(lab.state.waypoints));
    });

    await t.test('shop/web-1 on node-a calls orders on node-b; the access log on node-b names web\'s SPIFFE id', async () => {
      const r = await lab.curl('shop/web-1', `http://${VIP.orders}/`);
      assert.equal(r.exit, 0, r.stderr);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body?.pod, 'orders-1');
      await lab.waitForLog((l) => l.component === 'ztunnel' && l.node === 'node-b' && l.msg === 'connection complete' && l.direction === 'inbound'
        && l['src.identity'] === 'spiffe://cluster.local/ns/shop/sa/web' && l['dst.workload'] === 'orders-1', 'node-b\'s inbound line from shop/web');
    });

    await t.test('orders refuses shop/client-1 (ALLOW only for web): curl sees the connection refused or reset', async () => {
      const r = await lab.curl('shop/client-1', `http://${VIP.orders}/`);
      assert.ok(r.exit !== null && REFUSED_OR_RESET.has(r.exit), `curl exit ${r.exit} (HTTP ${r.status}): ${r.stderr} ${r.text}`);
      const ok = await lab.curl('shop/client-1', `http://${VIP.catalog}/`);
      assert.equal(ok.status, 200, `catalog lets the shop namespace in: ${ok.exit} ${ok.stderr} ${ok.text}`);
      assert.equal(ok.body?.app, 'catalog');
    });

    await t.test('the store\'s waypoint answers 403 to shop/client-1\'s DELETE and 200 to its GET', async () => {
      const del = await lab.curl('shop/client-1', `http://${VIP.api}/items/1`, ['-X', 'DELETE']);
      assert.equal(del.status, 403, `${del.exit} ${del.stderr} ${del.text}`);
      assert.match(del.text, /RBAC: access denied/);
      const get = await lab.curl('shop/client-1', `http://${VIP.api}/items/1`);
      assert.equal(get.status, 200, `${get.exit} ${get.stderr} ${get.text}`);
      assert.equal(get.body?.app, 'api');
    });
  } finally {
    await lab.down();
  }
});
