import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  CertStore,
  CertificateAuthority,
  SpiffeId,
  createKeyAndCsr,
  type CertMaterial,
  type CertStoreOptions,
  type RotatedEvent,
  type RotationFailedEvent,
} from '../../src/identity/index.js';
import { isStraitError } from '../../src/common/errors.js';
import { FakeClock } from '../helpers/identity-fixtures.js';
import { tempDir } from '../helpers/temp-dir.js';

const T0 = Date.UTC(2033, 0, 1, 0, 0, 0);
const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const WEB = SpiffeId.parse('spiffe://cluster.local/ns/default/sa/web');
const API = SpiffeId.parse('spiffe://cluster.local/ns/default/sa/api');

describe('CertStore', () => {
  let dir: { path: string; remove: () => void };
  let ca: CertificateAuthority;
  let material: { keyPem: string; csrPem: string };
  /** The clock of the test running now; the CA reads it too, so issued certificates live in fake time. */
  let clock = new FakeClock(T0);

  before(async () => {
    dir = tempDir('certstore');
    ca = await CertificateAuthority.loadOrCreate({ dataDir: dir.path, now: () => clock.now(), backdateMs: 0, workloadTtlMs: HOUR });
    material = await createKeyAndCsr();
  });
  after(() => dir.remove());

  interface Harness {
    store: CertStore;
    clock: FakeClock;
    /** Fake time of every fetch. */
    calls: number[];
    setFailing(failing: boolean): void;
    rotated: RotatedEvent[];
    failed: RotationFailedEvent[];
  }

  function harness(opts: Partial<CertStoreOptions> & { ttlMs?: number; issueAs?: SpiffeId } = {}): Harness {
    clock = new FakeClock(T0);
    const calls: number[] = [];
    let failing = false;
    const fetch = async (id: SpiffeId): Promise<CertMaterial> => {
      calls.push(clock.now());
      await Promise.resolve();
      if (failing) throw new Error('CA unreachable');
      const { certChainPem } = ca.signWorkload(material.csrPem, opts.issueAs ?? id, opts.ttlMs);
      return { keyPem: material.keyPem, certChainPem };
    };
    const store = new CertStore({
      fetch,
      now: clock.now,
      setTimer: clock.setTimer,
      clearTimer: clock.clearTimer,
      minBackoffMs: SECOND,
      maxBackoffMs: 8 * SECOND,
      random: () => 0,
      ...opts,
    });
    const rotated: RotatedEvent[] = [];
    const failed: RotationFailedEvent[] = [];
    store.on('rotated', (e) => rotated.push(e));
    store.on('rotation-failed', (e) => failed.push(e));
    return { store, clock, calls, setFailing: (f) => (failing = f), rotated, failed };
  }

  it('fetches on the first get, shares that fetch between concurrent gets, then serves from memory', async () => {
    const h = harness();
    assert.equal(h.store.peek(WEB), undefined);
    const [a, b] = await Promise.all([h.store.get(WEB), h.store.get(WEB)]);
    assert.equal(a, b);
    assert.equal(h.calls.length, 1);
    assert.ok(a.identity.equals(WEB));
    assert.equal(a.notBefore.getTime(), T0);
    assert.equal(a.notAfter.getTime(), T0 + HOUR);
    assert.equal(h.store.peek(WEB), a);
    assert.equal(await h.store.get(WEB), a);
    assert.equal(h.calls.length, 1);
    assert.equal(h.rotated.length, 1);
    assert.equal(h.rotated[0]!.previous, undefined);
    // Identities are independent.
    await h.store.prefetch(API);
    assert.equal(h.calls.length, 2);
    assert.ok(h.store.peek(API)?.identity.equals(API));
    h.store.close();
  });

  it('rotates each certificate at half of its lifetime', async () => {
    const h = harness();
    const first = await h.store.get(WEB);
    assert.equal(h.clock.nextDue(), T0 + 30 * MINUTE);
    await h.clock.advanceTo(T0 + 30 * MINUTE - 1);
    assert.equal(h.calls.length, 1);
    await h.clock.advance(1);
    assert.deepEqual(h.calls, [T0, T0 + 30 * MINUTE]);
    const second = h.store.peek(WEB)!;
    assert.notEqual(second, first);
    assert.equal(second.notAfter.getTime(), T0 + 30 * MINUTE + HOUR);
    assert.equal(h.rotated.length, 2);
    assert.equal(h.rotated[1]!.previous, first);
    assert.equal(h.rotated[1]!.cert, second);
    // The next rotation is at half of the new certificate's life.
    assert.equal(h.clock.nextDue(), T0 + 60 * MINUTE);
    h.store.close();
  });

  it('retries with doubling, capped backoff, keeps the old cert until it expires and never serves an expired one', async () => {
    const h = harness();
    const original = await h.store.get(WEB);
    h.setFailing(true);
    await h.clock.advanceTo(T0 + 30 * MINUTE + 31 * SECOND);
    // Rotation at 30 min, then retries after 1, 2, 4, 8, 8, 8 s (capped at maxBackoffMs).
    const gaps = h.calls.slice(1).map((t, i) => t - (i === 0 ? T0 + 30 * MINUTE : h.calls[i]!));
    assert.equal(h.calls[1], T0 + 30 * MINUTE);
    assert.deepEqual(gaps, [0, 1, 2, 4, 8, 8, 8].map((s) => s * SECOND));
    assert.deepEqual(
      h.failed.map((e) => e.retryInMs),
      [1, 2, 4, 8, 8, 8, 8].map((s) => s * SECOND),
    );
    assert.deepEqual(h.failed.map((e) => e.attempt), [1, 2, 3, 4, 5, 6, 7]);
    assert.ok(h.failed.every((e) => e.currentNotAfter?.getTime() === T0 + HOUR && e.identity.equals(WEB)));
    assert.match(String(h.failed[0]!.error), /CA unreachable/);

    // Still within its lifetime: the old certificate is served, and get() does not add a fetch.
    const callsBefore = h.calls.length;
    assert.equal(h.store.peek(WEB), original);
    assert.equal(await h.store.get(WEB), original);
    assert.equal(h.calls.length, callsBefore);

    // Up to and including notAfter it is valid; one millisecond later it is never served.
    h.clock.jump(T0 + HOUR - h.clock.now());
    assert.equal(h.store.peek(WEB), original);
    h.clock.jump(1);
    assert.equal(h.store.peek(WEB), undefined);
    await assert.rejects(h.store.get(WEB), (err: unknown) => {
      assert.ok(isStraitError(err, 'STRAIT_ERR_CERT_EXPIRED'));
      assert.match(err.message, new RegExp(`^the certificate for ${WEB} expired at 2033-01-01T01:00:00.000Z and renewing it failed: CA unreachable; next attempt at .*; check that the controller's CA is reachable$`));
      return true;
    });

    // The CA comes back: the next retry installs a new certificate and the backoff starts over.
    h.setFailing(false);
    await h.clock.advance(8 * SECOND);
    const renewed = h.store.peek(WEB);
    assert.ok(renewed !== undefined && renewed !== original);
    assert.equal(await h.store.get(WEB), renewed);
    h.setFailing(true);
    const failuresBefore = h.failed.length;
    await h.clock.advanceTo(renewed.notBefore.getTime() + 30 * MINUTE);
    assert.equal(h.failed[failuresBefore]!.retryInMs, SECOND);
    assert.equal(h.failed[failuresBefore]!.attempt, 1);
    h.store.close();
  });

  it('fails get() with STRAIT_ERR_CERT_EXPIRED when the cert expired and the fetch fails, failing fast during backoff', async () => {
    const h = harness();
    await h.store.get(WEB);
    h.setFailing(true);
    h.clock.jump(2 * HOUR); // suspended past expiry: the rotation timer never ran
    await assert.rejects(h.store.get(WEB), { code: 'STRAIT_ERR_CERT_EXPIRED', message: /expired at 2033-01-01T01:00:00\.000Z and renewing it failed: CA unreachable/ });
    assert.equal(h.calls.length, 2);
    // During the backoff, get() fails at once without asking the CA again.
    await assert.rejects(h.store.get(WEB), { code: 'STRAIT_ERR_CERT_EXPIRED' });
    assert.equal(h.calls.length, 2);
    await h.clock.advance(SECOND);
    assert.equal(h.calls.length, 3);
    h.store.close();
  });

  it('reports a first fetch that fails and keeps retrying in the background', async () => {
    const h = harness();
    h.setFailing(true);
    await assert.rejects(h.store.get(WEB), {
      code: 'STRAIT_ERR_CERT_EXPIRED',
      message: new RegExp(`^no certificate for ${WEB} yet: fetching one failed: CA unreachable`),
    });
    h.setFailing(false);
    await h.clock.advance(SECOND);
    assert.ok(h.store.peek(WEB));
    h.store.close();
  });

  it('adds jitter that only ever shortens the backoff, by at most 20%', async () => {
    const h = harness({ random: () => 0.5 });
    h.setFailing(true);
    await h.store.prefetch(WEB);
    await h.clock.advance(20 * SECOND);
    assert.deepEqual(
      h.failed.slice(0, 5).map((e) => e.retryInMs),
      [900, 1800, 3600, 7200, 7200],
    );
    h.store.close();
  });

  it('rejects a fetched certificate for another identity', async () => {
    const h = harness({ issueAs: API });
    await assert.rejects(h.store.get(WEB), { code: 'STRAIT_ERR_CERT_EXPIRED' });
    assert.ok(isStraitError(h.failed[0]!.error, 'STRAIT_ERR_CERT_INVALID'));
    assert.match((h.failed[0]!.error as Error).message, new RegExp(`the certificate fetched for ${WEB} is for ${API}`));
    h.store.close();
  });

  it('waits in steps for rotations further away than setTimeout can wait', async () => {
    const h = harness({ ttlMs: 60 * DAY });
    await h.store.get(WEB);
    assert.equal(h.clock.nextDue(), T0 + 2 ** 31 - 1);
    await h.clock.advanceTo(T0 + 30 * DAY - 1);
    assert.equal(h.calls.length, 1);
    await h.clock.advance(1);
    assert.equal(h.calls.length, 2);
    h.store.close();
  });

  it('forget() drops an identity and its timer; close() stops everything', async () => {
    const h = harness();
    await h.store.get(WEB);
    await h.store.get(API);
    assert.equal(h.clock.timers.length, 2);
    h.store.forget(WEB);
    assert.equal(h.store.peek(WEB), undefined);
    assert.equal(h.clock.timers.length, 1);
    assert.deepEqual(h.store.identities().map(String), [API.toString()]);
    h.store.close();
    assert.equal(h.clock.timers.length, 0);
    await assert.rejects(h.store.get(WEB), { code: 'STRAIT_ERR_BUG' });
  });

  it('rejects backoff options that make no sense', () => {
    assert.throws(() => new CertStore({ fetch: async () => ({ keyPem: '', certChainPem: [] }), minBackoffMs: 10, maxBackoffMs: 5 }), {
      code: 'STRAIT_ERR_CONFIG',
    });
  });
});
