/**
 * What the demo app does to one request, decided before any I/O: the pod's own faults (a share of requests, the
 * first N of each request key, or every request during a recurring time window, answered with an error status; a
 * delay) and the request's asks (`/status/<code>`,
 * `/delay/<ms>`, `/bytes/<n>`, `/echo`, or the `x-demo-status` / `x-demo-delay-ms` headers on any path).
 */
import { DEFAULT_DEMO_FAIL_STATUS, MAX_DEMO_DELAY_MS, parseDemoDelayMs, parseDemoStatus, type DemoBehaviour } from '../local/demo-annotations.js';

/** The request header whose value groups requests for `failFirst` and for the `attempt` in the answer. */
export const REQUEST_KEY_HEADER = 'x-request-key';
export const DEMO_STATUS_HEADER = 'x-demo-status';
export const DEMO_DELAY_HEADER = 'x-demo-delay-ms';
/** Request keys remembered at once; past it the oldest key is forgotten (its next request counts as its first). */
export const MAX_REQUEST_KEYS = 10_000;
/** Longest request key; a longer one is answered 400. */
export const MAX_REQUEST_KEY_BYTES = 256;
/** Largest `/bytes/<n>` answer. */
export const MAX_DEMO_BYTES = 64 * 1024 * 1024;

/** The ratio as a whole number of millionths, so the spread of failures is exact integer arithmetic. */
const PPM = 1_000_000;

export interface PodFaultDecision {
  /** The status to answer instead of the normal one, when the pod's faults pick this request. */
  failStatus?: number;
  /** 1-based count of requests with this request key (absent without the header). */
  attempt?: number;
}

/**
 * The pod's faults. Invariants: `seen` counts every request given to decide() (so the ratio's failures are spread
 * evenly over arrival order: request i fails when floor((i+1)·r) > floor(i·r)); `keys` holds at most
 * MAX_REQUEST_KEYS entries in least-recently-used order; the fail window's periods are counted from `startedAt`,
 * when the PodFaults was made (the app's start), on the injected clock.
 */
export class PodFaults {
  private seen = 0;
  private readonly keys = new Map<string, number>();
  private readonly ratioPpm: number;
  private readonly status: number;
  private readonly startedAt: number;

  constructor(readonly behaviour: DemoBehaviour, private readonly now: () => number = Date.now) {
    const failing = behaviour.failStatus !== undefined || behaviour.failRatio !== undefined || behaviour.failFirst !== undefined || behaviour.failWindow !== undefined;
    // A status alone fails every request; a ratio, a count or a window alone uses the default status.
    const selective = behaviour.failFirst !== undefined || behaviour.failWindow !== undefined;
    this.ratioPpm = Math.round((behaviour.failRatio ?? (!selective && failing ? 1 : 0)) * PPM);
    this.status = behaviour.failStatus ?? DEFAULT_DEMO_FAIL_STATUS;
    this.startedAt = now();
  }

  /** Whether the fail window is open now (false without one). */
  inFailWindow(): boolean {
    const w = this.behaviour.failWindow;
    if (!w) return false;
    return (this.now() - this.startedAt) % w.periodMs < w.failMs;
  }

  get delayMs(): number {
    return this.behaviour.delayMs ?? 0;
  }

  decide(requestKey: string | undefined): PodFaultDecision {
    const i = this.seen++;
    const out: PodFaultDecision = {};
    let fail = Math.floor(((i + 1) * this.ratioPpm) / PPM) > Math.floor((i * this.ratioPpm) / PPM);
    if (requestKey !== undefined) {
      const n = (this.keys.get(requestKey) ?? 0) + 1;
      this.keys.delete(requestKey);
      this.keys.set(requestKey, n);
      if (this.keys.size > MAX_REQUEST_KEYS) this.keys.delete(this.keys.keys().next().value!);
      out.attempt = n;
      if (this.behaviour.failFirst !== undefined && n <= this.behaviour.failFirst) fail = true;
    } else if (this.behaviour.failFirst !== undefined) {
      // Requests without a key share one counter, so fail-first also works for a client that cannot set headers.
      const n = (this.keys.get('') ?? 0) + 1;
      this.keys.set('', n);
      if (n <= this.behaviour.failFirst) fail = true;
    }
    if (this.inFailWindow()) fail = true;
    if (fail) out.failStatus = this.status;
    return out;
  }
}

export type RequestAsk =
  | { kind: 'answer'; status: number; delayMs: number; echo: boolean }
  | { kind: 'bytes'; n: number; delayMs: number }
  | { kind: 'bad'; error: string };

const STATUS_PATH = /^\/status\/([^/]*)\/?$/;
const DELAY_PATH = /^\/delay\/([^/]*)\/?$/;
const BYTES_PATH = /^\/bytes\/([^/]*)\/?$/;

/** What one request asks for, from its path and headers (names lower case). */
export function requestAsk(pathname: string, headers: Readonly<Record<string, string | string[] | undefined>>): RequestAsk {
  let status = 200;
  let delayMs = 0;
  const header = (name: string) => {
    const v = headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const hs = header(DEMO_STATUS_HEADER);
  if (hs !== undefined) {
    const s = parseDemoStatus(hs);
    if (s === undefined) return { kind: 'bad', error: `${DEMO_STATUS_HEADER}: "${hs}" is not a status from 200 to 599` };
    status = s;
  }
  const hd = header(DEMO_DELAY_HEADER);
  if (hd !== undefined) {
    const d = parseDemoDelayMs(hd);
    if (d === undefined) return { kind: 'bad', error: `${DEMO_DELAY_HEADER}: "${hd}" is not milliseconds from 0 to ${MAX_DEMO_DELAY_MS}` };
    delayMs = d;
  }
  let m = STATUS_PATH.exec(pathname);
  if (m) {
    const s = parseDemoStatus(m[1]!);
    if (s === undefined) return { kind: 'bad', error: `/status/${m[1]}: the status must be from 200 to 599` };
    return { kind: 'answer', status: s, delayMs, echo: false };
  }
  m = DELAY_PATH.exec(pathname);
  if (m) {
    const d = parseDemoDelayMs(m[1]!);
    if (d === undefined) return { kind: 'bad', error: `/delay/${m[1]}: the delay must be whole milliseconds from 0 to ${MAX_DEMO_DELAY_MS}` };
    return { kind: 'answer', status, delayMs: delayMs + d, echo: false };
  }
  m = BYTES_PATH.exec(pathname);
  if (m) {
    const n = /^\d+$/.test(m[1]!) ? Number(m[1]) : NaN;
    if (!(n <= MAX_DEMO_BYTES)) return { kind: 'bad', error: `/bytes/${m[1]}: the size must be whole bytes from 0 to ${MAX_DEMO_BYTES}` };
    return { kind: 'bytes', n, delayMs };
  }
  return { kind: 'answer', status, delayMs, echo: pathname === '/echo' || pathname === '/echo/' };
}
