import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseManifests } from '../../src/common/model/parse.js';
import { formatProblem, type AuthorizationPolicy, type LoadedObject, type Problem } from '../../src/common/model/types.js';
import { ConfigStore, snapshotEvents, type SourceEvent, type StoreChange } from '../../src/controller/store.js';
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

// ---------- per-object events and the last good version (DESIGN §3) ----------

const policy = (name: string, action: string, file = 'a.yaml') =>
  parseManifests(docs({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name, namespace: 'shop' }, spec: { action, rules: [{}] } }), file).objects[0]!;
const error = (name: string, file = 'b.yaml', message = 'spec.action: "BLOCK" is not one of ALLOW, DENY, AUDIT, CUSTOM'): Problem =>
  ({ severity: 'error', file, doc: 1, kind: 'AuthorizationPolicy', namespace: 'shop', name, path: '', message, code: 'STRAIT_ERR_MANIFEST_INVALID' });
const up = (o: LoadedObject): SourceEvent => ({ type: 'upsert', object: o });
const reject = (name: string, p = error(name)): SourceEvent => ({ type: 'reject', key: `AuthorizationPolicy/shop/${name}`, problems: [p] });
const del = (name: string): SourceEvent => ({ type: 'delete', key: `AuthorizationPolicy/shop/${name}` });

interface StoreCase {
  name: string;
  /** Batches applied in order: [source, events, resync?]. */
  batches: [string, SourceEvent[], boolean?][];
  /** key → spec.action of what is in force. */
  inForce: Record<string, string>;
  problems: string[];
  /** [added, updated, removed] of each change event. */
  changes: [string[], string[], string[]][];
}

const P = 'AuthorizationPolicy/shop/p';
const Q = 'AuthorizationPolicy/shop/q';
const CASES: StoreCase[] = [
  {
    name: 'a rejected version keeps the last good one in force, with a warning saying where it came from',
    batches: [['f', [up(policy('p', 'ALLOW'))]], ['f', [reject('p')]]],
    inForce: { [P]: 'ALLOW' },
    problems: [
      'b.yaml doc 1 AuthorizationPolicy shop/p: spec.action: "BLOCK" is not one of ALLOW, DENY, AUDIT, CUSTOM',
      'b.yaml doc 1 AuthorizationPolicy shop/p: warning: the last good version (loaded from a.yaml doc 1) stays in force until this document is fixed',
    ],
    changes: [[[P], [], []]],
  },
  {
    name: 'a rejected object that was never valid holds nothing and is reported as an error',
    batches: [['f', [reject('p')]]],
    inForce: {},
    problems: ['b.yaml doc 1 AuthorizationPolicy shop/p: spec.action: "BLOCK" is not one of ALLOW, DENY, AUDIT, CUSTOM'],
    changes: [],
  },
  {
    name: 'a second rejection keeps the same last good version and reports only the newest errors',
    batches: [['f', [up(policy('p', 'ALLOW'))]], ['f', [reject('p')]], ['f', [reject('p', error('p', 'b.yaml', 'spec.rules: expected a list'))]]],
    inForce: { [P]: 'ALLOW' },
    problems: [
      'b.yaml doc 1 AuthorizationPolicy shop/p: spec.rules: expected a list',
      'b.yaml doc 1 AuthorizationPolicy shop/p: warning: the last good version (loaded from a.yaml doc 1) stays in force until this document is fixed',
    ],
    changes: [[[P], [], []]],
  },
  {
    name: 'a valid version after a rejection replaces the kept one and clears the problems',
    batches: [['f', [up(policy('p', 'ALLOW'))]], ['f', [reject('p')]], ['f', [up(policy('p', 'DENY', 'b.yaml'))]]],
    inForce: { [P]: 'DENY' },
    problems: [],
    changes: [[[P], [], []], [[], [P], []]],
  },
  {
    name: 'a delete removes the last good version together with its rejection',
    batches: [['f', [up(policy('p', 'ALLOW'))]], ['f', [reject('p')]], ['f', [del('p')]]],
    inForce: {},
    problems: [],
    changes: [[[P], [], []], [[], [], [P]]],
  },
  {
    name: 'a bad neighbour never disturbs an object in force',
    batches: [['f', [up(policy('p', 'ALLOW')), up(policy('q', 'DENY'))]], ['f', [reject('q'), up(policy('p', 'DENY'))]]],
    inForce: { [P]: 'DENY', [Q]: 'DENY' },
    problems: [
      'b.yaml doc 1 AuthorizationPolicy shop/q: spec.action: "BLOCK" is not one of ALLOW, DENY, AUDIT, CUSTOM',
      'b.yaml doc 1 AuthorizationPolicy shop/q: warning: the last good version (loaded from a.yaml doc 1) stays in force until this document is fixed',
    ],
    changes: [[[P, Q], [], []], [[], [P], []]],
  },
  {
    name: 'a resync batch deletes every object and scope it does not name, kept versions included',
    batches: [
      ['f', [up(policy('p', 'ALLOW')), up(policy('q', 'ALLOW')), { type: 'problems', scope: 'c.yaml', problems: [error('x', 'c.yaml')] }]],
      ['f', [reject('q')]],
      ['f', [up(policy('p', 'ALLOW'))], true],
    ],
    inForce: { [P]: 'ALLOW' },
    problems: [],
    changes: [[[P, Q], [], []], [[], [], [Q]]],
  },
  {
    name: 'problems of a scope replace that scope\'s earlier ones, and an empty list clears them',
    batches: [
      ['f', [{ type: 'problems', scope: 'c.yaml', problems: [error('x', 'c.yaml')] }, { type: 'problems', scope: 'd.yaml', problems: [error('y', 'd.yaml')] }]],
      ['f', [{ type: 'problems', scope: 'c.yaml', problems: [] }]],
    ],
    inForce: {},
    problems: ['d.yaml doc 1 AuthorizationPolicy shop/y: spec.action: "BLOCK" is not one of ALLOW, DENY, AUDIT, CUSTOM'],
    changes: [],
  },
  {
    name: 'the earliest source to offer a key wins; when it lets go, the next source\'s version takes over',
    batches: [['s1', [up(policy('p', 'ALLOW'))]], ['s2', [up(policy('p', 'DENY'))]], ['s1', [del('p')]]],
    inForce: { [P]: 'DENY' },
    problems: [],
    changes: [[[P], [], []], [[], [P], []]],
  },
  {
    name: 'another source\'s rejection leaves the winning version alone',
    batches: [['s1', [up(policy('p', 'ALLOW'))]], ['s2', [reject('p')]]],
    inForce: { [P]: 'ALLOW' },
    problems: ['b.yaml doc 1 AuthorizationPolicy shop/p: spec.action: "BLOCK" is not one of ALLOW, DENY, AUDIT, CUSTOM'],
    changes: [[[P], [], []]],
  },
  {
    name: 'an object sent again unchanged is no change',
    batches: [['f', [up(policy('p', 'ALLOW'))]], ['f', [up(policy('p', 'ALLOW'))]], ['f', [up(policy('p', 'ALLOW'))], true]],
    inForce: { [P]: 'ALLOW' },
    problems: [],
    changes: [[[P], [], []]],
  },
];

describe('config store: per-object events and the last good version', () => {
  for (const c of CASES) {
    it(c.name, () => {
      const s = new ConfigStore();
      const changes: StoreChange[] = [];
      s.on('change', (ch) => changes.push(ch));
      for (const [source, events, resync] of c.batches) s.apply(source, events, 1, { resync: resync ?? false });
      assert.deepEqual(Object.fromEntries(s.list().map((o) => [o.key, (o.object as AuthorizationPolicy).spec.action])), c.inForce);
      assert.deepEqual(s.problems().map(formatProblem), c.problems);
      assert.deepEqual(changes.map((ch) => [ch.added, ch.updated, ch.removed]), c.changes);
    });
  }

  it('counts a revision for each change of what the winning source offers, not for repeats', () => {
    const s = new ConfigStore();
    const revisions: number[] = [];
    for (const ev of [up(policy('p', 'ALLOW')), up(policy('p', 'ALLOW')), reject('p'), reject('p'), up(policy('p', 'DENY')), del('p')]) {
      s.apply('f', [ev]);
      revisions.push(s.revision(P));
    }
    assert.deepEqual(revisions, [1, 1, 2, 2, 3, 0]);
  });

  it('turns a parsed snapshot into events: objects with their warnings, rejections by key, the rest by scope', () => {
    const parsed = parseManifests(docs(
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' }, spec: { colour: 'blue' } },
      { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'p', namespace: 'shop' }, spec: { action: 'BLOCK' } },
      { apiVersion: 'networking.istio.io/v1', kind: 'Sidecar', metadata: { name: 'default', namespace: 'shop' }, spec: {} },
    ), 'x.yaml');
    const events = snapshotEvents(parsed);
    assert.deepEqual(events.map((e) => [e.type, e.type === 'upsert' ? e.object.key : e.type === 'problems' ? e.scope : e.key,
      (e.type === 'upsert' ? e.warnings ?? [] : e.type === 'delete' ? [] : e.problems).map((p: Problem) => `${p.severity} ${p.path}`)]), [
      ['upsert', 'Namespace//shop', ['warning spec.colour']],
      ['reject', P, ['error spec.action']],
      ['problems', '*', ['warning ']],
    ]);
  });
});
