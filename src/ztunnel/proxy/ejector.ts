/**
 * The I/O around EndpointHealth (endpoint-health.ts decides): the clock, one timer for the next readmission, a log
 * line on every ejection and readmission, and the metrics.
 * Invariants: at most one timer is pending, set for EndpointHealth.nextDeadline(); the ejected-endpoints gauge is
 * set from EndpointHealth after every change.
 */
import type { Logger } from '../../common/log.js';
import type { ZtunnelMetrics } from '../metrics.js';
import { EndpointHealth, type EjectionPolicy, type Readmitted } from './endpoint-health.js';
import type { EndpointOutcomes } from './outbound.js';

export class Ejector implements EndpointOutcomes {
  readonly health: EndpointHealth;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private closed = false;

  constructor(policy: EjectionPolicy, private readonly metrics: ZtunnelMetrics, private readonly log: Logger, private readonly now: () => number = Date.now) {
    this.health = new EndpointHealth(policy);
  }

  isEjected(endpointKey: string): boolean {
    return this.health.isEjected(endpointKey, this.now());
  }

  failed(endpointKey: string, reason: string): void {
    const e = this.health.failed(endpointKey, this.now(), reason);
    if (!e) return;
    this.metrics.endpointEjections.inc();
    this.metrics.endpointsEjected.set(this.health.ejectedCount());
    this.log.warn({ endpoint: e.endpoint, ejected_ms: e.durationMs, ejections: e.ejections, err: e.reason }, 'endpoint ejected: connecting to it failed; other endpoints take its connections until it is readmitted');
    this.schedule();
  }

  succeeded(endpointKey: string): void {
    const r = this.health.succeeded(endpointKey, this.now());
    if (r) this.readmitted([r]);
  }

  retried(): void {
    this.metrics.endpointRetries.inc();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private readmitted(rs: Readmitted[]): void {
    for (const r of rs) {
      this.metrics.endpointReadmissions.inc();
      this.log.info({ endpoint: r.endpoint, ejected_ms: r.ejectedForMs, ejections: r.ejections }, 'endpoint readmitted: back in the pick');
    }
    this.metrics.endpointsEjected.set(this.health.ejectedCount());
  }

  private schedule(): void {
    if (this.closed) return;
    const next = this.health.nextDeadline();
    if (next === undefined || next >= this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = next;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      const rs = this.health.expire(this.now());
      if (rs.length) this.readmitted(rs);
      this.schedule();
    }, Math.max(0, next - this.now()));
    this.timer.unref();
  }
}
