/**
 * The lab's network when a stop comes while `lab up` is still building it (Ctrl-C during start): the namespaces the
 * start goes on to make must not outlive the stop. LabNetwork (src/local/lab/network.ts) in namespaces of its own prefix.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { LabNetwork } from '../../src/local/lab/network.js';
import { serviceTablesSetup } from '../../src/local/lab/services.js';
import { listNamespaces, requireLab } from '../helpers/netns.js';

const prefixes: string[] = [];
after(() => {
  for (const p of prefixes) for (const ns of listNamespaces(p)) spawnSync('ip', ['netns', 'del', ns]);
});

test('a pod namespace the start makes after destroy() began is refused, and nothing of the lab is left', async (t) => {
  if (!requireLab(t)) return;
  let prefix = '';
  do prefix = `strait-lab${randomBytes(2).toString('hex')}-`; while (listNamespaces(prefix).length > 0);
  prefixes.push(prefix);
  const net = new LabNetwork(prefix);
  await net.createBase();
  const node = { name: 'a', index: 0, address: '198.19.254.1', gateway: '198.19.253.1' };
  await net.addNode(node, serviceTablesSetup([], []));
  await net.addPod(1, '198.18.10.1', node);

  const stopping = net.destroy();
  // The start, not knowing yet, goes on with its next pod.
  const late = net.addPod(2, '198.18.10.2', node);
  await assert.rejects(late, /the lab is stopping/);
  assert.deepEqual(await stopping, []);
  assert.deepEqual(listNamespaces(prefix), [], 'no namespace of the lab is left');
  assert.deepEqual(net.namespaces, []);
});
