// Issue 13, the proxies' side: a controller that floods or stalls must not grow a proxy's memory without bound.
// The proxy is the real XdsClient; the controller is a real grpc server (the XdsServer serving oversized views,
// or a hand-written AggregatedDiscoveryService that floods responses and never reads the ACKs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { StraitError, isStraitError } from '../../src/common/errors.js';
import { TYPE_URL_PREFIX, XdsClient, encodeDeltaResponse, encodedResourceField, loadXdsProto, type XdsClientLimits } from '../../src/common/xds/index.js';
import { MemoryViewSource, startXds } from '../helpers/xds.js';
import { eventually } from '../helpers/eventually.js';

const T = `${TYPE_URL_PREFIX}Workload`;
const VIEW = 'debug';

async function setup(t: { after: (fn: () => unknown) => void }, limits: Partial<XdsClientLimits>, accept?: string[]) {
  const source = new MemoryViewSource([T]);
  const server = await startXds({ source, debounceMs: 5 });
  t.after(() => server.close());
  const applied: number[] = [];
  const nacks: string[] = [];
  const errors: StraitError[] = [];
  const client = new XdsClient({
    address: server.address, credentials: grpc.credentials.createInsecure(),
    node: { id: 'debug~node-a~1', kind: 'debug', nodeName: 'node-a' }, initialBackoffMs: 50, maxBackoffMs: 200, limits, accept,
    subscriptions: [{ typeUrl: T, apply: (u) => void applied.push(u.added.length) }],
  });
  client.on('nack', (_t, err) => nacks.push(err.message));
  client.on('disconnected', (err) => errors.push(err));
  t.after(() => client.close());
  return { source, server, client, applied, nacks, errors };
}

const many = (n: number, prefix = 'w', body: unknown = {}) => Array.from({ length: n }, (_, i) => [`${prefix}-${i}`, body] as [string, unknown]);

test('NACKs a response with more resources than it accepts per response, naming the limit, and holds nothing of it', async (t) => {
  const { source, server, client, applied, nacks } = await setup(t, { maxResourcesPerResponse: 100 });
  source.setMany(VIEW, T, many(150), false);
  client.start();
  await eventually(() => nacks.length === 1, 3000, 'NACK');
  assert.equal(nacks[0], 'the response carries 150 resources and removals; this proxy accepts at most 100 per response');
  assert.equal(applied.length, 0);
  assert.equal(client.held(T).size, 0);
  await eventually(() => server.xds.status()[0]?.types[T]?.lastNack !== undefined, 2000, 'NACK at the server');
});

test('NACKs a resource whose name is longer than it accepts', async (t) => {
  const { source, client, nacks } = await setup(t, { maxNameBytes: 256 });
  source.setMany(VIEW, T, [['ok', {}], ['n'.repeat(2000), {}]], false);
  client.start();
  await eventually(() => nacks.length === 1, 3000, 'NACK');
  assert.match(nacks[0]!, /^resource "n{60}…" has a name or version longer than 256 bytes$/);
  assert.equal(client.held(T).size, 0);
});

test('NACKs the response that would make a type hold more than its limit, keeping what it held', async (t) => {
  const { source, client, nacks } = await setup(t, { maxResourcesHeld: 100 });
  source.setMany(VIEW, T, many(80), false);
  client.start();
  await eventually(() => client.held(T).size === 80, 3000, 'first 80');
  source.setMany(VIEW, T, many(30, 'more'));
  await eventually(() => nacks.length === 1, 3000, 'NACK');
  assert.equal(nacks[0], `applying it would hold 110 resources of ${T}; this proxy holds at most 100 per type`);
  assert.equal(client.held(T).size, 80);
});

test('a response over its receive limit ends the stream unread, with an error naming --xds-max-message-size', async (t) => {
  // JSON bodies, unpacked (a proxy that asks for nothing else): the message itself is over the limit.
  const { source, client, errors, applied } = await setup(t, { maxReceiveBytes: 64 * 1024 }, []);
  source.setMany(VIEW, T, many(400, 'big', { pad: 'x'.repeat(500) }), false);
  client.start();
  await eventually(() => errors.length >= 1, 3000, 'stream error');
  assert.ok(isStraitError(errors[0], 'STRAIT_ERR_XDS_LIMIT'), errors[0]!.message);
  assert.match(errors[0]!.message, /sent an xDS response larger than this proxy accepts \(Received message larger than max \(\d+ vs 65536\); the limit is 65536 bytes: raise it with --xds-max-message-size\)/);
  assert.equal(applied.length, 0);
});

test('packed resources that inflate past the receive limit are NACKed naming --xds-max-message-size, and nothing is applied', async (t) => {
  // The packed message is small on the wire (the padding compresses away); what it inflates to is not.
  const { source, client, nacks, applied, errors } = await setup(t, { maxReceiveBytes: 64 * 1024 });
  source.setMany(VIEW, T, many(400, 'big', { pad: 'x'.repeat(500) }), false);
  client.start();
  await eventually(() => nacks.length >= 1, 3000, 'NACK');
  assert.equal(nacks[0], 'packed resources inflate to more than 65536 bytes, the most this proxy accepts in one response (--xds-max-message-size)');
  assert.equal(applied.length, 0);
  assert.equal(client.held(T).size, 0);
  assert.equal(errors.length, 0, 'the stream stays up');
});

test('a controller that floods responses and never reads the ACKs gets its stream replaced, not an ever-growing queue', async (t) => {
  const svc = loadXdsProto().serverService;
  const server = new grpc.Server();
  let streams = 0;
  server.addService(svc, {
    DeltaAggregatedResources: (call: grpc.ServerDuplexStream<unknown, Buffer>) => {
      streams++;
      call.pause(); // never reads what the proxy sends
      const entry = encodedResourceField({ name: 'w', version: 'v', body: {} });
      let i = 0;
      const flood = () => {
        while (i < 50_000 && !call.destroyed) {
          const ok = call.write(encodeDeltaResponse({ systemVersionInfo: String(i), typeUrl: T, resources: [entry], removed: [], nonce: String(i++) }));
          if (!ok) return void call.once('drain', flood);
        }
      };
      flood();
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  t.after(() => server.forceShutdown());
  const errors: StraitError[] = [];
  const client = new XdsClient({
    address: `127.0.0.1:${port}`, credentials: grpc.credentials.createInsecure(), initialBackoffMs: 1000, maxBackoffMs: 2000,
    node: { id: 'debug~node-a~1', kind: 'debug', nodeName: 'node-a' },
    subscriptions: [{ typeUrl: T, apply: () => {} }],
  });
  client.on('disconnected', (e) => errors.push(e));
  t.after(() => client.close());
  client.start();
  await eventually(() => errors.length >= 1, 10_000, 'stream replaced');
  assert.match(errors[0]!.message, /has not read this proxy's last \d+ requests; reconnecting/);
  assert.equal(streams, 1);
});
