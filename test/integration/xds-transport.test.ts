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
  opts: { debounceMs?: number; authenticate?: Parameters<typeof startXds>[0]['authenticate']; authorize?: Parameters<typeof startXds>[0]['authorize']; maxConcurrentInitialSyncs?: number; largeSyncResources?: number } = {},
): Promise<{ source: MemoryViewSource; server: RunningXds; metrics: RecordingMetrics }> {
  const source = new MemoryViewSource([T, T2]);
  const metrics = new RecordingMetrics();
  const server = await startXds({
    source, metrics, debounceMs: opts.debounceMs ?? 20, authenticate: opts.authenticate, authorize: opts.authorize,
    ...(opts.maxConcurrentInitialSyncs !== undefined ? { maxConcurrentInitialSyncs: opts.maxConcurrentInitialSyncs } : {}),
    ...(opts.largeSyncResources !== undefined ? { largeSyncResources: opts.largeSyncResources } : {}),
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

test('large initial syncs take turns: the next proxy is answered once the one before it ACKed; small ones pass', async (t) => {
  const { source, server } = await setup(t, { maxConcurrentInitialSyncs: 1, largeSyncResources: 3 });
  seed(source, 'a', 'b', 'c');
  source.setMany(VIEW, T2, [['only', { name: 'only' }]], false);
  const first = rawStream(t, server);
  first.write({ node: wireNode({ id: 'debug~zt-1~1' }), type_url: T });
  const r1 = await first.next();
  assert.deepEqual(names(r1), ['a', 'b', 'c']);
  const second = rawStream(t, server);
  second.write({ node: wireNode({ id: 'debug~zt-2~1' }), type_url: T });
  assert.equal(await second.quietFor(300), true, 'the second large sync waits while the first is unanswered');
  // A subscription below the threshold is not held back.
  second.write({ type_url: T2 });
  const small = await second.next();
  assert.equal(small.type_url, T2);
  assert.deepEqual(names(small), ['only']);
  first.ack(r1);
  const r2 = await second.next();
  assert.equal(r2.type_url, T);
  assert.deepEqual(names(r2), ['a', 'b', 'c']);
});

test('several proxies queued for initial-sync slots are each answered in turn (none is re-queued forever)', async (t) => {
  const { source, server } = await setup(t, { maxConcurrentInitialSyncs: 1, largeSyncResources: 2 });
  seed(source, 'a', 'b');
  const streams = [1, 2, 3, 4].map((i) => {
    const s = rawStream(t, server);
    s.write({ node: wireNode({ id: `debug~zt-${i}~1` }), type_url: T });
    return s;
  });
  const first = await streams[0]!.next();
  assert.deepEqual(names(first), ['a', 'b']);
  for (const s of streams.slice(1)) assert.equal(await s.quietFor(100), true, 'the others wait while the first is unanswered');
  // Each ACK lets exactly the next one in; the controller stays responsive throughout.
  let last = first;
  for (let i = 1; i < streams.length; i++) {
    streams[i - 1]!.ack(last);
    last = await streams[i]!.next();
    assert.equal(last.type_url, T);
    assert.deepEqual(names(last), ['a', 'b']);
    for (const s of streams.slice(i + 1)) assert.equal(await s.quietFor(50), true);
  }
});

test('a proxy that had its initial-sync turn for one type gets its next large type before proxies still waiting', async (t) => {
  const { source, server } = await setup(t, { maxConcurrentInitialSyncs: 1, largeSyncResources: 2 });
  seed(source, 'a', 'b');
  source.setMany(VIEW, T2, [['s1', { name: 's1' }], ['s2', { name: 's2' }]], false);
  const first = rawStream(t, server);
  first.write({ node: wireNode({ id: 'debug~zt-1~1' }), type_url: T });
  const w1 = await first.next();
  assert.equal(w1.type_url, T);
  const second = rawStream(t, server);
  second.write({ node: wireNode({ id: 'debug~zt-2~1' }), type_url: T });
  assert.equal(await second.quietFor(100), true);
  first.write({ type_url: T2 }); // queued behind the second proxy's T by arrival, but the first proxy had its turn
  assert.equal(await first.quietFor(100), true, 'the slot is still held by the unanswered Workload sync');
  first.ack(w1);
  const s1 = await first.next();
  assert.equal(s1.type_url, T2);
  assert.deepEqual(names(s1), ['s1', 's2']);
  assert.equal(await second.quietFor(100), true, 'the second proxy waits until the first is fully in sync');
  first.ack(s1);
  const w2 = await second.next();
  assert.equal(w2.type_url, T);
  assert.deepEqual(names(w2), ['a', 'b']);
});

test('a proxy that disconnects while holding an initial-sync slot frees it', async (t) => {
  const { source, server } = await setup(t, { maxConcurrentInitialSyncs: 1, largeSyncResources: 1 });
  seed(source, 'a', 'b');
  const first = rawStream(t, server);
  first.write({ node: wireNode({ id: 'debug~zt-1~1' }), type_url: T });
  await first.next();
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
