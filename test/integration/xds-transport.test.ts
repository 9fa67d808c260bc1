// The delta-xDS transport end to end: a real grpc server on 127.0.0.1:0 serving an in-memory ViewSource,
// talked to by raw ADS streams (for exact protocol assertions) and by the XdsClient proxies use.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { StraitError, isStraitError } from '../../src/common/errors.js';
import {
  TYPE_URL_PREFIX,
  XdsClient,
  type WireDeltaResponse,
  type XdsClientOptions,
  type XdsUpdate,
} from '../../src/common/xds/index.js';
import { XdsServer } from '../../src/controller/xds/xds-server.js';
import {
  MemoryViewSource,
  RawAdsStream,
  RecordingMetrics,
  bodyOf,
  startXds,
  wireNode,
  type RunningXds,
} from '../helpers/xds.js';
import { eventually } from '../helpers/eventually.js';
import { ADS_PATH, RawGrpcCall } from '../helpers/raw-grpc.js';

const T = `${TYPE_URL_PREFIX}Workload`;
const T2 = `${TYPE_URL_PREFIX}Service`;
const VIEW = 'debug'; // MemoryViewSource's default view key is the proxy kind

const names = (r: WireDeltaResponse) => r.resources.map((x) => x.name).sort();
const sorted = (xs: Iterable<string>) => [...xs].sort();

function seed(source: MemoryViewSource, ...ns: string[]): void {
  source.setMany(VIEW, T, ns.map((n) => [n, { name: n }]), false);
}

async function setup(
  t: { after: (fn: () => unknown) => void },
  opts: {
    debounceMs?: number; authenticate?: Parameters<typeof startXds>[0]['authenticate']; authorize?: Parameters<typeof startXds>[0]['authorize'];
    maxConcurrentInitialSyncs?: number; largeSyncResources?: number; limits?: Parameters<typeof startXds>[0]['limits'];
  } = {},
): Promise<{ source: MemoryViewSource; server: RunningXds; metrics: RecordingMetrics }> {
  const source = new MemoryViewSource([T, T2]);
  const metrics = new RecordingMetrics();
  const server = await startXds({
    source, metrics, debounceMs: opts.debounceMs ?? 20, authenticate: opts.authenticate, authorize: opts.authorize,
    ...(opts.maxConcurrentInitialSyncs !== undefined ? { maxConcurrentInitialSyncs: opts.maxConcurrentInitialSyncs } : {}),
    ...(opts.largeSyncResources !== undefined ? { largeSyncResources: opts.largeSyncResources } : {}),
    ...(opts.limits ? { limits: opts.limits } : {}),
  });
  t.after(() => server.close());
  return { source, server, metrics };
}

function rawStream(t: { after: (fn: () => unknown) => void }, server: RunningXds, md?: grpc.Metadata): RawAdsStream {
  const s = new RawAdsStream(server.address, md);
  t.after(() => s.close());
  return s;
}

interface RecordingClient {
  client: XdsClient;
  updates: XdsUpdate[];
  nextUpdate(timeoutMs?: number): Promise<XdsUpdate>;
}

function startClient(
  t: { after: (fn: () => unknown) => void },
  address: string,
  overrides: Partial<XdsClientOptions> & { names?: string[]; reject?: (u: XdsUpdate) => string | undefined } = {},
): RecordingClient {
  const updates: XdsUpdate[] = [];
  const waiters: ((u: XdsUpdate) => void)[] = [];
  let consumed = 0;
  const client = new XdsClient({
    address,
    credentials: grpc.credentials.createInsecure(),
    node: { id: 'debug~node-a~1', kind: 'debug', nodeName: 'node-a' },
    initialBackoffMs: 20,
    maxBackoffMs: 100,
    subscriptions: [
      {
        typeUrl: T,
        ...(overrides.names ? { names: overrides.names } : {}),
        apply: (u) => {
          const why = overrides.reject?.(u);
          if (why) throw new StraitError('STRAIT_ERR_XDS_PROTOCOL', why);
          updates.push(u);
          waiters.shift()?.(u);
        },
      },
    ],
    ...overrides,
  });
  client.start();
  t.after(() => client.close());
  return {
    client,
    updates,
    nextUpdate: (timeoutMs = 2000) => {
      if (consumed < updates.length) return Promise.resolve(updates[consumed++]!);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no update within ${timeoutMs} ms`)), timeoutMs);
        waiters.push((u) => {
          clearTimeout(timer);
          consumed++;
          resolve(u);
        });
      });
    },
  };
}

test('delivers the initial snapshot, then a change as a delta of only the changed and removed resources', async (t) => {
  const { source, server, metrics } = await setup(t);
  seed(source, 'a', 'b', 'c');
  const c = startClient(t, server.address);

  const first = await c.nextUpdate();
  assert.deepEqual(sorted(first.added.map((e) => e.name)), ['a', 'b', 'c']);
  assert.deepEqual(first.removed, []);
  assert.deepEqual(first.added.find((e) => e.name === 'a')!.body, { name: 'a' });
  assert.equal(first.systemVersion, String(source.generation()));
  await eventually(() => server.xds.status()[0]?.types[T]?.versionAcked === String(source.generation()), 2000, 'ACK');

  source.set(VIEW, T, 'b', { name: 'b', changed: true });
  source.delete(VIEW, T, 'c');
  const delta = await c.nextUpdate();
  assert.deepEqual(delta.added.map((e) => [e.name, e.body]), [['b', { name: 'b', changed: true }]]);
  assert.deepEqual(delta.removed, ['c']);
  assert.deepEqual(
    [...c.client.held(T)].sort(),
    [['a', source.version(VIEW, T, 'a')], ['b', source.version(VIEW, T, 'b')]],
  );

  await eventually(() => metrics.acks.length === 1, 2000, 'ACK of the push');
  const [st] = server.xds.status();
  assert.ok(st);
  assert.equal(st.proxy.id, 'debug~node-a~1');
  assert.equal(st.viewKey, VIEW);
  assert.match(st.peer, /127\.0\.0\.1/);
  assert.deepEqual(st.types[T], {
    subscribed: '*',
    versionSent: String(source.generation()),
    versionAcked: String(source.generation()),
    lastAckedNonce: st.types[T]!.lastAckedNonce,
    lastAckedAt: st.types[T]!.lastAckedAt,
    lastAnswer: 'ACK',
    resourcesHeld: 2,
    unanswered: 0,
    coalesced: false,
  });
  assert.equal(st.queuedBytes, 0);
  assert.equal(st.stalledSince, null, 'a proxy that read and answered everything is not behind');
  assert.equal(st.lastAckAt, st.types[T]!.lastAckedAt);
  assert.equal(metrics.connected, 1);
  assert.equal(metrics.pushes, 2);
  assert.equal(metrics.pushedResources, 3 + 2);
  assert.ok(metrics.acks[0]! >= 0 && metrics.acks[0]! < 2000, `push latency ${metrics.acks[0]} ms`);
});

test('a proxy that already holds resources receives only those it lacks or holds at another version, and removals', async (t) => {
  const { source, server } = await setup(t);
  seed(source, 'a', 'b', 'c');
  const s = rawStream(t, server);
  s.write({
    node: wireNode(),
    type_url: T,
    initial_resource_versions: { a: source.version(VIEW, T, 'a')!, b: 'stale', z: 'v0' },
  });
  const r = await s.next();
  assert.deepEqual(names(r), ['b', 'c']);
  assert.deepEqual(r.removed_resources, ['z']);
  assert.equal(r.system_version_info, String(source.generation()));
  s.ack(r);
  await eventually(() => server.xds.status()[0]?.types[T]?.versionAcked === r.system_version_info);
  assert.equal(server.xds.status()[0]!.types[T]!.resourcesHeld, 3);
});

test('a proxy in sync still gets an (empty) first response, then nothing until something changes', async (t) => {
  const { source, server } = await setup(t);
  seed(source, 'a');
  const s = rawStream(t, server);
  s.write({ node: wireNode(), type_url: T, initial_resource_versions: { a: source.version(VIEW, T, 'a')! } });
  const r = await s.next();
  assert.deepEqual(r.resources, []);
  assert.deepEqual(r.removed_resources, []);
  s.ack(r);
  source.set(VIEW, T2, 'unrelated-type', {});
  assert.ok(await s.quietFor(150), 'no push for a type the stream does not subscribe to');
});

test('a NACK is recorded in status() and the rejected resource is not resent until it changes again', async (t) => {
  const { source, server, metrics } = await setup(t);
  seed(source, 'a');
  const s = rawStream(t, server);
  s.write({ node: wireNode(), type_url: T });
  const r1 = await s.next();
  s.ack(r1);

  const xV1 = source.set(VIEW, T, 'x', { bad: true });
  const r2 = await s.next();
  assert.deepEqual(names(r2), ['x']);
  s.nack(r2, 'x: port must be a number');
  await eventually(() => server.xds.status()[0]?.types[T]?.lastNack !== undefined, 2000, 'NACK recorded');
  const st = server.xds.status()[0]!.types[T]!;
  assert.equal(st.lastNack!.nonce, r2.nonce);
  assert.equal(st.lastNack!.message, 'x: port must be a number');
  assert.ok(!Number.isNaN(Date.parse(st.lastNack!.at)));
  assert.equal(st.versionAcked, r1.system_version_info);
  assert.equal(st.resourcesHeld, 1, 'the proxy still holds only a');
  assert.equal(st.pendingNonce, undefined);
  assert.equal(metrics.nacks, 1);

  // Another change: only that one goes out; x is not retried in a loop.
  source.set(VIEW, T, 'y', { ok: true });
  const r3 = await s.next();
  assert.deepEqual(names(r3), ['y']);
  s.ack(r3);
  assert.ok(await s.quietFor(100));

  // x changes again: now it is sent.
  const xV2 = source.set(VIEW, T, 'x', { bad: false });
  assert.notEqual(xV1, xV2);
  const r4 = await s.next();
  assert.deepEqual(names(r4), ['x']);
  assert.deepEqual(bodyOf(r4.resources[0]!), { bad: false });
  s.ack(r4);
  await eventually(() => server.xds.status()[0]?.types[T]?.versionAcked === r4.system_version_info);
  assert.equal(server.xds.status()[0]!.types[T]!.resourcesHeld, 3);
  assert.equal(server.xds.status()[0]!.types[T]!.lastNack!.nonce, r2.nonce, 'the last NACK stays visible');
});

test('a NACK of a changed resource rolls the server back to the version the proxy kept', async (t) => {
  const { source, server } = await setup(t);
  seed(source, 'a');
  const aV1 = source.version(VIEW, T, 'a')!;
  const s = rawStream(t, server);
  s.write({ node: wireNode(), type_url: T });
  s.ack(await s.next());
  source.set(VIEW, T, 'a', { v: 2 });
  const r2 = await s.next();
  s.nack(r2, 'rejected');
  await eventually(() => server.xds.status()[0]?.types[T]?.lastNack !== undefined);
  s.close();

  // The same proxy reconnects holding a@v1: it must receive a@v2 again (the server did not count it as held).
  const s2 = rawStream(t, server);
  s2.write({ node: wireNode(), type_url: T, initial_resource_versions: { a: aV1 } });
  const r = await s2.next();
  assert.deepEqual(names(r), ['a']);
});

test('XdsClient NACKs a response its apply rejects and keeps holding its previous resources', async (t) => {
  const { source, server } = await setup(t);
  seed(source, 'a');
  const aV1 = source.version(VIEW, T, 'a');
  const c = startClient(t, server.address, {
    reject: (u) => (u.added.some((e) => (e.body as { bad?: boolean }).bad) ? 'bad resource' : undefined),
  });
  await c.nextUpdate();
  const nacked = new Promise<[string, Error, string]>((resolve) => c.client.once('nack', (...a) => resolve(a)));
  source.set(VIEW, T, 'a', { bad: true });
  const [typeUrl, err] = await nacked;
  assert.equal(typeUrl, T);
  assert.equal(err.message, 'bad resource');
  await eventually(() => server.xds.status()[0]?.types[T]?.lastNack?.message === 'bad resource');
  assert.equal(c.client.held(T).get('a'), aV1);
});

test('a reconnecting XdsClient sends what it holds and its first response carries exactly the difference', async (t) => {
  const source = new MemoryViewSource([T]);
  seed(source, 'a', 'b', 'c');
  let server = await startXds({ source, debounceMs: 20 });
  const port = server.port;
  t.after(() => server.close());
  const c = startClient(t, server.address);
  const first = await c.nextUpdate();
  assert.equal(first.added.length, 3);
  await eventually(() => server.xds.status()[0]?.types[T]?.versionAcked !== '');

  const disconnected = new Promise<StraitError>((resolve) => c.client.once('disconnected', resolve));
  await server.close();
  const err = await disconnected;
  assert.ok(isStraitError(err, 'STRAIT_ERR_XDS_CONNECT'), err.message);
  assert.equal(c.client.connected, false);
  assert.equal(c.client.held(T).size, 3, 'held state survives the disconnect');

  // While the controller is away: b changes, c goes, d appears, a stays.
  source.set(VIEW, T, 'b', { name: 'b', v: 2 });
  source.delete(VIEW, T, 'c');
  source.set(VIEW, T, 'd', { name: 'd' });

  const connected = new Promise<void>((resolve) => c.client.once('connected', resolve));
  server = await startXds({ source, debounceMs: 20 }, port);
  await connected;
  const after = await c.nextUpdate(5000);
  assert.deepEqual(sorted(after.added.map((e) => e.name)), ['b', 'd']);
  assert.deepEqual(after.removed, ['c']);
  assert.deepEqual(sorted(c.client.held(T).keys()), ['a', 'b', 'd']);
});

test('an explicit subscription gets only its names; subscribe and unsubscribe change that', async (t) => {
  const { source, server } = await setup(t);
  seed(source, 'a', 'b', 'c');
  const c = startClient(t, server.address, { names: ['a', 'missing'] });
  const first = await c.nextUpdate();
  assert.deepEqual(first.added.map((e) => e.name), ['a']);

  source.set(VIEW, T, 'b', { v: 2 });
  // A change to a subscribed name after it: once that arrives, a push of b would have arrived too (same or earlier).
  source.set(VIEW, T, 'missing', { sentinel: 1 });
  const sentinel = await c.nextUpdate();
  assert.deepEqual(sentinel.added.map((e) => e.name), ['missing']);
  assert.equal(c.updates.length, 2, 'b is not subscribed');

  c.client.subscribe(T, ['b']);
  const sub = await c.nextUpdate();
  assert.deepEqual(sub.added.map((e) => [e.name, e.body]), [['b', { v: 2 }]]);

  source.set(VIEW, T, 'a', { v: 3 });
  assert.deepEqual((await c.nextUpdate()).added.map((e) => e.name), ['a']);
  source.set(VIEW, T, 'missing', { now: 'here' });
  assert.deepEqual((await c.nextUpdate()).added.map((e) => e.name), ['missing']);

  c.client.unsubscribe(T, ['a']);
  const dropped = await c.nextUpdate();
  assert.deepEqual(dropped.removed, ['a'], 'apply learns that a is dropped');
  await eventually(() => {
    const s = server.xds.status()[0]?.types[T]?.subscribed;
    return Array.isArray(s) && s.join() === 'b,missing';
  });
  source.set(VIEW, T, 'a', { v: 4 });
  source.set(VIEW, T, 'missing', { sentinel: 2 });
  assert.deepEqual((await c.nextUpdate()).added.map((e) => e.name), ['missing'], 'a is no longer pushed');
  assert.equal(c.updates.length, 7, 'a is no longer pushed');
  assert.equal(server.xds.status()[0]!.types[T]!.resourcesHeld, 2);
});

test('a wildcard subscription can be narrowed by unsubscribing "*"', async (t) => {
  const { source, server } = await setup(t);
  seed(source, 'a', 'b');
  const s = rawStream(t, server);
  s.write({ node: wireNode(), type_url: T, resource_names_subscribe: ['*'] });
  s.ack(await s.next());
  s.write({ type_url: T, resource_names_unsubscribe: ['*'], resource_names_subscribe: ['b'] });
  await eventually(() => Array.isArray(server.xds.status()[0]?.types[T]?.subscribed));
  source.set(VIEW, T, 'a', { v: 2 });
  source.set(VIEW, T, 'b', { v: 2 });
  const r = await s.next();
  assert.deepEqual(names(r), ['b']);
});

test('a burst of 50 changes is coalesced into few pushes that end in the final state', async (t) => {
  const { source, server, metrics } = await setup(t, { debounceMs: 50 });
  seed(source, 'seed');
  const c = startClient(t, server.address);
  await c.nextUpdate();
  for (let i = 0; i < 50; i++) {
    source.set(VIEW, T, `r${i % 10}`, { i });
    await new Promise((r) => setTimeout(r, 2));
  }
  await eventually(() => [...Array(10).keys()].every((i) => c.client.held(T).get(`r${i}`) === source.version(VIEW, T, `r${i}`)));
  // A last change after the burst: once it arrives alone, nothing of the burst is still on its way.
  source.set(VIEW, T, 'sentinel', { after: 'burst' });
  await eventually(() => c.updates.at(-1)?.added.some((e) => e.name === 'sentinel'));
  assert.deepEqual(c.updates.at(-1)!.added.map((e) => e.name), ['sentinel']);
  const pushes = c.updates.length - 2;
  assert.ok(pushes >= 1 && pushes <= 3, `${pushes} pushes for 50 changes`);
  assert.equal(metrics.pushes, 1 + pushes + 1);
  const last = c.updates.at(-2)!;
  assert.ok(last.added.every((e) => e.version === source.version(VIEW, T, e.name)));
});

test('a steady stream of changes still pushes within 10× the debounce', async (t) => {
  const { source, server } = await setup(t, { debounceMs: 30 }); // max wait 300 ms
  const c = startClient(t, server.address);
  await c.nextUpdate();
  const started = Date.now();
  let pushesDuringStream = 0;
  c.client.on('update', () => pushesDuringStream++);
  while (Date.now() - started < 800) {
    source.set(VIEW, T, 'hot', { at: Date.now() });
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.ok(pushesDuringStream >= 2, `${pushesDuringStream} pushes during 800 ms of changes every 10 ms`);
});

test('changes to one view are not pushed to streams of another view', async (t) => {
  const { source, server } = await setup(t);
  source.viewKeyForFn = (p) => (p.kind === 'waypoint' ? `waypoint/${p.namespace}/${p.name}` : p.kind);
  source.setMany('ztunnel', T, [['z', {}]], false);
  source.setMany('waypoint/ns/wp', T, [['w', {}]], false);
  const zt = rawStream(t, server);
  zt.write({ node: wireNode({ id: 'zt', kind: 'ztunnel' }), type_url: T });
  const wp = rawStream(t, server);
  wp.write({ node: wireNode({ id: 'wp', kind: 'waypoint', namespace: 'ns', name: 'wp' }), type_url: T });
  assert.deepEqual(names(await zt.next()), ['z']);
  assert.deepEqual(names(await wp.next()), ['w']);
  source.set('waypoint/ns/wp', T, 'w2', {});
  assert.deepEqual(names(await wp.next()), ['w2']);
  assert.ok(await zt.quietFor(100));
  const byId = Object.fromEntries(server.xds.status().map((s) => [s.proxy.id, s]));
  assert.equal(byId['wp']!.viewKey, 'waypoint/ns/wp');
  assert.deepEqual(byId['wp']!.proxy, { id: 'wp', kind: 'waypoint', nodeName: 'node-a', namespace: 'ns', name: 'wp' });
  assert.equal(byId['zt']!.viewKey, 'ztunnel');
});

test('authentication refusals end the stream with UNAUTHENTICATED or PERMISSION_DENIED and the message', async (t) => {
  const { server, metrics } = await setup(t, {
    authenticate: (md) => {
      const token = md.get('authorization')[0];
      if (token !== 'Bearer good') throw new StraitError('STRAIT_ERR_AUTH_TOKEN', 'missing or wrong bootstrap token');
      return { subject: 'node/node-a' };
    },
    authorize: (_principal, proxy) => {
      if (proxy.nodeName !== 'node-a') {
        throw new StraitError('STRAIT_ERR_IDENTITY_DENIED', `token of node-a may not subscribe as ${proxy.nodeName}`);
      }
    },
  });
  // Refused when the stream opens, before it sends anything.
  const noToken = rawStream(t, server);
  assert.deepEqual(await noToken.ended, { code: grpc.status.UNAUTHENTICATED, details: 'missing or wrong bootstrap token' });

  const md = new grpc.Metadata();
  md.set('authorization', 'Bearer good');
  const otherNode = rawStream(t, server, md);
  otherNode.write({ node: wireNode({ nodeName: 'node-b' }), type_url: T });
  const end = await otherNode.ended;
  assert.equal(end.code, grpc.status.PERMISSION_DENIED);
  assert.match(end.details, /may not subscribe as node-b/);

  const ok = rawStream(t, server, md);
  ok.write({ node: wireNode(), type_url: T });
  await ok.next();
  assert.equal(metrics.connected, 1, 'refused streams are not counted as connected proxies');

  // XdsClient surfaces the refusal as STRAIT_ERR_AUTH_TOKEN and keeps retrying.
  const c = startClient(t, server.address, { metadata: () => ({ authorization: 'Bearer bad' }) });
  const errors: StraitError[] = [];
  c.client.on('disconnected', (e) => errors.push(e));
  await eventually(() => errors.length >= 2, 3000, 'two refused attempts');
  assert.ok(isStraitError(errors[0], 'STRAIT_ERR_AUTH_TOKEN'), errors[0]!.message);
  assert.equal((errors[0]!.cause as grpc.ServiceError).code, grpc.status.UNAUTHENTICATED);
});

test('a view source that refuses the proxy ends the stream with PERMISSION_DENIED', async (t) => {
  const { source, server } = await setup(t);
  source.viewKeyForFn = (p) => {
    throw new StraitError('STRAIT_ERR_IDENTITY_DENIED', `no view for ${p.id}`);
  };
  const s = rawStream(t, server);
  s.write({ node: wireNode({ id: 'nobody' }), type_url: T });
  assert.deepEqual(await s.ended, { code: grpc.status.PERMISSION_DENIED, details: 'no view for nobody' });
});

test('a stream whose first request has no node ends with INVALID_ARGUMENT', async (t) => {
  const { server } = await setup(t);
  const s = rawStream(t, server);
  s.write({ type_url: T });
  const end = await s.ended;
  assert.equal(end.code, grpc.status.INVALID_ARGUMENT);
  assert.match(end.details, /must carry node/);
  assert.equal(server.xds.status().length, 0);
});

test('subscribing to a type the proxy may not read ends the stream with INVALID_ARGUMENT naming the allowed types', async (t) => {
  const { server } = await setup(t);
  const s = rawStream(t, server);
  s.write({ node: wireNode(), type_url: `${TYPE_URL_PREFIX}Secret` });
  const end = await s.ended;
  assert.equal(end.code, grpc.status.INVALID_ARGUMENT);
  assert.match(end.details, /type\.strait\.dev\/Secret is not served to debug proxies; allowed: type\.strait\.dev\/Workload, type\.strait\.dev\/Service/);
});

test('close() ends every stream with UNAVAILABLE and stops listening to the source', async (t) => {
  const { source, server, metrics } = await setup(t);
  const s = rawStream(t, server);
  s.write({ node: wireNode(), type_url: T });
  await s.next();
  assert.equal(source.listenerCount(), 1);
  server.xds.close();
  const end = await s.ended;
  assert.equal(end.code, grpc.status.UNAVAILABLE);
  assert.equal(source.listenerCount(), 0);
  assert.equal(server.xds.status().length, 0);
  assert.equal(metrics.disconnected, 1);
});

test('two types on one stream are tracked and pushed independently', async (t) => {
  const { source, server } = await setup(t);
  seed(source, 'w');
  source.setMany(VIEW, T2, [['s', {}]], false);
  const s = rawStream(t, server);
  s.write({ node: wireNode(), type_url: T });
  s.write({ type_url: T2 });
  const got = [await s.next(), await s.next()].sort((a, b) => a.type_url.localeCompare(b.type_url));
  assert.deepEqual(got.map((r) => [r.type_url, names(r)]), [[T2, ['s']], [T, ['w']]]);
  for (const r of got) s.ack(r);
  source.set(VIEW, T2, 's', { v: 2 });
  const r = await s.next();
  assert.equal(r.type_url, T2);
  assert.deepEqual(names(r), ['s']);
  assert.ok(await s.quietFor(100));
});

/** Resources large enough that a response carrying them cannot pass a 64 KiB flow-control window unread. */
function seedLarge(source: MemoryViewSource, type: string, ...ns: string[]): void {
  source.setMany(VIEW, type, ns.map((n) => [n, { name: n, pad: 'x'.repeat(100_000) }]), false);
}

/** A proxy on its own HTTP/2 connection that reads nothing until told to (its window stays shut). */
function stuckProxy(t: { after: (fn: () => unknown) => void }, server: RunningXds, id: string, metadata: Record<string, string> = {}): RawGrpcCall {
  const call = new RawGrpcCall(server.address, null, ADS_PATH, metadata, { read: false });
  t.after(() => call.close());
  call.writeAds({ node: wireNode({ id }), type_url: T });
  return call;
}

/** The nonce of the response the server sent `id` for `type` (undefined: its first request still waits for a slot). */
function sentNonce(server: RunningXds, id: string, type = T): string | undefined {
  const s = server.xds.status().find((x) => x.proxy.id === id);
  const ts = s?.types[type];
  return ts ? ts.pendingNonce ?? ts.lastAckedNonce : undefined;
}

test('a large initial sync holds its slot until the transport has taken it: the next proxy is answered once the one before it read; small ones pass', async (t) => {
  const { source, server } = await setup(t, { maxConcurrentInitialSyncs: 1, largeSyncResources: 3 });
  seedLarge(source, T, 'a', 'b', 'c');
  source.setMany(VIEW, T2, [['only', { name: 'only' }]], false);
  const first = stuckProxy(t, server, 'debug~zt-1~1');
  await eventually(() => sentNonce(server, 'debug~zt-1~1') !== undefined, 3000, 'the first proxy is served');
  const second = rawStream(t, server);
  second.write({ node: wireNode({ id: 'debug~zt-2~1' }), type_url: T });
  assert.equal(await second.quietFor(300), true, 'the second large sync waits while the first response sits unread');
  // A subscription below the threshold is not held back.
  second.write({ type_url: T2 });
  const small = await second.next();
  assert.equal(small.type_url, T2);
  assert.deepEqual(names(small), ['only']);
  first.startReading(); // no ACK: taking the response off the transport frees the slot
  const r2 = await second.next();
  assert.equal(r2.type_url, T);
  assert.deepEqual(names(r2), ['a', 'b', 'c']);
  await first.waitForMessages(1);
  assert.deepEqual(first.messages[0]!.resources.map((x) => x.name).sort(), ['a', 'b', 'c']);
});

test('a proxy that reads its initial response but never answers it does not hold a slot', async (t) => {
  const { source, server } = await setup(t, { maxConcurrentInitialSyncs: 1, largeSyncResources: 2 });
  seedLarge(source, T, 'a', 'b');
  const silent = rawStream(t, server);
  silent.write({ node: wireNode({ id: 'debug~silent~1' }), type_url: T });
  assert.deepEqual(names(await silent.next()), ['a', 'b']); // read, never ACKed
  const next = rawStream(t, server);
  next.write({ node: wireNode({ id: 'debug~next~1' }), type_url: T });
  assert.deepEqual(names(await next.next(1000)), ['a', 'b']);
});

test('several proxies queued for initial-sync slots are each served in turn, in arrival order (none is re-queued forever)', async (t) => {
  const { source, server } = await setup(t, { maxConcurrentInitialSyncs: 1, largeSyncResources: 2 });
  seedLarge(source, T, 'a', 'b');
  const ids = [1, 2, 3, 4].map((i) => `debug~zt-${i}~1`);
  const calls: RawGrpcCall[] = [];
  for (const id of ids) {
    calls.push(stuckProxy(t, server, id));
    await eventually(() => server.xds.status().some((s) => s.proxy.id === id), 3000, `${id} connected`);
  }
  await eventually(() => sentNonce(server, ids[0]!) !== undefined, 3000, 'the first proxy is served');
  for (let i = 1; i < ids.length; i++) {
    await new Promise((r) => setTimeout(r, 100));
    for (const id of ids.slice(i)) assert.equal(sentNonce(server, id), undefined, `${id} waits while ${ids[i - 1]} has not read`);
    calls[i - 1]!.startReading();
    await eventually(() => sentNonce(server, ids[i]!) !== undefined, 3000, `${ids[i]} served after ${ids[i - 1]} read`);
  }
  calls[ids.length - 1]!.startReading();
  for (const c of calls) {
    await c.waitForMessages(1);
    assert.deepEqual(c.messages[0]!.resources.map((x) => x.name).sort(), ['a', 'b']);
  }
});

test('a proxy that had its initial-sync turn for one type gets its next large type before proxies still waiting', async (t) => {
  const { source, server } = await setup(t, { maxConcurrentInitialSyncs: 1, largeSyncResources: 2 });
  seedLarge(source, T, 'a', 'b');
  seedLarge(source, T2, 's1', 's2');
  const first = stuckProxy(t, server, 'debug~zt-1~1');
  await eventually(() => sentNonce(server, 'debug~zt-1~1') !== undefined, 3000, 'the first proxy is served');
  const second = stuckProxy(t, server, 'debug~zt-2~1');
  await eventually(() => server.xds.status().some((s) => s.proxy.id === 'debug~zt-2~1'), 3000, 'the second proxy connected');
  first.writeAds({ type_url: T2 }); // queued after the second proxy's T by arrival, but the first proxy had its turn
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(sentNonce(server, 'debug~zt-1~1', T2), undefined, 'the slot is still held by the unread Workload sync');
  first.startReading();
  second.startReading();
  await eventually(() => sentNonce(server, 'debug~zt-2~1') !== undefined, 3000, 'the second proxy is served');
  const firstT2 = parseInt(sentNonce(server, 'debug~zt-1~1', T2)!, 36);
  const secondT = parseInt(sentNonce(server, 'debug~zt-2~1')!, 36);
  assert.ok(firstT2 < secondT, `the first proxy's second type (nonce ${firstT2}) went out before the second proxy's first (nonce ${secondT})`);
});

test('one credential holds at most --xds-max-initial-syncs-per-credential slots; another credential passes its waiting streams', async (t) => {
  const { source, server } = await setup(t, {
    maxConcurrentInitialSyncs: 4, largeSyncResources: 2, limits: { maxInitialSyncsPerCredential: 2 },
    authenticate: (md) => ({ subject: String(md.get('x-cred')[0] ?? 'none') }),
  });
  seedLarge(source, T, 'a', 'b');
  const hog = [1, 2, 3].map((i) => `debug~hog-${i}~1`);
  const hogCalls: RawGrpcCall[] = [];
  for (const id of hog) {
    hogCalls.push(stuckProxy(t, server, id, { 'x-cred': 'node/hog' }));
    await eventually(() => server.xds.status().some((s) => s.proxy.id === id), 3000, `${id} connected`);
  }
  await eventually(() => sentNonce(server, hog[0]!) !== undefined && sentNonce(server, hog[1]!) !== undefined, 3000, 'two hog streams served');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(sentNonce(server, hog[2]!), undefined, 'the third stream of the same credential waits although slots are free');
  const md = new grpc.Metadata();
  md.set('x-cred', 'node/other');
  const other = rawStream(t, server, md);
  other.write({ node: wireNode({ id: 'debug~other~1' }), type_url: T });
  assert.deepEqual(names(await other.next(1000)), ['a', 'b'], 'another credential is served at once');
  hogCalls[0]!.startReading();
  await eventually(() => sentNonce(server, hog[2]!) !== undefined, 3000, 'the third hog stream is served once the first read');
});

test('a proxy that disconnects while holding an initial-sync slot frees it', async (t) => {
  const { source, server } = await setup(t, { maxConcurrentInitialSyncs: 1, largeSyncResources: 1 });
  seedLarge(source, T, 'a', 'b');
  const first = stuckProxy(t, server, 'debug~zt-1~1');
  await eventually(() => sentNonce(server, 'debug~zt-1~1') !== undefined, 3000, 'the first proxy is served');
  const second = rawStream(t, server);
  second.write({ node: wireNode({ id: 'debug~zt-2~1' }), type_url: T });
  assert.equal(await second.quietFor(200), true);
  first.close();
  const r = await second.next();
  assert.deepEqual(names(r), ['a', 'b']);
});

test('refuses a zero initial-sync limit with a clear error', () => {
  assert.throws(() => new XdsServer({ source: new MemoryViewSource([T]), maxConcurrentInitialSyncs: 0 }), /maxConcurrentInitialSyncs must be an integer >= 1/);
});

test('re-sending names a stream already subscribes to (or repeating one in a request) does not count against --xds-max-names-per-stream', async (t) => {
  const { source, server } = await setup(t, { limits: { maxNamesPerStream: 3 } });
  seed(source, 'a', 'b', 'c', 'd');
  const s = rawStream(t, server);
  s.write({ node: wireNode(), type_url: T, resource_names_subscribe: ['a', 'a', 'b', 'c', 'c'] });
  assert.deepEqual(names(await s.next()), ['a', 'b', 'c']);
  // A proxy re-sends its whole subscription (as after a resubscribe): nothing new, so nothing over the limit.
  for (let i = 0; i < 3; i++) s.write({ type_url: T, resource_names_subscribe: ['a', 'b', 'c'] });
  // Swapping one name for another in one request keeps the count at 3.
  s.write({ type_url: T, resource_names_subscribe: ['d'], resource_names_unsubscribe: ['a'] });
  const swapped = await s.next();
  assert.deepEqual(names(swapped), ['d']);
  assert.deepEqual(swapped.removed_resources ?? [], []);
  const status = server.xds.status().find((x) => x.proxy.id === 'debug~test~1');
  assert.deepEqual(status?.types[T]?.subscribed, ['b', 'c', 'd']);
  // A fourth distinct name is over the limit.
  s.write({ type_url: T, resource_names_subscribe: ['a', 'b'] });
  const end = await s.ended;
  assert.equal(end.code, grpc.status.RESOURCE_EXHAUSTED);
  assert.match(end.details, /would subscribe to 4 resource names; the limit is 3 per stream \(raise it with --xds-max-names-per-stream/);
});
