/**
 * The xDS server with an authentication that answers later (a Kubernetes TokenReview): what the proxy sends
 * meanwhile waits unread and is served once the answer comes; a refusal arrives as the stream's status; a stream that
 * goes away meanwhile holds nothing of its credential's limits. A real grpc server on 127.0.0.1:0 and raw ADS streams.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { StraitError } from '../../src/common/errors.js';
import { TYPE_URL_PREFIX } from '../../src/common/xds/index.js';
import { MemoryViewSource, RawAdsStream, startXds, wireNode } from '../helpers/xds.js';
import type { XdsPrincipal } from '../../src/controller/xds/xds-server.js';

const T = `${TYPE_URL_PREFIX}Workload`;
const later = <V>(ms: number, v: () => V) => new Promise<V>((resolve, reject) => setTimeout(() => { try { resolve(v()); } catch (e) { reject(e); } }, ms));

async function server(t: { after: (fn: () => unknown) => void }, authenticate: (md: grpc.Metadata) => Promise<XdsPrincipal>, maxStreamsPerCredential = 64) {
  const source = new MemoryViewSource([T]);
  source.setMany('debug', T, [['a', { name: 'a' }]], false);
  const s = await startXds({ source, debounceMs: 10, authenticate, limits: { maxStreamsPerCredential } });
  t.after(() => s.close());
  return s;
}

test('a request sent before the credentials are confirmed is answered once they are', async (t) => {
  const s = await server(t, () => later(300, () => ({ subject: 'node/a' })));
  const stream = new RawAdsStream(s.address);
  t.after(() => stream.close());
  const sentAt = Date.now();
  stream.write({ node: wireNode(), type_url: T, resource_names_subscribe: ['*'] });
  const r = await stream.next(3000);
  assert.deepEqual(r.resources.map((x) => x.name), ['a']);
  assert.ok(Date.now() - sentAt >= 250, 'not before the answer');
});

test('a refusal that comes later ends the stream with the mapped status', async (t) => {
  const s = await server(t, () => later(100, () => { throw Object.assign(new StraitError('STRAIT_ERR_TOKEN_REVIEW', 'the API server did not answer'), { reason: 'review_error' }); }));
  const stream = new RawAdsStream(s.address);
  t.after(() => stream.close());
  stream.write({ node: wireNode(), type_url: T });
  const end = await stream.ended;
  assert.equal(end.code, grpc.status.UNAVAILABLE);
  assert.match(end.details, /did not answer/);
});

test('a stream cancelled while its credentials are checked holds none of its credential\'s stream slots', async (t) => {
  let calls = 0;
  const s = await server(t, () => { calls++; return later(calls === 1 ? 400 : 0, () => ({ subject: 'node/a' })); }, 1);
  const first = new RawAdsStream(s.address, undefined, undefined, true);
  first.write({ node: wireNode(), type_url: T });
  await later(50, () => undefined);
  first.close();
  await later(500, () => undefined); // the first answer has come, for a stream that is gone
  const second = new RawAdsStream(s.address, undefined, undefined, true);
  t.after(() => second.close());
  second.write({ node: wireNode(), type_url: T, resource_names_subscribe: ['*'] });
  const r = await second.next(3000);
  assert.deepEqual(r.resources.map((x) => x.name), ['a'], 'the one slot of node/a is free');
  assert.equal(s.xds.status().length, 1);
});
