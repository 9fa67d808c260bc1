// Planning a local mesh from manifests: node addresses from the pool, the pods' HBONE addresses, and pods that
// cannot live on this machine's loopback refused by name before anything starts.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { listenAddresses } from '../../src/local/components.js';
import { planLocalMesh } from '../../src/local/plan.js';
import { docs, namespace, objectsOf } from '../helpers/manifests.js';
import { appPod, node } from '../helpers/mesh.js';

const plan = (...objs: unknown[]) => planLocalMesh(objectsOf(docs(...objs)));

describe('planLocalMesh', () => {
  it('gives nodes without a loopback address one from the pool of the address base, in name order', () => {
    const p = planLocalMesh(objectsOf(docs(appPod('a', 'x', 'node-b', '127.5.10.1', 'x'), appPod('a', 'y', 'node-a', '127.5.10.2', 'y'))), { nodePoolPrefix: '127.5.100.' });
    assert.deepEqual(p.nodes, [{ name: 'node-a', address: '127.5.100.1' }, { name: 'node-b', address: '127.5.100.2' }]);
  });

  it('lists each pod\'s loopback addresses on its node (where the ztunnel answers HBONE)', () => {
    const p = plan(node('node-a', '127.0.100.1'), appPod('apps', 'web', 'node-a', '127.0.10.2', 'web'));
    assert.deepEqual(p.pods, [{ key: 'apps/web', node: 'node-a', addresses: ['127.0.10.2'] }]);
    assert.deepEqual(p.errors, []);
  });

  it('refuses a pod whose address is not on loopback, naming the pod, the address and the fix', () => {
    const off = { ...(appPod('apps', 'remote', 'node-a', '10.1.2.3', 'remote') as object), spec: { nodeName: 'node-a', serviceAccountName: 'remote', containers: [{ name: 'c', image: 'nginx' }] } };
    const p = plan(namespace('apps'), node('node-a', '127.0.100.1'), off, appPod('apps', 'ok', 'node-a', '127.0.10.1', 'ok'));
    assert.equal(p.errors.length, 1);
    assert.match(p.errors[0]!, /^Pod apps\/remote: status\.podIP 10\.1\.2\.3 is not a loopback address\./);
    assert.match(p.errors[0]!, /EADDRNOTAVAIL/);
    assert.match(p.errors[0]!, /Give the pod a status\.podIP in 127\.0\.0\.0\/8/);
    assert.deepEqual(p.apps.map((a) => a.pod), ['ok'], 'no demo app planned for the refused pod');
  });

  it('refuses a pod with a second address off loopback too', () => {
    const two = appPod('apps', 'dual', 'node-a', '127.0.10.1', 'dual') as { status: Record<string, unknown> };
    two.status.podIPs = [{ ip: '127.0.10.1' }, { ip: 'fd00::1' }];
    const p = plan(two);
    assert.match(p.errors[0] ?? '', /^Pod apps\/dual: status\.podIPs fd00::1 is not a loopback address/);
  });

  it('accepts a pod with no address yet (nothing listens for it)', () => {
    const pending = appPod('apps', 'pending', 'node-a', '127.0.10.1', 'p') as { status: Record<string, unknown> };
    pending.status = {};
    assert.deepEqual(plan(pending).errors, []);
  });
});

describe('listenAddresses', () => {
  it('lists what the mesh binds: the controller\'s two ports, seven per node, each pod\'s HBONE, each demo app', () => {
    const p = plan(node('node-a', '127.0.100.1'), appPod('apps', 'web', 'node-a', '127.0.10.2', 'web'));
    const got = listenAddresses('127.0.99.1', p).map((a) => `${a.host}:${a.port} ${a.what}`);
    assert.deepEqual(got, [
      '127.0.99.1:15012 controller xDS', '127.0.99.1:15014 controller admin',
      '127.0.100.1:15080 ztunnel node-a SOCKS5', '127.0.100.1:15008 ztunnel node-a HBONE', '127.0.100.1:15001 ztunnel node-a outbound',
      '127.0.100.1:15006 ztunnel node-a inbound plaintext', '127.0.100.1:15000 ztunnel node-a admin', '127.0.100.1:15020 ztunnel node-a metrics',
      '127.0.100.1:15021 ztunnel node-a readiness',
      '127.0.10.2:15008 HBONE of pod apps/web',
      '127.0.10.2:8080 demo app apps/web',
    ]);
  });
});
