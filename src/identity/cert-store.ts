/**
 * Keeps a current key + certificate chain per workload identity, fetched on demand and rotated at half
 * life, with capped exponential backoff when renewal fails.
 */
import { EventEmitter } from 'node:events';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import type { Logger } from '../common/log.js';
import { StraitError, bug, errorMessage } from '../common/errors.js';
import type { SpiffeId } from './spiffe.js';
import { spiffeIdOf } from './verify.js';
import { parseCertificate } from './x509.js';

export const DEFAULT_MIN_BACKOFF_MS = 1_000;
export const DEFAULT_MAX_BACKOFF_MS = 60_000;
/** Each retry delay is reduced by up to this fraction at random, so that many nodes do not retry in step. */
const BACKOFF_JITTER = 0.2;
/** setTimeout fires at once for delays above 2^31-1 ms; longer waits are done in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface CertMaterial {
  keyPem: string;
  /** Leaf first, then intermediates, root last. */
  certChainPem: string[];
}

export interface Cert extends CertMaterial {
  identity: SpiffeId;
  notBefore: Date;
  notAfter: Date;
}

export interface RotatedEvent {
  identity: SpiffeId;
  cert: Cert;
  /** The certificate it replaces; undefined for the first one. */
  previous: Cert | undefined;
}

export interface RotationFailedEvent {
  identity: SpiffeId;
  error: unknown;
  /** Consecutive failures so far (1 for the first). */
  attempt: number;
  retryInMs: number;
  /** Expiry of the certificate still in use, if any. */
  currentNotAfter: Date | undefined;
}

export interface CertStoreEvents {
  rotated: [RotatedEvent];
  'rotation-failed': [RotationFailedEvent];
}

export type TimerHandle = unknown;

export interface CertStoreOptions {
  /** Obtains a fresh key and chain for an identity (a CSR to the CA, typically). */
  fetch: (id: SpiffeId) => Promise<CertMaterial>;
  /** ms since the epoch. */
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => TimerHandle;
  clearTimer?: (handle: TimerHandle) => void;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** In [0, 1); jitter source (tests pass () => 0). */
  random?: () => number;
  logger?: Logger;
}

interface Entry {
  readonly id: SpiffeId;
  current: Cert | undefined;
  inflight: Promise<Cert> | undefined;
  timer: TimerHandle | undefined;
  /** Consecutive failed fetches since the last success. */
  failures: number;
  lastError: unknown;
  /** While backing off after a failure: when the next attempt is due. */
  retryAt: number | undefined;
}

function defaultSetTimer(fn: () => void, ms: number): TimerHandle {
  const t = setTimeout(fn, ms);
  t.unref();
  return t;
}

function defaultClearTimer(handle: TimerHandle): void {
  clearTimeout(handle as NodeJS.Timeout);
}

export class CertStore extends EventEmitter<CertStoreEvents> {
  // Invariants: at most one fetch per identity is in flight, and every tracked identity without one has
  // exactly one timer pending (rotation at half life, or a retry with capped backoff after a failure).
  // A certificate is served only while now <= notAfter; the old one stays in use until then if renewal fails.
  readonly #fetch: (id: SpiffeId) => Promise<CertMaterial>;
  readonly #now: () => number;
  readonly #setTimer: (fn: () => void, ms: number) => TimerHandle;
  readonly #clearTimer: (handle: TimerHandle) => void;
  readonly #minBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #random: () => number;
  readonly #logger: Logger | undefined;
  readonly #entries = new Map<string, Entry>();
  #closed = false;

  constructor(opts: CertStoreOptions) {
    super();
    this.#fetch = opts.fetch;
    this.#now = opts.now ?? Date.now;
    this.#setTimer = opts.setTimer ?? defaultSetTimer;
    this.#clearTimer = opts.clearTimer ?? defaultClearTimer;
    this.#minBackoffMs = opts.minBackoffMs ?? DEFAULT_MIN_BACKOFF_MS;
    this.#maxBackoffMs = opts.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS;
    this.#random = opts.random ?? Math.random;
    this.#logger = opts.logger;
    if (!(this.#minBackoffMs > 0) || !(this.#maxBackoffMs >= this.#minBackoffMs)) {
      throw new StraitError(
        'STRAIT_ERR_CONFIG',
        `CertStore backoff must satisfy 0 < minBackoffMs <= maxBackoffMs, got ${this.#minBackoffMs} and ${this.#maxBackoffMs}`,
      );
    }
  }

  /**
   * The current certificate for `id`, fetching one when there is none or it expired. Concurrent calls share
   * one fetch. While backing off after a failed fetch with no valid certificate, fails at once rather than
   * adding load on the CA. Throws STRAIT_ERR_CERT_EXPIRED when no valid certificate can be had.
   */
  get(id: SpiffeId): Promise<Cert> {
    if (this.#closed) return Promise.reject(bug(`CertStore.get(${id}) called after close()`));
    const entry = this.#entry(id);
    const current = this.#valid(entry.current);
    if (current !== undefined) return Promise.resolve(current);
    if (entry.inflight !== undefined) return entry.inflight;
    if (entry.retryAt !== undefined && this.#now() < entry.retryAt) {
      return Promise.reject(this.#noValidCert(entry, entry.lastError));
    }
    return this.#refresh(entry);
  }

  /** Starts fetching `id` in the background (errors go to the 'rotation-failed' event). Resolves when settled. */
  prefetch(id: SpiffeId): Promise<void> {
    return this.get(id).then(
      () => undefined,
      () => undefined,
    );
  }

  /**
   * Fetches `id` now, even while backing off after a failure: for a caller that knows a fetch will succeed now (a
   * data-plane worker told that its primary holds a new certificate). Nothing happens for an untracked identity or
   * while a fetch is in flight.
   */
  refresh(id: SpiffeId): void {
    const entry = this.#entries.get(id.toString());
    if (this.#closed || entry === undefined || entry.inflight !== undefined) return;
    this.#refresh(entry).catch(() => {
      // Reported through #failed ('rotation-failed').
    });
  }

  /** The current valid certificate, without fetching. */
  peek(id: SpiffeId): Cert | undefined {
    return this.#valid(this.#entries.get(id.toString())?.current);
  }

  /** Stops tracking `id` (its pod left this node): drops the certificate and any pending rotation. */
  forget(id: SpiffeId): void {
    const entry = this.#entries.get(id.toString());
    if (entry === undefined) return;
    this.#cancelTimer(entry);
    this.#entries.delete(id.toString());
  }

  /** The identities currently tracked. */
  identities(): SpiffeId[] {
    return [...this.#entries.values()].map((e) => e.id);
  }

  close(): void {
    this.#closed = true;
    for (const entry of this.#entries.values()) this.#cancelTimer(entry);
    this.#entries.clear();
  }

  #entry(id: SpiffeId): Entry {
    const key = id.toString();
    let entry = this.#entries.get(key);
    if (entry === undefined) {
      entry = { id, current: undefined, inflight: undefined, timer: undefined, failures: 0, lastError: undefined, retryAt: undefined };
      this.#entries.set(key, entry);
    }
    return entry;
  }

  #tracked(entry: Entry): boolean {
    return !this.#closed && this.#entries.get(entry.id.toString()) === entry;
  }

  #valid(cert: Cert | undefined): Cert | undefined {
    return cert !== undefined && this.#now() <= cert.notAfter.getTime() ? cert : undefined;
  }

  #refresh(entry: Entry): Promise<Cert> {
    this.#cancelTimer(entry);
    const attempt = this.#attempt(entry);
    entry.inflight = attempt;
    return attempt;
  }

  async #attempt(entry: Entry): Promise<Cert> {
    await undefined; // #refresh records this promise as in flight before any outcome is handled
    try {
      const cert = certFromMaterial(entry.id, await this.#fetch(entry.id), this.#now());
      if (this.#tracked(entry)) this.#install(entry, cert);
      return cert;
    } catch (err) {
      if (this.#tracked(entry)) this.#failed(entry, err);
      const current = this.#valid(entry.current);
      if (current !== undefined) return current;
      throw this.#noValidCert(entry, err);
    } finally {
      entry.inflight = undefined;
    }
  }

  #install(entry: Entry, cert: Cert): void {
    const previous = entry.current;
    entry.current = cert;
    entry.failures = 0;
    entry.lastError = undefined;
    entry.retryAt = undefined;
    const notBefore = cert.notBefore.getTime();
    const rotateAt = notBefore + (cert.notAfter.getTime() - notBefore) / 2;
    // A certificate already past half life (a CA clock ahead of ours) is not refetched in a tight loop.
    this.#schedule(entry, Math.max(rotateAt, this.#now() + this.#minBackoffMs));
    this.#logger?.info(
      { identity: entry.id.toString(), notAfter: cert.notAfter.toISOString(), rotateAt: new Date(rotateAt).toISOString() },
      previous === undefined ? 'workload certificate issued' : 'workload certificate rotated',
    );
    this.#emitSafely('rotated', { identity: entry.id, cert, previous });
  }

  #failed(entry: Entry, err: unknown): void {
    entry.failures++;
    entry.lastError = err;
    const base = Math.min(this.#maxBackoffMs, this.#minBackoffMs * 2 ** Math.min(entry.failures - 1, 52));
    const delay = Math.max(1, Math.round(base * (1 - BACKOFF_JITTER * this.#random())));
    entry.retryAt = this.#now() + delay;
    this.#schedule(entry, entry.retryAt);
    const currentNotAfter = this.#valid(entry.current)?.notAfter;
    this.#logger?.warn(
      {
        identity: entry.id.toString(),
        attempt: entry.failures,
        retryInMs: delay,
        currentNotAfter: currentNotAfter?.toISOString(),
        err: errorMessage(err),
      },
      'workload certificate fetch failed; will retry',
    );
    this.#emitSafely('rotation-failed', { identity: entry.id, error: err, attempt: entry.failures, retryInMs: delay, currentNotAfter });
  }

  #schedule(entry: Entry, dueAt: number): void {
    this.#cancelTimer(entry);
    const delay = Math.min(Math.max(0, dueAt - this.#now()), MAX_TIMER_MS);
    entry.timer = this.#setTimer(() => {
      entry.timer = undefined;
      if (!this.#tracked(entry) || entry.inflight !== undefined) return;
      if (this.#now() < dueAt) {
        this.#schedule(entry, dueAt); // a long wait done in steps, or a timer that fired early
        return;
      }
      this.#refresh(entry).catch(() => {
        // Reported through #failed ('rotation-failed'); nobody awaits a background rotation.
      });
    }, delay);
  }

  #cancelTimer(entry: Entry): void {
    if (entry.timer !== undefined) {
      this.#clearTimer(entry.timer);
      entry.timer = undefined;
    }
  }

  #noValidCert(entry: Entry, cause: unknown): StraitError {
    const expired = entry.current?.notAfter;
    const why = cause === undefined ? '' : `: ${errorMessage(cause)}`;
    const retry = entry.retryAt === undefined ? '' : `; next attempt at ${new Date(entry.retryAt).toISOString()}`;
    const head =
      expired === undefined
        ? `no certificate for ${entry.id} yet: fetching one failed${why}`
        : `the certificate for ${entry.id} expired at ${expired.toISOString()} and renewing it failed${why}`;
    return new StraitError('STRAIT_ERR_CERT_EXPIRED', `${head}${retry}; check that the controller's CA is reachable`, {
      cause,
    });
  }

  #emitSafely<K extends keyof CertStoreEvents>(event: K, ...args: CertStoreEvents[K]): void {
    try {
      (this.emit as (e: K, ...a: CertStoreEvents[K]) => boolean)(event, ...args);
    } catch (err) {
      this.#logger?.error({ err: errorMessage(err), event }, 'a CertStore event listener threw');
    }
  }
}

/** Checks fetched material (parsable, the right identity, key matches, not expired) and reads its validity. */
export function certFromMaterial(id: SpiffeId, material: CertMaterial, nowMs: number): Cert {
  const invalid = (what: string, cause?: unknown) =>
    new StraitError('STRAIT_ERR_CERT_INVALID', `the certificate fetched for ${id} ${what}`, cause === undefined ? undefined : { cause });
  if (material.certChainPem.length === 0) throw invalid('came with an empty chain');
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(material.certChainPem[0]!);
  } catch (err) {
    throw invalid(`cannot be parsed: ${errorMessage(err)}`, err);
  }
  const presented = spiffeIdOf(leaf);
  if (!presented.equals(id)) throw invalid(`is for ${presented}`);
  try {
    const keySpki = createPublicKey(createPrivateKey(material.keyPem)).export({ type: 'spki', format: 'der' });
    if (!keySpki.equals(leaf.publicKey.export({ type: 'spki', format: 'der' }))) throw new Error('key mismatch');
  } catch (err) {
    throw invalid('does not match the private key that came with it', err);
  }
  const { notBefore, notAfter } = parseCertificate(leaf.raw);
  if (nowMs > notAfter.getTime()) throw invalid(`expired at ${notAfter.toISOString()} already`);
  return { identity: id, keyPem: material.keyPem, certChainPem: [...material.certChainPem], notBefore, notAfter };
}
