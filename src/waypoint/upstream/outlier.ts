/**
 * Outlier detection for one backend (service + subset), DestinationRule `outlierDetection` as Envoy implements it
 * (outlier detection architecture overview and `outlier_detection_impl.cc`), with consecutive-error detectors only:
 *  - every result of an endpoint counts: a 5xx status, or a gateway error (connect failure, reset, timeout, 502, 503,
 *    504), is a "5xx"; a gateway error also counts towards `consecutiveGatewayErrors`; any other status resets both
 *    counts (locally originated errors are not split out: Envoy's default);
 *  - when a count REACHES its threshold the endpoint is ejected at once (inline, not at the next sweep), and that count
 *    starts again from 0 whether or not the ejection was allowed;
 *  - an ejection is allowed only while ejected/endpoints stays within `maxEjectionPercent` counting the candidate:
 *    100 × (ejected + 1) / endpoints ≤ maxEjectionPercent (Envoy ≥ 1.31, without `always_eject_one_host`, which Istio
 *    does not set): 2 endpoints at 50 % → 1 may be ejected; fewer than 10 endpoints at Istio's default 10 % → none;
 *  - an ejected endpoint stays out for baseEjectionTime × (its ejection multiplier), capped at max(300 s,
 *    baseEjectionTime) (Envoy's max_ejection_time default); each ejection raises the multiplier by one and each
 *    `sweep` that finds the endpoint in service lowers it by one, so an endpoint that keeps failing stays out longer
 *    and one that recovers is forgiven over time;
 *  - endpoints return to service at the first `sweep` at or after their ejection time (Envoy checks at each interval),
 *    with their counts reset. The owner calls `sweep()` every `intervalMs`.
 * Thresholds: `consecutive5xxErrors` absent → 5 (Envoy's default, which Istio leaves in place), 0 → off;
 * `consecutiveGatewayErrors` absent or 0 → off (Envoy counts them but does not enforce by default).
 *
 * Invariants: `ejected` counts exactly the tracked endpoints whose `until` is set; only tracked endpoints (the ones
 * `retain` last named, plus ones that reported since, at most MAX_TRACKED_ENDPOINTS) hold state, so memory is bounded
 * by the endpoint set; time comes only from the injected `now()`.
 */
import type { OutlierPolicy } from '../../common/xds/waypoint-resources.js';

export interface OutlierResult {
  /** The response status, when there was a response. */
  status?: number;
  /** Connect failure, reset, timeout, 502, 503 or 504. */
  gatewayError?: boolean;
}

export type EjectionReason = 'consecutive_5xx' | 'consecutive_gateway_failure';

export interface OutlierEvent {
  endpoint: string;
  reason: EjectionReason;
  /** now() when ejected. */
  since: number;
  /** now() from which the next sweep readmits it. */
  until: number;
  /** The ejection multiplier applied. */
  multiplier: number;
  /** Endpoints ejected after this event, and endpoints tracked. */
  ejected: number;
  endpoints: number;
}

export interface OutlierSnapshot {
  endpoints: number;
  ejected: { endpoint: string; reason: EjectionReason; since: number; until: number; multiplier: number }[];
  /** Per endpoint: running counts and multiplier (for config_dump). */
  hosts: { endpoint: string; consecutive5xx: number; consecutiveGatewayErrors: number; multiplier: number; ejections: number }[];
  ejectionsTotal: number;
  /** Ejections refused by maxEjectionPercent. */
  ejectionsOverflow: number;
  /** Results dropped because MAX_TRACKED_ENDPOINTS endpoints were already tracked. */
  untrackedResults: number;
}

export interface OutlierOptions {
  now: () => number;
  onEject?: (e: OutlierEvent) => void;
  onReadmit?: (e: OutlierEvent) => void;
}

/** Envoy's default max_ejection_time. */
export const DEFAULT_MAX_EJECTION_TIME_MS = 300_000;
/** Envoy's default consecutive_5xx. */
export const DEFAULT_CONSECUTIVE_5XX = 5;
/** Bound on tracked endpoints when `retain` is not called while endpoints churn. */
export const MAX_TRACKED_ENDPOINTS = 65_536;

interface HostState {
  consecutive5xx: number;
  consecutiveGateway: number;
  multiplier: number;
  ejections: number;
  ejection?: { reason: EjectionReason; since: number; until: number; multiplier: number };
}

export class OutlierDetector {
  private readonly hosts = new Map<string, HostState>();
  private ejected = 0;
  private ejectionsTotal = 0;
  private ejectionsOverflow = 0;
  private untrackedResults = 0;
  private readonly threshold5xx: number;
  private readonly thresholdGateway: number;
  private readonly maxEjectionMs: number;

  constructor(private readonly policy: OutlierPolicy, private readonly opts: OutlierOptions) {
    this.threshold5xx = policy.consecutive5xxErrors ?? DEFAULT_CONSECUTIVE_5XX;
    this.thresholdGateway = policy.consecutiveGatewayErrors ?? 0;
    this.maxEjectionMs = Math.max(DEFAULT_MAX_EJECTION_TIME_MS, policy.baseEjectionTimeMs);
  }

  /** How often the owner must call `sweep()`. */
  get intervalMs(): number {
    return this.policy.intervalMs;
  }

  /** Counts one result of `endpoint`; may eject it (onEject). Results of an ejected endpoint are ignored. */
  recordResult(endpoint: string, result: OutlierResult): void {
    const h = this.host(endpoint);
    if (!h || h.ejection) return;
    const status = result.status;
    const gateway = result.gatewayError === true || status === 502 || status === 503 || status === 504;
    const is5xx = gateway || (status !== undefined && status >= 500 && status <= 599);
    if (!is5xx) {
      h.consecutive5xx = 0;
      h.consecutiveGateway = 0;
      return;
    }
    if (gateway) {
      h.consecutiveGateway++;
      if (this.thresholdGateway > 0 && h.consecutiveGateway === this.thresholdGateway) {
        this.tryEject(endpoint, h, 'consecutive_gateway_failure');
        h.consecutiveGateway = 0;
      }
    } else {
      h.consecutiveGateway = 0;
    }
    h.consecutive5xx++;
    if (this.threshold5xx > 0 && h.consecutive5xx === this.threshold5xx) {
      if (!h.ejection) this.tryEject(endpoint, h, 'consecutive_5xx');
      h.consecutive5xx = 0;
    }
  }

  isEjected(endpoint: string): boolean {
    return this.hosts.get(endpoint)?.ejection !== undefined;
  }

  /** The interval sweep: readmits endpoints whose time is up; lowers the multiplier of endpoints in service. */
  sweep(): void {
    const now = this.opts.now();
    for (const [endpoint, h] of this.hosts) {
      const e = h.ejection;
      if (!e) {
        if (h.multiplier > 0) h.multiplier--;
        continue;
      }
      if (now < e.until) continue;
      h.ejection = undefined;
      h.consecutive5xx = 0;
      h.consecutiveGateway = 0;
      this.ejected--;
      this.opts.onReadmit?.({ endpoint, ...e, ejected: this.ejected, endpoints: this.hosts.size });
    }
  }

  /** The endpoint set changed: forget endpoints not in `endpoints`, start tracking new ones. */
  retain(endpoints: Iterable<string>): void {
    const keep = new Set(endpoints);
    for (const [endpoint, h] of this.hosts) {
      if (keep.has(endpoint)) continue;
      if (h.ejection) this.ejected--;
      this.hosts.delete(endpoint);
    }
    for (const endpoint of keep) this.host(endpoint);
  }

  snapshot(): OutlierSnapshot {
    const ejected: OutlierSnapshot['ejected'] = [];
    const hosts: OutlierSnapshot['hosts'] = [];
    for (const [endpoint, h] of this.hosts) {
      if (h.ejection) ejected.push({ endpoint, ...h.ejection });
      hosts.push({ endpoint, consecutive5xx: h.consecutive5xx, consecutiveGatewayErrors: h.consecutiveGateway, multiplier: h.multiplier, ejections: h.ejections });
    }
    return { endpoints: this.hosts.size, ejected, hosts, ejectionsTotal: this.ejectionsTotal, ejectionsOverflow: this.ejectionsOverflow, untrackedResults: this.untrackedResults };
  }

  private host(endpoint: string): HostState | undefined {
    let h = this.hosts.get(endpoint);
    if (h) return h;
    if (this.hosts.size >= MAX_TRACKED_ENDPOINTS) {
      this.untrackedResults++;
      return undefined;
    }
    h = { consecutive5xx: 0, consecutiveGateway: 0, multiplier: 0, ejections: 0 };
    this.hosts.set(endpoint, h);
    return h;
  }

  private tryEject(endpoint: string, h: HostState, reason: EjectionReason): void {
    if (100 * (this.ejected + 1) > this.policy.maxEjectionPercent * this.hosts.size) {
      this.ejectionsOverflow++;
      return;
    }
    const base = this.policy.baseEjectionTimeMs;
    if (base * h.multiplier < this.maxEjectionMs + base) h.multiplier++;
    const since = this.opts.now();
    const ejection = { reason, since, until: since + Math.min(base * h.multiplier, this.maxEjectionMs), multiplier: h.multiplier };
    h.ejection = ejection;
    h.ejections++;
    this.ejected++;
    this.ejectionsTotal++;
    this.opts.onEject?.({ endpoint, ...ejection, ejected: this.ejected, endpoints: this.hosts.size });
  }
}
