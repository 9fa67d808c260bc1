/**
 * Leader election among controller replicas through one Lease (coordination.k8s.io/v1), as client-go's leaderelection
 * does it: every replica tries every retry period; a write carries the resourceVersion it read (409 Conflict → read
 * again), so two replicas never both win; a Lease is taken over only once it has expired on our own clock.
 *
 * Invariants: `isLeader()` is true only while the last successful write naming us was sent less than renewDeadline
 * ago (renewDeadline < leaseDuration, so nobody else can have taken over yet): a leader whose renewals fail stops
 * writing before its Lease can expire. At most one attempt is in flight at a time; after close() none starts.
 */
import { EventEmitter } from 'node:events';
import { errorMessage } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { RateLimitedLog } from '../../common/rate-limited-log.js';
import { isConflict, isNotFound, withTimeout } from './kube-errors.js';
import { decideLease, leaseRecordKey, releasedSpec, type LeaseSpec } from './lease-decision.js';

export interface LeaseObject {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string; [k: string]: unknown };
  spec: LeaseSpec;
}

/** The three calls leader election makes on its one Lease. */
export interface LeaseApi {
  /** Undefined when the Lease does not exist (404). */
  get(): Promise<LeaseObject | undefined>;
  /** POST; fails with status 409 when it exists. */
  create(lease: LeaseObject): Promise<LeaseObject>;
  /** PUT with metadata.resourceVersion; fails with status 409 when the Lease changed since it was read. */
  replace(lease: LeaseObject): Promise<LeaseObject>;
}

export interface LeaderElectorOptions {
  api: LeaseApi;
  name: string;
  namespace: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  logger: Logger;
  now?: () => number;
}

export interface LeadershipStatus {
  identity: string;
  leader: boolean;
  /** Who holds the Lease as last read ('' when free, undefined before the first read). */
  holder?: string;
  /** When we last became leader (ISO), while leading. */
  leadingSince?: string;
  leaseTransitions?: number;
}

export class LeaderElector extends EventEmitter<{ leading: []; stopped: [] }> {
  private readonly o: LeaderElectorOptions;
  private readonly now: () => number;
  private readonly errors: RateLimitedLog;
  private lease: LeaseObject | undefined;
  private observedKey = '';
  private observedAtMs = 0;
  private leading = false;
  private lastRenewSentMs = 0;
  private leadingSinceMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private closed = false;

  constructor(o: LeaderElectorOptions) {
    super();
    this.o = o;
    this.now = o.now ?? Date.now;
    this.errors = new RateLimitedLog({ logger: o.logger, level: 'warn', msg: 'leader election: cannot read or write the Lease', what: 'Lease errors', burst: 3 });
  }

  start(): void {
    if (this.timer || this.running || this.closed) return;
    this.schedule(0);
  }

  /** True while this replica may write (see the invariant). */
  isLeader(): boolean {
    return this.leading && this.now() < this.lastRenewSentMs + this.o.renewDeadlineMs;
  }

  status(): LeadershipStatus {
    const s: LeadershipStatus = { identity: this.o.identity, leader: this.isLeader() };
    if (this.lease) {
      s.holder = this.lease.spec.holderIdentity ?? '';
      s.leaseTransitions = this.lease.spec.leaseTransitions ?? 0;
    }
    if (this.isLeader()) s.leadingSince = new Date(this.leadingSinceMs).toISOString();
    return s;
  }

  /** Stops trying; a leader releases the Lease (holder '') so another replica takes over at its next try. */
  async close(opts: { release?: boolean } = {}): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    clearTimeout(this.deadlineTimer);
    this.timer = undefined;
    await this.running;
    const wasLeader = this.isLeader();
    if (wasLeader && opts.release !== false && this.lease) {
      const released: LeaseObject = { ...this.lease, spec: releasedSpec(this.lease.spec, this.now()) };
      try {
        await withTimeout(this.o.api.replace(released), this.o.renewDeadlineMs, `releasing Lease ${this.o.namespace}/${this.o.name}`);
        this.o.logger.info({ lease: `${this.o.namespace}/${this.o.name}` }, 'released leadership');
      } catch (err) {
        this.o.logger.warn({ err: errorMessage(err) }, 'could not release the Lease; another replica takes over when it expires');
      }
    }
    this.stepDown('shutting down', false);
    this.errors.close();
  }

  private schedule(delayMs: number): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = this.attempt().finally(() => {
        this.running = undefined;
        // A leader renews every retry period; the others try with ±10% jitter so replicas do not move in step.
        const jitter = this.leading ? 1 : 0.9 + Math.random() * 0.2;
        this.schedule(Math.round(this.o.retryPeriodMs * jitter));
      });
    }, delayMs);
  }

  private observe(lease: LeaseObject | undefined): void {
    this.lease = lease;
    const key = leaseRecordKey(lease?.spec);
    if (key !== this.observedKey) {
      this.observedKey = key;
      this.observedAtMs = this.now();
    }
  }

  /** One try: renew if leading (from the cached read), else read and acquire if free or expired. */
  private async attempt(): Promise<void> {
    const timeoutMs = Math.min(this.o.renewDeadlineMs, Math.max(1000, 2 * this.o.retryPeriodMs));
    const what = `Lease ${this.o.namespace}/${this.o.name}`;
    try {
      // Leading with a cached read: write straight away; only a conflict costs a read.
      if (!(this.leading && this.lease)) this.observe(await withTimeout(this.o.api.get(), timeoutMs, `reading ${what}`));
      for (let tries = 0; tries < 2 && !this.closed; tries++) {
        const sentAt = this.now();
        const d = decideLease({ current: this.lease?.spec, observedAtMs: this.observedAtMs, nowMs: sentAt, identity: this.o.identity, leaseDurationMs: this.o.leaseDurationMs });
        if (d.action === 'wait') {
          if (this.leading) this.stepDown(`the Lease is now held by ${d.holder}`);
          return;
        }
        try {
          const written = d.action === 'create'
            ? await withTimeout(this.o.api.create(this.newLease(d.spec)), timeoutMs, `creating ${what}`)
            : await withTimeout(this.o.api.replace({ ...this.lease!, spec: d.spec }), timeoutMs, `updating ${what}`);
          this.observe(written);
          this.renewed(sentAt);
          return;
        } catch (err) {
          // 409: someone else wrote in between (a renewal, or another replica's takeover; a create that lost the
          // race): read again and decide on what they wrote. A second conflict in a row waits for the next try.
          const raced = isConflict(err) || (d.action === 'update' && isNotFound(err));
          if (!raced || tries === 1) throw err;
          this.observe(await withTimeout(this.o.api.get(), timeoutMs, `reading ${what}`));
        }
      }
    } catch (err) {
      this.errors.record('lease_error', { lease: what, err: errorMessage(err) });
    } finally {
      if (this.leading && this.now() >= this.lastRenewSentMs + this.o.renewDeadlineMs) this.stepDown(`no successful renewal within --renew-deadline ${this.o.renewDeadlineMs}ms`);
    }
  }

  private newLease(spec: LeaseSpec): LeaseObject {
    return { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: this.o.name, namespace: this.o.namespace }, spec };
  }

  private renewed(sentAtMs: number): void {
    this.lastRenewSentMs = sentAtMs;
    clearTimeout(this.deadlineTimer);
    // Leadership lapses by itself at the deadline (isLeader() is time-based); this timer only announces it.
    this.deadlineTimer = setTimeout(() => {
      if (this.leading && this.now() >= this.lastRenewSentMs + this.o.renewDeadlineMs) this.stepDown(`no successful renewal within --renew-deadline ${this.o.renewDeadlineMs}ms`);
    }, this.o.renewDeadlineMs + 1);
    this.deadlineTimer.unref();
    if (!this.leading) {
      this.leading = true;
      this.leadingSinceMs = sentAtMs;
      this.o.logger.info({ lease: `${this.o.namespace}/${this.o.name}`, identity: this.o.identity, transitions: this.lease?.spec.leaseTransitions ?? 0 }, 'became the leader');
      this.emit('leading');
    }
  }

  private stepDown(why: string, log = true): void {
    clearTimeout(this.deadlineTimer);
    if (!this.leading) return;
    this.leading = false;
    if (log) this.o.logger.warn({ lease: `${this.o.namespace}/${this.o.name}`, identity: this.o.identity, why }, 'stopped leading: no longer writing to the cluster');
    this.emit('stopped');
  }
}
