import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseManifests } from '../../src/common/model/parse.js';
import { ConfigStore, type StoreChange } from '../../src/controller/store.js';
import { docs, namespace, pod } from '../helpers/manifests.js';

const load = (...o: unknown[]) => parseManifests(docs(...o), 'x.yaml');

describe('config store', () => {
  it('emits one change per effective update and none for a no-op', () => {
    const s = new ConfigStore();
    const changes: StoreChange[] = [];
    s.on('change', (c) => changes.push(c));
    s.replaceSource('f', load(namespace('a'), pod('a', 'p')), 1);
    s.replaceSource('f', load(namespace('a'), pod('a', 'p')), 2);
    s.replaceSource('f', load(namespace('a'), pod('a', 'p', { ip: '10.0.0.9' })), 3);
    s.replaceSource('f', load(namespace('a')), 4);
    assert.deepEqual(changes.map((c) => [c.changedAt, c.added, c.updated, c.removed]), [
      [1, ['Namespace//a', 'Pod/a/p'], [], []],
      [3, [], ['Pod/a/p'], []],
      [4, [], [], ['Pod/a/p']],
    ]);
  });

  it('keeps sources apart: one source never removes another\'s objects, and the first owner of a key keeps it', () => {
    const s = new ConfigStore();
    s.replaceSource('f1', load(namespace('a')));
    s.replaceSource('f2', load(namespace('a', { x: 'y' }), namespace('b')));
    s.replaceSource('f2', load());
    assert.deepEqual(s.list().map((o) => o.key), ['Namespace//a']);
    assert.deepEqual(s.get('Namespace//a')!.object.metadata.labels, {});
  });
});
