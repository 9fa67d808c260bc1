import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TokenReviewer, jwtExpiry, type TokenReviewStatus } from '../../src/controller/kube/token-reviewer.js';
import { tokenSource } from '../../src/dataplane/token-source.js';
import { isStraitError } from '../../src/common/errors.js';
import { CredentialError } from '../../src/controller/tokens.js';
import { tempDir } from '../helpers/temp-dir.js';

/** A JWT-shaped token (unsigned: the review, not us, verifies it) expiring at `exp` seconds. */
const jwt = (sub: string, exp?: number) => ['e30', Buffer.from(JSON.stringify({ sub, ...(exp !== undefined ? { exp } : {}) })).toString('base64url'), 'c2ln'].join('.');
const ok = (audiences = ['strait-controller']): TokenReviewStatus => ({
  authenticated: true, audiences,
  user: { username: 'system:serviceaccount:strait-system:strait-ztunnel', groups: ['system:serviceaccounts'], extra: { 'authentication.kubernetes.io/pod-name': ['zt-1'] } },
});

/** A review function answering from `answer`, counting calls (the TokenReview the reviewer would POST). */
function reviews(answer: (token: string, audiences: string[]) => TokenReviewStatus | Promise<TokenReviewStatus>) {
  const calls: { token: string; audiences: string[] }[] = [];
  return { calls, review: async (token: string, audiences: string[]) => { calls.push({ token, audiences }); return answer(token, audiences); } };
}

describe('token review', () => {
  it('asks for the controller\'s audience and accepts a token reviewed for it', async () => {
    const r = reviews(() => ok());
    const reviewer = new TokenReviewer({ review: r.review, audience: 'strait-controller' });
    const user = await reviewer.review(jwt('a'));
    assert.equal(user.username, 'system:serviceaccount:strait-system:strait-ztunnel');
    assert.deepEqual(user.extra['authentication.kubernetes.io/pod-name'], ['zt-1']);
    assert.deepEqual(r.calls.map((c) => c.audiences), [['strait-controller']]);
  });

  it('refuses a token whose review names no audience (valid only for the API server) or another one', async () => {
    for (const audiences of [[], ['https://kubernetes.default.svc']]) {
      const reviewer = new TokenReviewer({ review: reviews(() => ok(audiences)).review, audience: 'strait-controller' });
      await assert.rejects(reviewer.review(jwt('a')), (err: unknown) => err instanceof CredentialError && err.reason === 'wrong_audience' && /not for audience "strait-controller"/.test(err.message));
    }
  });

  it('refuses an unauthenticated token with the API server\'s reason', async () => {
    const reviewer = new TokenReviewer({ review: reviews(() => ({ authenticated: false, error: 'token has been invalidated' })).review, audience: 'strait-controller' });
    await assert.rejects(reviewer.review(jwt('a')), /did not authenticate the token: token has been invalidated/);
  });

  it('reviews a token once for a storm of calls, and again once the cache time has passed', async () => {
    let now = 1_000_000;
    const r = reviews(() => ok());
    const reviewer = new TokenReviewer({ review: r.review, audience: 'strait-controller', cacheTtlMs: 60_000, now: () => now });
    const token = jwt('a');
    await Promise.all(Array.from({ length: 50 }, () => reviewer.review(token)));
    for (let i = 0; i < 50; i++) await reviewer.review(token);
    assert.equal(r.calls.length, 1);
    now += 60_001;
    await reviewer.review(token);
    assert.equal(r.calls.length, 2);
  });

  it('never trusts a cached answer past the token\'s own expiry', async () => {
    let now = 1_000_000_000;
    const r = reviews(() => ok());
    const reviewer = new TokenReviewer({ review: r.review, audience: 'strait-controller', cacheTtlMs: 3_600_000, now: () => now });
    const token = jwt('a', now / 1000 + 10);
    await reviewer.review(token);
    now += 9_000;
    await reviewer.review(token);
    assert.equal(r.calls.length, 1);
    now += 2_000;
    await assert.rejects(reviewer.review(token), (err: unknown) => err instanceof CredentialError && err.reason === 'expired_token');
    assert.equal(r.calls.length, 1, 'an expired token is refused without asking the API server');
  });

  it('remembers a refusal briefly, so a bad token in a loop is not a review per call', async () => {
    let now = 5_000_000;
    const r = reviews(() => ({ authenticated: false }));
    const reviewer = new TokenReviewer({ review: r.review, audience: 'aud', negativeTtlMs: 5000, now: () => now });
    for (let i = 0; i < 20; i++) await assert.rejects(reviewer.review(jwt('bad')));
    assert.equal(r.calls.length, 1);
    now += 5001;
    await assert.rejects(reviewer.review(jwt('bad')));
    assert.equal(r.calls.length, 2);
  });

  it('holds at most maxEntries answers', async () => {
    const reviewer = new TokenReviewer({ review: reviews(() => ok()).review, audience: 'strait-controller', maxEntries: 100 });
    for (let i = 0; i < 250; i++) await reviewer.review(jwt(`t${i}`));
    assert.equal(reviewer.size, 100);
  });

  it('tells the proxy to retry (STRAIT_ERR_TOKEN_REVIEW) when too many reviews are in flight or the burst is spent, and does not cache that', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const r = reviews(async () => { await gate; return ok(); });
    const reviewer = new TokenReviewer({ review: r.review, audience: 'strait-controller', maxInFlight: 2, reviewBurst: 3, reviewsPerMinute: 1 });
    const a = reviewer.review(jwt('a'));
    const b = reviewer.review(jwt('b'));
    await assert.rejects(reviewer.review(jwt('c')), (err: unknown) => isStraitError(err, 'STRAIT_ERR_TOKEN_REVIEW') && /too many tokens at once/.test((err as Error).message));
    release();
    await Promise.all([a, b]);
    await reviewer.review(jwt('c'));
    await assert.rejects(reviewer.review(jwt('d')), (err: unknown) => isStraitError(err, 'STRAIT_ERR_TOKEN_REVIEW'));
    assert.equal(r.calls.length, 3);
  });

  it('tells the proxy to retry when the API server fails, and asks again next time', async () => {
    let fail = true;
    const r = reviews(() => { if (fail) throw new Error('connect ECONNREFUSED'); return ok(); });
    const reviewer = new TokenReviewer({ review: r.review, audience: 'strait-controller' });
    await assert.rejects(reviewer.review(jwt('a')), (err: unknown) => isStraitError(err, 'STRAIT_ERR_TOKEN_REVIEW') && /ECONNREFUSED/.test((err as Error).message));
    fail = false;
    await reviewer.review(jwt('a'));
    assert.equal(r.calls.length, 2);
  });

  it('reads a JWT\'s exp claim without trusting anything else', () => {
    assert.equal(jwtExpiry(jwt('a', 1234)), 1234);
    assert.equal(jwtExpiry(jwt('a')), undefined);
    assert.equal(jwtExpiry('not-a-jwt'), undefined);
    assert.equal(jwtExpiry('a.%%%.c'), undefined);
  });
});

describe('a proxy\'s token file', () => {
  it('is read again at every use, so a rotated projected token is the one presented', () => {
    const dir = tempDir('token-source');
    try {
      const file = join(dir.path, 'token');
      writeFileSync(file, 'first\n');
      const token = tokenSource({ token: 'first', file });
      assert.equal(token(), 'first');
      writeFileSync(file, 'second\n');
      assert.equal(token(), 'second');
    } finally {
      dir.remove();
    }
  });

  it('keeps presenting the last token read while the file is missing or empty (mid-rotation)', () => {
    const dir = tempDir('token-source');
    try {
      const file = join(dir.path, 'token');
      writeFileSync(file, 'good');
      const token = tokenSource({ token: 'good', file });
      writeFileSync(file, '');
      assert.equal(token(), 'good');
      dir.remove();
      assert.equal(token(), 'good');
    } finally {
      dir.remove();
    }
  });

  it('is fixed when given directly', () => {
    assert.equal(tokenSource({ token: 'fixed' })(), 'fixed');
  });
});
