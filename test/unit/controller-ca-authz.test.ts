import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { refuseIdentity } from '../../src/controller/ca-server.js';
import { SpiffeId } from '../../src/identity/index.js';
import { docs, objectsOf, pod, waypoint } from '../helpers/manifests.js';

const objects = objectsOf(docs(
  pod('shop', 'web-1', { node: 'node-a', sa: 'web' }),
  pod('shop', 'db-1', { node: 'node-b', sa: 'db', ip: '10.0.0.2' }),
  waypoint('shop', 'waypoint'),
));
const id = (ns: string, sa: string) => SpiffeId.parse(`spiffe://cluster.local/ns/${ns}/sa/${sa}`);

describe('which caller may hold which identity', () => {
  it('lets a node obtain the identity of a pod scheduled on it', () => {
    assert.equal(refuseIdentity({ type: 'node', node: 'node-a' }, id('shop', 'web'), objects), undefined);
  });

  it('refuses a node the identity of a pod on another node, naming why', () => {
    assert.equal(
      refuseIdentity({ type: 'node', node: 'node-a' }, id('shop', 'db'), objects),
      'node node-a may not obtain spiffe://cluster.local/ns/shop/sa/db: no pod with service account "db" in namespace "shop" is scheduled on node node-a',
    );
  });

  it('lets a waypoint obtain only its own identity', () => {
    assert.equal(refuseIdentity({ type: 'waypoint', namespace: 'shop', name: 'waypoint' }, id('shop', 'waypoint'), objects), undefined);
    assert.match(refuseIdentity({ type: 'waypoint', namespace: 'shop', name: 'waypoint' }, id('shop', 'web'), objects)!, /neither the waypoint's service account/);
    assert.match(refuseIdentity({ type: 'waypoint', namespace: 'shop', name: 'gone' }, id('shop', 'gone'), objects)!, /no Gateway shop\/gone/);
  });
});
