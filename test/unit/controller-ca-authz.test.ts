import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { refuseIdentity } from '../../src/controller/ca-server.js';
import { BootstrapTokens } from '../../src/controller/tokens.js';

import { SpiffeId } from '../../src/identity/index.js';
import { docs, objectsOf, pod, waypoint } from '../helpers/manifests.js';
import { tempDir } from '../helpers/temp-dir.js';

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

describe('bootstrap tokens', () => {
  it('accepts only the caller\'s own token, also once that caller is remembered', async () => {
    const dir = tempDir('tokens');
    try {
      const tokens = await BootstrapTokens.loadOrCreate(dir.path);
      const a = { type: 'node', node: 'node-a' } as const;
      const b = { type: 'node', node: 'node-b' } as const;
      const wp = { type: 'waypoint', namespace: 'shop', name: 'waypoint' } as const;
      const tokenA = tokens.tokenFor(a);
      const flipped = (t: string) => (t[0] === 'A' ? 'B' : 'A') + t.slice(1);
      for (let round = 0; round < 2; round++) {
        assert.equal(tokens.verify(a, tokenA), true);
        assert.equal(tokens.verify(a, flipped(tokenA)), false);
        assert.equal(tokens.verify(a, tokenA.slice(1)), false);
        assert.equal(tokens.verify(a, ''), false);
        assert.equal(tokens.verify(b, tokenA), false);
        assert.equal(tokens.verify(wp, tokenA), false);
      }
      assert.equal(tokens.verify(b, tokens.tokenFor(b)), true);
      assert.equal(tokens.verify(wp, tokens.tokenFor(wp)), true);
      // Another controller on the same data directory issues the same tokens.
      assert.equal((await BootstrapTokens.loadOrCreate(dir.path)).verify(a, tokenA), true);
    } finally {
      dir.remove();
    }
  });
});
