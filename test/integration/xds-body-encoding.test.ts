// Protobuf bodies and packed snapshots (issue 14): through the real XdsServer and XdsClient over real gRPC
// connections, every resource kind arrives as exactly the object the controller holds, with every optional field set
// and unset, and proxies that do not ask for the new encodings (Node.accept) keep getting JSON from the same server.
import { after, before, describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import {
  ACCEPT_PACKED_DEFLATE,
  ACCEPT_PROTO_BODIES,
  XdsClient,
  decodeBody,
  decodePackedResources,
  type WireDeltaResponse,
  type WireResource,
} from '../../src/common/xds/index.js';
import { TYPE_AUTHORIZATION, TYPE_POLICY, TYPE_ROUTE, TYPE_SERVICE, TYPE_WORKLOAD } from '../../src/common/xds/resources.js';
import { MemoryViewSource, RawAdsStream, bodyOf, startXds, wireNode, type RunningXds } from '../helpers/xds.js';
import { BODIES, WORKLOADS, SERVICES, AUTHORIZATIONS, ROUTES, POLICIES } from '../helpers/xds-body-fixtures.js';
import { eventually } from '../helpers/eventually.js';
import { startController, type ControllerHandle } from '../helpers/controller.js';
import { ADS_PATH, RawGrpcCall } from '../helpers/raw-grpc.js';
import { tempDir } from '../helpers/temp-dir.js';

const TYPES = [TYPE_WORKLOAD, TYPE_SERVICE, TYPE_AUTHORIZATION, TYPE_ROUTE, TYPE_POLICY];
const VIEW = 'debug';
const BOTH = [ACCEPT_PROTO_BODIES, ACCEPT_PACKED_DEFLATE];
const clone = <T>(v: T): T => structuredClone(v);

/** What a proxy holds, per type: name -> body, as its subscriptions applied it. */
type Held = Map<string, Map<string, unknown>>;

function heldToObject(h: Held): Record<string, Record<string, unknown>> {
  return Object.fromEntries([...h].map(([t, m]) => [t, Object.fromEntries(m)]));
}

function startClient(t: { after: (fn: () => unknown) => void }, address: string, id: string, accept?: string[]): { client: XdsClient; held: Held } {
  const held: Held = new Map(TYPES.map((ty) => [ty, new Map()]));
  const client = new XdsClient({
    address, credentials: grpc.credentials.createInsecure(), accept, initialBackoffMs: 50, maxBackoffMs: 200,
    node: { id, kind: 'debug', nodeName: 'node-a' },
    subscriptions: TYPES.map((typeUrl) => ({
      typeUrl,
      apply: (u) => {
        const m = held.get(typeUrl)!;
        for (const e of u.added) m.set(e.name, e.body);
        for (const n of u.removed) m.delete(n);
      },
    })),
  });
  t.after(() => client.close());
  client.start();
  return { client, held };
}

async function server(t: { after: (fn: () => unknown) => void }, bodies = BODIES): Promise<{ source: MemoryViewSource; x: RunningXds }> {
  const source = new MemoryViewSource(TYPES);
  for (const ty of TYPES) source.setMany(VIEW, ty, Object.entries(clone(bodies[ty]!)), false);
  const x = await startXds({ source, debounceMs: 5 });
  t.after(() => x.close());
  return { source, x };
}

/** The resources of a response as the wire carries them: `resources` and the inflated `packed_resources`. */
function wireResources(r: WireDeltaResponse): { plain: WireResource[]; packed: WireResource[] } {
  const packed = r.packed_resources?.length ? decodePackedResources(r.packed_resources, 64 << 20, 1e6).resources : [];
  return { plain: r.resources, packed };
}

/** One raw stream subscribing to every type; returns the first response of each, ACKed. */
async function rawFirstResponses(t: { after: (fn: () => unknown) => void }, address: string, accept: string[] | undefined): Promise<Map<string, WireDeltaResponse>> {
  const raw = new RawAdsStream(address, undefined, undefined, true);
  t.after(() => raw.close());
  const node = accept ? { ...wireNode({ id: `debug~raw~${accept.join('+')}` })!, accept } : wireNode({ id: 'debug~raw~old' });
  TYPES.forEach((type_url, i) => raw.write(i === 0 ? { node, type_url } : { type_url }));
  const out = new Map<string, WireDeltaResponse>();
  while (out.size < TYPES.length) {
    const r = await raw.next(5000);
    raw.ack(r);
    out.set(r.type_url, r);
  }
  return out;
}

test('a proxy that asks for protobuf bodies and packed snapshots holds every resource kind exactly as the controller built it, optional fields set and unset, before and after a push', async (t) => {
  const { source, x } = await server(t);
  const { held } = startClient(t, x.address, 'debug~new~1');
  await eventually(() => TYPES.every((ty) => held.get(ty)!.size === Object.keys(BODIES[ty]!).length), 5000, 'initial sync');
  assert.deepEqual(heldToObject(held), BODIES);

  // A push (unpacked, one resource per type): each "full" resource becomes its "minimal" sibling's body and back.
  const next = clone(BODIES);
  next[TYPE_WORKLOAD]!['default/full'] = WORKLOADS['default/minimal'];
  next[TYPE_SERVICE]!['default/minimal'] = SERVICES['default/full'];
  next[TYPE_AUTHORIZATION]!['authz/default/full'] = AUTHORIZATIONS['peerauthn/default/full'];
  next[TYPE_ROUTE]!['default/minimal'] = ROUTES['default/full'];
  next[TYPE_POLICY]!['tracing/istio-system/minimal'] = POLICIES['authz/default/waypoint-scope'];
  for (const ty of TYPES) {
    for (const [name, body] of Object.entries(next[ty]!)) if (body !== BODIES[ty]![name]) source.set(VIEW, ty, name, clone(body));
  }
  await eventually(() => isDeepStrictEqual(heldToObject(held), next), 5000, 'the push applied');
  assert.deepEqual(heldToObject(held), next);
});

test('on the wire: the first response is one packed snapshot of protobuf bodies (no JSON), a delta is unpacked protobuf, and "proto-bodies" alone is never packed', async (t) => {
  const { source, x } = await server(t);
  const both = await rawFirstResponses(t, x.address, BOTH);
  for (const ty of TYPES) {
    const r = both.get(ty)!;
    const { plain, packed } = wireResources(r);
    assert.equal(plain.length, 0, `${ty}: nothing outside the packed snapshot`);
    assert.equal(packed.length, Object.keys(BODIES[ty]!).length);
    for (const res of packed) {
      assert.equal(res.body.length, 0, `${ty} ${res.name}: no JSON body`);
      assert.ok(res.proto_body && res.proto_body.length > 0);
      assert.deepEqual(decodeBody(ty, res.proto_body), BODIES[ty]![res.name]);
    }
  }
  const protoOnly = await rawFirstResponses(t, x.address, [ACCEPT_PROTO_BODIES]);
  for (const ty of TYPES) {
    const r = protoOnly.get(ty)!;
    assert.equal(r.packed_resources?.length ?? 0, 0, `${ty}: not packed`);
    assert.equal(r.resources.length, Object.keys(BODIES[ty]!).length);
    for (const res of r.resources) assert.deepEqual([res.body.length, decodeBody(ty, res.proto_body!)], [0, BODIES[ty]![res.name]]);
  }
  // A delta to a packed-and-proto stream: one resource, in `resources`, protobuf.
  const raw = new RawAdsStream(x.address, undefined, undefined, true);
  t.after(() => raw.close());
  raw.write({ node: { ...wireNode({ id: 'debug~raw~delta' })!, accept: BOTH }, type_url: TYPE_WORKLOAD });
  raw.ack(await raw.next(5000));
  source.set(VIEW, TYPE_WORKLOAD, 'default/full', clone(WORKLOADS['default/waypoint-no-address']));
  const delta = await raw.next(5000);
  assert.equal(delta.packed_resources?.length ?? 0, 0);
  assert.deepEqual(delta.resources.map((r) => [r.name, r.body.length, decodeBody(TYPE_WORKLOAD, r.proto_body!)]), [['default/full', 0, WORKLOADS['default/waypoint-no-address']]]);
});

test('mixed versions on one server: a proxy that does not send Node.accept keeps getting JSON bodies unpacked, and old, JSON-asking and new proxies hold the same objects after a push', async (t) => {
  const { source, x } = await server(t);
  const old = await rawFirstResponses(t, x.address, undefined);
  for (const ty of TYPES) {
    const r = old.get(ty)!;
    assert.equal(r.packed_resources?.length ?? 0, 0, `${ty}: an old proxy gets nothing packed`);
    assert.equal(r.resources.length, Object.keys(BODIES[ty]!).length);
    for (const res of r.resources) {
      assert.equal(res.proto_body?.length ?? 0, 0, `${ty} ${res.name}: no protobuf body`);
      assert.deepEqual(bodyOf(res), BODIES[ty]![res.name]);
    }
  }
  const jsonClient = startClient(t, x.address, 'debug~json~1', []);
  const newClient = startClient(t, x.address, 'debug~new~2');
  const synced = (h: Held) => TYPES.every((ty) => h.get(ty)!.size === Object.keys(BODIES[ty]!).length);
  await eventually(() => synced(jsonClient.held) && synced(newClient.held), 5000, 'both in sync');
  assert.deepEqual(heldToObject(jsonClient.held), BODIES);
  assert.deepEqual(heldToObject(newClient.held), BODIES);

  const oldStream = new RawAdsStream(x.address, undefined, undefined, true);
  t.after(() => oldStream.close());
  oldStream.write({ node: wireNode({ id: 'debug~raw~old2' }), type_url: TYPE_POLICY });
  oldStream.ack(await oldStream.next(5000));
  source.set(VIEW, TYPE_POLICY, 'backend/default/minimal', clone(POLICIES['backend/default/full']));
  const push = await oldStream.next(5000);
  assert.deepEqual(push.resources.map((r) => [r.name, r.proto_body?.length ?? 0, bodyOf(r)]), [['backend/default/minimal', 0, POLICIES['backend/default/full']]]);
  for (const c of [jsonClient, newClient]) {
    await eventually(() => isDeepStrictEqual(c.held.get(TYPE_POLICY)!.get('backend/default/minimal'), POLICIES['backend/default/full']), 5000, 'push');
    assert.deepEqual(c.held.get(TYPE_POLICY)!.get('backend/default/minimal'), POLICIES['backend/default/full']);
  }
});

test('a body the schema cannot carry exactly goes as JSON for that resource only, and still arrives exactly', async (t) => {
  const odd = {
    ...WORKLOADS,
    'default/future-field': { ...WORKLOADS['default/full'], addedByANewerController: { x: 1 } },
    'default/null-field': { ...WORKLOADS['default/minimal'], workloadName: null },
    'default/fraction-port': { ...WORKLOADS['default/minimal'], namedPorts: { http: 80.5 } },
  };
  const { x } = await server(t, { ...BODIES, [TYPE_WORKLOAD]: odd });
  const first = await rawFirstResponses(t, x.address, [ACCEPT_PROTO_BODIES]);
  const json = first.get(TYPE_WORKLOAD)!.resources.filter((r) => r.body.length > 0).map((r) => r.name).sort();
  assert.deepEqual(json, ['default/fraction-port', 'default/future-field', 'default/null-field']);
  const { held } = startClient(t, x.address, 'debug~new~3');
  await eventually(() => held.get(TYPE_WORKLOAD)!.size === Object.keys(odd).length, 5000, 'sync');
  assert.deepEqual(Object.fromEntries(held.get(TYPE_WORKLOAD)!), odd);
});

// The schema against what the real controller computes: the L7 examples (waypoint routes, policies, tracing, the
// ztunnels' authorizations), each type read by a JSON stream and a protobuf+packed stream of the same proxy.
describe('the real controller: protobuf bodies equal the JSON ones for everything it computes', () => {
  const EXAMPLES = fileURLToPath(new URL('../../../examples/l7/', import.meta.url));
  const cfg = tempDir('xbe-cfg');
  const data = tempDir('xbe-data');
  let c: ControllerHandle;
  const calls: RawGrpcCall[] = [];
  before(async () => {
    for (const f of readdirSync(EXAMPLES)) copyFileSync(join(EXAMPLES, f), join(cfg.path, f));
    c = await startController(cfg.path, data.path, ['--push-debounce', '50ms']);
    await eventually(() => { try { return c.token('waypoint-default-waypoint.token'); } catch { return false; } }, 5000, 'waypoint token');
  });
  after(async () => {
    for (const x of calls) x.close();
    await c?.stop();
    cfg.remove();
    data.remove();
  });

  async function firstResponse(md: Record<string, string>, node: ReturnType<typeof wireNode>, type: string, accept?: string[]): Promise<WireDeltaResponse> {
    const call = new RawGrpcCall(c.xds, c.rootPem, ADS_PATH, md);
    calls.push(call);
    call.writeAds({ node: accept ? { ...node!, accept } : node, type_url: type, resource_names_subscribe: [] });
    await call.waitForMessages(1, 5000);
    return call.messages[0]!;
  }

  async function compare(md: Record<string, string>, node: ReturnType<typeof wireNode>, types: string[]): Promise<void> {
    for (const type of types) {
      const json = await firstResponse(md, node!, type);
      const proto = await firstResponse(md, node!, type, BOTH);
      const { plain, packed } = wireResources(proto);
      const all = [...plain, ...packed];
      assert.ok(json.resources.length > 0, `${type}: the example config yields some`);
      assert.deepEqual(all.filter((r) => r.body.length > 0).map((r) => r.name), [], `${type}: no JSON fallback`);
      assert.deepEqual(
        new Map(all.map((r) => [r.name, decodeBody(type, r.proto_body!)])),
        new Map(json.resources.map((r) => [r.name, bodyOf(r)])),
        type,
      );
    }
  }

  it('for a waypoint: Workload, Service, Route and Policy', async () => {
    await compare({ authorization: `Bearer ${c.token('waypoint-default-waypoint.token')}`, 'x-strait-waypoint': 'default/waypoint' },
      wireNode({ id: 'waypoint~default~waypoint', kind: 'waypoint', nodeName: 'node-a', namespace: 'default', name: 'waypoint' }),
      [TYPE_WORKLOAD, TYPE_SERVICE, TYPE_ROUTE, TYPE_POLICY]);
  });

  it('for a ztunnel: Workload, Service and Authorization', async () => {
    await compare({ authorization: `Bearer ${c.token('node-node-a.token')}`, 'x-strait-node': 'node-a' },
      wireNode({ id: 'ztunnel~node-a', kind: 'ztunnel', nodeName: 'node-a' }), [TYPE_WORKLOAD, TYPE_SERVICE, TYPE_AUTHORIZATION]);
  });
});

test('a reconnecting proxy that sends the versions it holds gets only the difference, unpacked, even when it accepts packed snapshots', async (t) => {
  const { source, x } = await server(t);
  const first = await rawFirstResponses(t, x.address, BOTH);
  const held = wireResources(first.get(TYPE_WORKLOAD)!).packed;
  assert.equal(held.length, Object.keys(WORKLOADS).length);
  source.set(VIEW, TYPE_WORKLOAD, 'default/minimal', clone(WORKLOADS['default/full']));
  const raw = new RawAdsStream(x.address, undefined, undefined, true);
  t.after(() => raw.close());
  raw.write({
    node: { ...wireNode({ id: 'debug~raw~reconnect' })!, accept: BOTH },
    type_url: TYPE_WORKLOAD,
    initial_resource_versions: Object.fromEntries(held.map((r) => [r.name, r.version])),
  });
  // The change may reach the view before or after this stream subscribes (the push is debounced): either way it
  // gets no packed snapshot and, all responses together, just the changed resource.
  const got: [string, unknown][] = [];
  while (got.length === 0) {
    const r = await raw.next(5000);
    raw.ack(r);
    assert.equal(r.packed_resources?.length ?? 0, 0);
    got.push(...r.resources.map((res): [string, unknown] => [res.name, decodeBody(TYPE_WORKLOAD, res.proto_body!)]));
  }
  assert.deepEqual(got, [['default/minimal', WORKLOADS['default/full']]]);
  assert.ok(await raw.quietFor(100), 'nothing else follows');
});

test('a NACKed packed snapshot leaves the proxy holding nothing of it, and the next change sends just that resource', async (t) => {
  const { source, x } = await server(t);
  const raw = new RawAdsStream(x.address, undefined, undefined, true);
  t.after(() => raw.close());
  raw.write({ node: { ...wireNode({ id: 'debug~raw~nack' })!, accept: BOTH }, type_url: TYPE_SERVICE });
  const first = await raw.next(5000);
  assert.equal(wireResources(first).packed.length, Object.keys(SERVICES).length);
  raw.nack(first, 'refusing the whole snapshot');
  await eventually(() => x.xds.status()[0]?.types[TYPE_SERVICE]?.lastAnswer === 'NACK', 5000, 'NACK seen');
  assert.equal(x.xds.status()[0]!.types[TYPE_SERVICE]!.resourcesHeld, 0);
  source.set(VIEW, TYPE_SERVICE, 'default/minimal', clone(SERVICES['default/full']));
  const push = await raw.next(5000);
  assert.deepEqual(push.resources.map((res) => [res.name, decodeBody(TYPE_SERVICE, res.proto_body!)]), [['default/minimal', SERVICES['default/full']]]);
  raw.ack(push);
  await eventually(() => x.xds.status()[0]?.types[TYPE_SERVICE]?.lastAnswer === 'ACK', 5000, 'ACK seen');
  assert.equal(x.xds.status()[0]!.types[TYPE_SERVICE]!.resourcesHeld, 1);
});
