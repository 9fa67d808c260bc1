import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  encodeDeltaResponse,
  encodedResourceField,
  loadXdsProto,
  TYPE_URL_PREFIX,
  type ResourceEntry,
  type WireDeltaResponse,
} from '../../src/common/xds/index.js';
import { diffResourceSets } from '../../src/controller/xds/resource-diff.js';

function decode(buf: Buffer): WireDeltaResponse {
  const method = loadXdsProto().service['DeltaAggregatedResources']!;
  return method.responseDeserialize(buf) as WireDeltaResponse;
}

test('the hand-rolled response encoder is decoded by protobufjs to the same message', () => {
  const big = { blob: 'x'.repeat(20_000) }; // lengths needing 3-byte varints
  const entries: ResourceEntry[] = [
    { name: 'default/ünïcode-pod', version: 'v1', body: { ip: '10.0.0.1', labels: { app: 'é' } } },
    { name: 'big', version: 'v22', body: big },
    { name: 'null-body', version: 'v3', body: null },
  ];
  const buf = encodeDeltaResponse({
    systemVersionInfo: '42',
    typeUrl: `${TYPE_URL_PREFIX}Workload`,
    resources: entries.map(encodedResourceField),
    removed: ['gone/1', 'gone/ü'],
    nonce: 'abc',
  });
  const msg = decode(buf);
  assert.equal(msg.system_version_info, '42');
  assert.equal(msg.type_url, 'type.strait.dev/Workload');
  assert.equal(msg.nonce, 'abc');
  assert.deepEqual(msg.removed_resources, ['gone/1', 'gone/ü']);
  assert.deepEqual(
    msg.resources.map((r) => ({ name: r.name, version: r.version, body: JSON.parse(r.body.toString('utf8')) })),
    entries.map((e) => ({ name: e.name, version: e.version, body: e.body })),
  );
});

test('an empty response encodes to a decodable message', () => {
  const msg = decode(encodeDeltaResponse({ systemVersionInfo: '', typeUrl: 't', resources: [], removed: [], nonce: '1' }));
  assert.equal(msg.type_url, 't');
  assert.deepEqual(msg.resources, []);
  assert.deepEqual(msg.removed_resources, []);
});

test('a resource is JSON-encoded once and the buffer reused for every response', () => {
  const e: ResourceEntry = { name: 'a', version: '1', body: { n: 1 } };
  assert.equal(encodedResourceField(e), encodedResourceField(e));
  const copy: ResourceEntry = { ...e };
  assert.notEqual(encodedResourceField(copy), encodedResourceField(e));
  assert.deepEqual(encodedResourceField(copy), encodedResourceField(e));
});

test('diffResourceSets reports new and re-versioned entries and removed names, not reused or equal-version ones', () => {
  const a = { name: 'a', version: '1', body: 1 };
  const b = { name: 'b', version: '1', body: 1 };
  const c = { name: 'c', version: '1', body: 1 };
  const prev = new Map([['a', a], ['b', b], ['c', c]]);
  const b2 = { name: 'b', version: '2', body: 2 };
  const cSameVersion = { name: 'c', version: '1', body: 1 };
  const d = { name: 'd', version: '1', body: 1 };
  const next = new Map([['b', b2], ['c', cSameVersion], ['d', d]]);
  const diff = diffResourceSets(prev, next);
  assert.deepEqual(diff.changed.map((e) => e.name).sort(), ['b', 'd']);
  assert.deepEqual(diff.removed, ['a']);
  assert.deepEqual(diffResourceSets(next, next), { changed: [], removed: [] });
});
