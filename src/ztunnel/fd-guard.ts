/**
 * File descriptors: the limit the ztunnel runs under, and what it does near it (issue 13).
 * - At start the soft RLIMIT_NOFILE is raised to the hard limit (native addon; Node does the same when it starts, so
 *   without the addon the limits are read from /proc/self/limits, or reported unknown with one warning).
 * - libuv, when accept() fails with EMFILE, accepts and closes the waiting connections without telling the process:
 *   clients are dropped with no log line and no metric. So the ztunnel sheds (resets) an accepted connection
 *   itself once the descriptors in use come within `reserve` of the soft limit: the loss is counted and logged, and
 *   the connections already accepted keep the descriptors they need for their upstream.
 * - Every loss (shed on accept; EMFILE/ENFILE on accept or connect) is counted in strait_ztunnel_fd_exhausted_total
 *   and summarised in at most one log line per interval.
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { Logger } from '../common/log.js';
import type { ZtunnelMetrics } from './metrics.js';
import { errnoCodes } from '../dataplane/outcomes.js';
import type { NofileLimit } from './capture/original-dst.js';

export type FdOp = 'accept' | 'connect';
export type FdLossReason = 'emfile' | 'enfile' | 'reserve';

export interface FdLimits {
  /** -1 = unlimited; undefined = unknown. */
  soft?: number;
  hard?: number;
  /** The soft limit before this process raised it (only when the addon did the raising). */
  softBefore?: number;
  /** Where the numbers come from. */
  source: 'setrlimit' | '/proc/self/limits' | 'unknown';
  /** Said once at start when the limit could not be raised or read. */
  warning?: string;
}

/** Parses the "Max open files" row of /proc/<pid>/limits; -1 for "unlimited". */
export function parseProcLimits(text: string): { soft: number; hard: number } | undefined {
  const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(text);
  if (!m) return undefined;
  const n = (v: string) => (v === 'unlimited' ? -1 : Number(v));
  return { soft: n(m[1]!), hard: n(m[2]!) };
}

/** Decides the limits to run under from what the addon and /proc say (pure; app.ts passes the real ones). */
export function resolveFdLimits(native: NofileLimit | { error: string }, procLimits: string | undefined): FdLimits {
  if (!('error' in native)) return { soft: native.soft, hard: native.hard, softBefore: native.before, source: 'setrlimit' };
  const proc = procLimits === undefined ? undefined : parseProcLimits(procLimits);
  if (proc) {
    return {
      ...proc, source: '/proc/self/limits',
      ...(proc.soft !== proc.hard ? { warning: `the soft file descriptor limit (${proc.soft}) is below the hard limit (${proc.hard}) and cannot be raised: ${native.error}` } : {}),
    };
  }
  return { source: 'unknown', warning: `the file descriptor limits are unknown (neither the native addon nor /proc/self/limits is available: ${native.error}); running out of descriptors is still counted and logged, but connections are not shed before it` };
}

/** Descriptors kept free for connections already accepted (their upstream) and the ztunnel's own needs. */
export function fdReserve(softLimit: number): number {
  return Math.min(256, Math.max(32, Math.round(softLimit * 0.05)));
}

/** Near the threshold the estimate is re-measured on accept, at most this often. */
const NEAR_LIMIT_SAMPLE_MS = 100;

/** Shed a newly accepted connection? `open` counts it already. Pure. */
export function shouldShed(open: number, softLimit: number | undefined, reserve: number): boolean {
  if (softLimit === undefined || softLimit < 0) return false;
  return open > softLimit - reserve;
}

/** Which loss an error is, if it is one: EMFILE (this process's limit) or ENFILE (the whole system's). */
export function fdLossOf(err: unknown): FdLossReason | undefined {
  const codes = errnoCodes(err);
  if (codes.includes('EMFILE')) return 'emfile';
  if (codes.includes('ENFILE')) return 'enfile';
  return undefined;
}

/** Open descriptors of this process (Linux), or undefined. */
export function countOpenFds(): number | undefined {
  try {
    return readdirSync('/proc/self/fd').length - 1; // minus the descriptor the listing itself holds
  } catch {
    return undefined;
  }
}

export function readProcSelfLimits(): string | undefined {
  try {
    return readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return undefined;
  }
}

export interface FdGuardOptions {
  limits: FdLimits;
  metrics: ZtunnelMetrics;
  log: Logger;
  /** Descriptors the ztunnel holds and counts itself (accepted sockets, upstream sockets, pooled HBONE connections). */
  counted: () => number;
  /** Descriptors about to be opened (one upstream per connection still being set up). */
  expected?: () => number;
  /** All open descriptors of the process, or undefined where that cannot be known. */
  countOpen?: () => number | undefined;
  /** How often everything else (xDS, logs, admin) is re-measured: `countOpen() - counted()`. */
  sampleIntervalMs?: number;
  /** At most one summary line per this long. */
  summaryIntervalMs?: number;
}

export const DEFAULT_FD_SAMPLE_INTERVAL_MS = 5_000;
export const DEFAULT_FD_SUMMARY_INTERVAL_MS = 10_000;

/**
 * Invariants: `uncounted` is the last measured `countOpen() - counted()` (0 if it cannot be measured; `expected` is
 * never part of it: those descriptors are not open yet); a loss is
 * counted in the metric when it happens and appears in exactly one summary line; at most one summary timer runs.
 */
export class FdGuard {
  readonly reserve: number;
  private uncounted = 0;
  private sampledAt = 0;
  private readonly sampler: NodeJS.Timeout | undefined;
  private pending = new Map<string, number>();
  private summaryTimer: NodeJS.Timeout | undefined;
  private readonly summaryIntervalMs: number;
  private readonly countOpen: () => number | undefined;

  constructor(private readonly o: FdGuardOptions) {
    this.reserve = o.limits.soft !== undefined && o.limits.soft > 0 ? fdReserve(o.limits.soft) : 0;
    this.summaryIntervalMs = o.summaryIntervalMs ?? DEFAULT_FD_SUMMARY_INTERVAL_MS;
    this.countOpen = o.countOpen ?? countOpenFds;
    this.sample();
    if (this.reserve > 0) {
      this.sampler = setInterval(() => this.sample(), o.sampleIntervalMs ?? DEFAULT_FD_SAMPLE_INTERVAL_MS);
      this.sampler.unref();
    }
  }

  /** Descriptors in use now (and about to be), as the guard estimates them. */
  inUse(): number {
    return this.uncounted + this.o.counted() + (this.o.expected?.() ?? 0);
  }

  /** For a socket just accepted (and already counted): false = reset it, the process is too close to its limit. */
  admit(): boolean {
    const soft = this.o.limits.soft;
    if (soft === undefined || soft < 0) return true;
    // Within another reserve of the threshold, trust a fresh count over the estimate (bounded: 10 listings a second).
    if (this.inUse() > soft - 2 * this.reserve && Date.now() - this.sampledAt >= NEAR_LIMIT_SAMPLE_MS) this.sample();
    if (!shouldShed(this.inUse(), soft, this.reserve)) return true;
    this.lost('accept', 'reserve');
    return false;
  }

  /** Counts `err` if it is fd exhaustion; true if it was. */
  observe(op: FdOp, err: unknown): boolean {
    const reason = fdLossOf(err);
    if (!reason) return false;
    this.sample();
    this.lost(op, reason);
    return true;
  }

  lost(op: FdOp, reason: FdLossReason): void {
    this.o.metrics.fdExhausted.inc({ op, reason });
    const key = `${op}/${reason}`;
    this.pending.set(key, (this.pending.get(key) ?? 0) + 1);
    if (!this.summaryTimer) {
      this.flush(); // the first loss after a quiet interval is said at once
      this.summaryTimer = setInterval(() => {
        if (this.pending.size === 0) {
          clearInterval(this.summaryTimer);
          this.summaryTimer = undefined;
          return;
        }
        this.flush();
      }, this.summaryIntervalMs);
      this.summaryTimer.unref();
    }
  }

  /** For /config_dump. */
  snapshot(): Record<string, unknown> {
    const l = this.o.limits;
    return {
      soft: l.soft ?? 'unknown', hard: l.hard ?? 'unknown', ...(l.softBefore !== undefined ? { softBefore: l.softBefore } : {}), source: l.source,
      open: this.countOpen() ?? 'unknown', reserve: this.reserve,
    };
  }

  close(): void {
    clearInterval(this.sampler);
    clearInterval(this.summaryTimer);
    this.summaryTimer = undefined;
  }

  /** Re-measures what the ztunnel does not count itself (xDS, logs, admin, listening sockets). */
  sample(): void {
    this.sampledAt = Date.now();
    const open = this.countOpen();
    if (open !== undefined) this.uncounted = Math.max(0, open - this.o.counted());
  }

  private flush(): void {
    const by = Object.fromEntries(this.pending);
    const sum = (op: FdOp) => [...this.pending].filter(([k]) => k.startsWith(`${op}/`)).reduce((a, [, n]) => a + n, 0);
    this.o.log.warn({
      accept_dropped: sum('accept'), connect_failed: sum('connect'), by_reason: by, open_fds: this.countOpen(),
      soft_limit: this.o.limits.soft, hard_limit: this.o.limits.hard, reserve: this.reserve, interval_ms: this.summaryIntervalMs,
    }, 'out of file descriptors: connections are being dropped; raise the ztunnel\'s open-files limit (the container\'s nofile ulimit, ' +
      'LimitNOFILE= under systemd, ulimit -n); it raises its soft limit to the hard one at start');
    this.pending = new Map();
  }
}
