// The protobuf body codec (src/common/xds/body-codec.ts) and the shared snapshot encodings (xds-proto.ts): exact or
// refused, encoded once per snapshot and encoding, packed snapshots decoded within the receive limits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateRawSync } from 'node:zlib';
import {
  BodyCodecError,
  JSON_ENCODING,
  decodeBody,
  decodePackedResources,
  encodeBody,
  encodedSnapshot,
  loadXdsProto,
  streamEncoding,
  type ResourceEntry,
  type WireDeltaResponse,
} from '../../src/common/xds/index.js';
import { TYPE_POLICY, TYPE_ROUTE, TYPE_SERVICE, TYPE_WORKLOAD } from '../../src/common/xds/resources.js';
import { BODIES, SERVICES, WORKLOADS } from '../helpers/xds-body-fixtures.js';

test('every fixture body of every type decodes to exactly the object encoded, and is smaller than its JSON', () => {
  for (const [type, bodies] of Object.entries(BODIES)) {
    for (const [name, body] of Object.entries(bodies)) {
      const bytes = encodeBody(type, body);
      assert.deepEqual(decodeBody(type, bytes), body, `${type} ${name}`);
      assert.ok(bytes.length < Buffer.byteLength(JSON.stringify(body)), `${type} ${name}: ${bytes.length} bytes`);
    }
  }
});

test('bodies the schema cannot carry exactly are refused with the path of the offending value', () => {
  const w = WORKLOADS['default/full']!;
  const cases: [string, unknown, RegExp][] = [
    [TYPE_WORKLOAD, { ...w, extra: 1 }, /Workload\.extra: not in Workload of resources\.proto/],
    [TYPE_WORKLOAD, { ...w, workloadName: null }, /Workload\.workloadName: expected a string/],
    [TYPE_WORKLOAD, { ...w, uid: undefined }, /Workload\.uid: required, missing/],
    [TYPE_WORKLOAD, { ...w, namedPorts: { http: -1 } }, /Workload\.namedPorts\.http: expected an integer/],
    [TYPE_WORKLOAD, { ...w, namedPorts: { http: 1.5 } }, /expected an integer/],
    [TYPE_WORKLOAD, { ...w, healthy: 'yes' }, /Workload\.healthy: expected a boolean/],
    [TYPE_SERVICE, { ...SERVICES['default/full'], ports: [{ port: 80, targetPort: true }] }, /targetPort: a boolean fits none/],
    [TYPE_SERVICE, { ...SERVICES['default/full'], ports: [{ port: 80 }] }, /ports\[0\]\.targetPort: required, missing/],
    [TYPE_POLICY, { type: 'nope' }, /Policy: type "nope" is none of backend, authz, tracing/],
    [TYPE_ROUTE, null, /Route: expected an object/],
    ['type.strait.dev/Unknown', {}, /has no protobuf body schema/],
  ];
  for (const [type, body, re] of cases) assert.throws(() => encodeBody(type, body), (err: Error) => err instanceof BodyCodecError && re.test(err.message), JSON.stringify(body)?.slice(0, 80));
});

test('Node.accept decides the encoding; unknown entries are ignored and nothing asked means JSON', () => {
  assert.deepEqual(streamEncoding(undefined), JSON_ENCODING);
  assert.deepEqual(streamEncoding([]), JSON_ENCODING);
  assert.deepEqual(streamEncoding(['zstd-someday', 'proto-bodies']), { protoBodies: true, packed: false });
  assert.deepEqual(streamEncoding(['packed-deflate', 'proto-bodies']), { protoBodies: true, packed: true });
});

function decode(buf: Buffer): WireDeltaResponse {
  return loadXdsProto().service['DeltaAggregatedResources']!.responseDeserialize(buf) as WireDeltaResponse;
}

test('a snapshot is encoded once per (snapshot, type, encoding) and its packed form inflates to the same resources', () => {
  const snapshot = new Map<string, ResourceEntry>(Object.entries(WORKLOADS).map(([name, body]) => [name, { name, version: 'v1', body }]));
  const enc = { protoBodies: true, packed: true };
  const packed = encodedSnapshot(snapshot, TYPE_WORKLOAD, enc);
  assert.equal(encodedSnapshot(snapshot, TYPE_WORKLOAD, { ...enc }), packed, 'the same buffer for every stream');
  const plain = encodedSnapshot(snapshot, TYPE_WORKLOAD, JSON_ENCODING);
  assert.notEqual(plain, packed);
  assert.equal(encodedSnapshot(new Map(snapshot), TYPE_WORKLOAD, enc) === packed, false, 'another snapshot is encoded anew');
  // The bytes are response fields as they stand: `packed_resources` (6) and `resources` (3).
  const fromPacked = decode(packed);
  assert.deepEqual(fromPacked.resources, []);
  const inflated = decodePackedResources(fromPacked.packed_resources!, 1 << 20, 100);
  assert.equal(inflated.total, 3);
  assert.deepEqual(inflated.resources.map((r) => [r.name, r.version, decodeBody(TYPE_WORKLOAD, r.proto_body!)]), [...snapshot.values()].map((e) => [e.name, e.version, e.body]));
  assert.deepEqual(decode(plain).resources.map((r) => [r.name, JSON.parse(r.body.toString())]), [...snapshot.values()].map((e) => [e.name, e.body]));
});

test('packed resources are bounded: inflated bytes, decoded count (the total still counted), and malformed data refused', () => {
  const snapshot = new Map<string, ResourceEntry>();
  for (let i = 0; i < 50; i++) snapshot.set(`n/${i}`, { name: `n/${i}`, version: 'v', body: WORKLOADS['default/full'] });
  const field = decode(encodedSnapshot(snapshot, TYPE_WORKLOAD, { protoBodies: true, packed: true })).packed_resources!;
  assert.throws(() => decodePackedResources(field, 1000, 100), { code: 'STRAIT_ERR_XDS_LIMIT', message: /inflate to more than 1000 bytes/ });
  const capped = decodePackedResources(field, 1 << 20, 10);
  assert.deepEqual([capped.resources.length, capped.total], [10, 50]);
  assert.throws(() => decodePackedResources(Buffer.from('not deflate at all'), 1 << 20, 10), { code: 'STRAIT_ERR_XDS_PROTOCOL' });
  assert.throws(() => decodePackedResources(deflateRawSync(Buffer.from([0x1a, 0x50, 0x0a])), 1 << 20, 10), { code: 'STRAIT_ERR_XDS_PROTOCOL', message: /malformed/ });
});

test('truncated or corrupted protobuf bodies fail with BodyCodecError, never another error or a read past the buffer', () => {
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (const [type, bodies] of Object.entries(BODIES)) {
    for (const body of Object.values(bodies)) {
      const bytes = encodeBody(type, body);
      for (let cut = 0; cut < bytes.length; cut += Math.max(1, Math.floor(bytes.length / 40))) {
        const variants = [bytes.subarray(0, cut), Buffer.from(bytes)];
        variants[1]![cut] = Math.floor(rand() * 256);
        for (const v of variants) {
          try {
            decodeBody(type, v);
          } catch (err) {
            assert.ok(err instanceof BodyCodecError, `${type} cut ${cut}: ${(err as Error).stack}`);
          }
        }
      }
    }
  }
});
