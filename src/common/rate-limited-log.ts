import type { Logger } from './log.js';

export const DEFAULT_LOG_SUMMARY_INTERVAL_MS = 10_000;

export interface RateLimitedLogOptions {
  logger: Logger;
  level: 'info' | 'warn' | 'error';
  /** The message of each individual line, e.g. "xDS stream refused". */
  msg: string;
  /** What is counted, plural, for the summary line, e.g. "refused requests". */
  what: string;
  /** Individual lines per interval; further events are only counted (default 1). */
  burst?: number;
  intervalMs?: number;
}

/**
 * A log line that cannot flood: the first `burst` events of each interval are logged one by one, the rest are
 * counted by reason and reported as one summary line when the interval ends ("N more refused requests in the
 * last 10 s: wrong_token 9000, ..."). At most burst + 1 lines per interval, whatever the event rate.
 *
 * Invariant: `suppressed` holds only events of the current interval; the timer runs only while it is non-empty.
 */
export class RateLimitedLog {
  private readonly opts: Required<Omit<RateLimitedLogOptions, 'logger'>> & { logger: Logger };
  private intervalStart = 0;
  private loggedInInterval = 0;
  private suppressed = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(opts: RateLimitedLogOptions) {
    this.opts = { burst: 1, intervalMs: DEFAULT_LOG_SUMMARY_INTERVAL_MS, ...opts };
  }

  /** One event; `reason` groups it in the summary, `fields` go on the individual line. */
  record(reason: string, fields: Record<string, unknown>, msg = this.opts.msg): void {
    const now = Date.now();
    if (now - this.intervalStart >= this.opts.intervalMs && this.suppressed.size === 0) {
      this.intervalStart = now;
      this.loggedInInterval = 0;
    }
    if (this.loggedInInterval < this.opts.burst) {
      this.loggedInInterval++;
      this.opts.logger[this.opts.level]({ ...fields, reason }, msg);
      return;
    }
    this.suppressed.set(reason, (this.suppressed.get(reason) ?? 0) + 1);
    if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), Math.max(0, this.intervalStart + this.opts.intervalMs - now));
      this.timer.unref();
    }
  }

  /** Logs the summary of what was counted (if anything) and starts a new interval. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.suppressed.size === 0) return;
    let total = 0;
    const reasons: Record<string, number> = {};
    for (const [r, n] of [...this.suppressed].sort((a, b) => b[1] - a[1])) {
      reasons[r] = n;
      total += n;
    }
    const seconds = Math.round(this.opts.intervalMs / 100) / 10;
    const list = Object.entries(reasons).map(([r, n]) => `${r} ${n}`).join(', ');
    this.opts.logger[this.opts.level](
      { suppressed: total, reasons, intervalMs: this.opts.intervalMs },
      `${total} more ${this.opts.what} in the last ${seconds} s (not logged one by one): ${list}`,
    );
    this.suppressed = new Map();
    this.intervalStart = Date.now();
    this.loggedInInterval = 0;
  }

  /** Flushes and stops the timer (process shutdown). */
  close(): void {
    this.flush();
  }
}
