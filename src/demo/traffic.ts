/**
 * The demo's traffic: acts as the calling pods. Each request is one connection from the pod's address to
 * its node's ztunnel SOCKS5 port, CONNECT to the service's DNS name, one HTTP/1.1 request (the route's method, path
 * and headers) with `Connection: close`. An answer of the demo app (its JSON) says which pod answered and, behind a
 * waypoint, how many tries the waypoint made (the `x-envoy-attempt-count` of the last try, which the app echoes).
 *
 * Invariants: at most `maxInFlightPerRoute` requests per route are open at once (a slow mesh slows the demo
 * rather than piling up sockets); every outcome is counted exactly once, in `stats`, by `record()`; after
 * stop() no request starts and every open socket has been destroyed.
 */
import type { Socket } from 'node:net';
import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { httpGet } from './http-get.js';
import type { DemoRoute, Expectation, Layer } from './routes.js';
import { socks5Connect } from './socks5-client.js';

export const DEFAULT_RATE_PER_ROUTE = 5;
export const DEFAULT_MAX_IN_FLIGHT_PER_ROUTE = 4;
export const DEFAULT_REQUEST_TIMEOUT_MS = 5_000;
/** The rate shown is over this recent window. */
const RATE_WINDOW_MS = 5_000;
/** Distinct error and refusal messages (and failing pods) kept per route; further ones are counted as "(other)". */
const MAX_DISTINCT_MESSAGES = 20;
/** The `statuses` keys of outcomes without an HTTP answer: refused before one (SOCKS5, reset), or failed. */
export const NOT_HTTP = { refused: 'refused', failed: 'failed' } as const;

/** The header a waypoint sets on every try it sends upstream (1 on the first), which the demo app echoes. */
export const ATTEMPT_COUNT_HEADER = 'x-envoy-attempt-count';

/**
 * What one request got. `status` is the HTTP status when there was a response; `attempts` the tries the waypoint made
 * (absent when no waypoint was on the way, or the answer did not come from the demo app); `pod` on an error answered
 * by a demo app itself (its JSON): a pod's own failure, not the mesh's.
 */
export type Outcome =
  | { kind: 'ok'; app: string; version: string; pod: string; callerIdentity: string | null; status?: number; attempts?: number }
  | { kind: 'denied'; reason: string; status?: number }
  | { kind: 'error'; message: string; status?: number; pod?: string; attempts?: number };

/** What one route has seen so far; counts keyed by value, for the summary. */
export interface RouteStats {
  route: string;
  expect: Expectation;
  layer: Layer;
  /** The destination's short name ("api.store"). */
  label: string;
  ok: number;
  denied: number;
  errors: number;
  /** Completed requests per second over the last few seconds. */
  ratePerSec: number;
  /** app name → answers */
  apps: Record<string, number>;
  /** version label → answers */
  versions: Record<string, number>;
  /** pod name → answers */
  pods: Record<string, number>;
  /** caller identity as the destination saw it ("" when it saw none) → answers */
  callerIdentities: Record<string, number>;
  /** why refused → count */
  deniedReasons: Record<string, number>;
  /** error message → count */
  errorMessages: Record<string, number>;
  lastError?: string;
  /** HTTP status → answers; NOT_HTTP's keys for outcomes without an HTTP answer (refused, reset, timed out) */
  statuses: Record<string, number>;
  /** Final HTTP status of the answers that took more than one try at the waypoint → count */
  retried: Record<string, number>;
  /** Tries after the first, summed over all answers. */
  retries: number;
  /** Error answers (5xx, 4xx but 403) that a demo app gave itself, with its JSON: pod → count */
  podFailures: Record<string, number>;
}

export interface TrafficOptions {
  ratePerRoute?: number;
  maxInFlightPerRoute?: number;
  requestTimeoutMs?: number;
  log?: Logger;
}

/** Sends one request along a route and says what happened. `track` sees every socket opened, so stop() can end it. */
export async function sendOnce(route: DemoRoute, timeoutMs: number, track: (s: Socket) => void = () => undefined): Promise<Outcome> {
  let r;
  try {
    r = await socks5Connect({ proxy: route.socks5, localAddress: route.from.address, target: { host: route.host, port: route.port }, timeoutMs });
  } catch (err) {
    return { kind: 'error', message: errorMessage(err) };
  }
  if (!r.ok) {
    if (r.reply === 0x02) return { kind: 'denied', reason: 'refused by policy (SOCKS5 0x02)' };
    return { kind: 'error', message: `SOCKS5 0x${r.reply.toString(16).padStart(2, '0')} ${r.message}` };
  }
  track(r.socket);
  const res = await httpGet(r.socket, { host: route.host, path: route.path, timeoutMs, method: route.method ?? 'GET', headers: route.headers ?? {} });
  switch (res.kind) {
    case 'no-response':
      // The mesh accepted the CONNECT but the far side shut the connection before answering: how a refusal
      // by the destination's ztunnel looks when it comes after the SOCKS5 success.
      return { kind: 'denied', reason: res.reset ? 'connection reset before any HTTP response' : 'connection closed before any HTTP response' };
    case 'timeout':
      return { kind: 'error', message: res.bytes ? `response incomplete after ${timeoutMs} ms` : `no HTTP response within ${timeoutMs} ms` };
    case 'malformed':
      return { kind: 'error', message: res.message };
    case 'response': {
      const status = res.status;
      const a = demoAnswerOf(res.body);
      const attempts = a ? attemptsOf(a.headers) : undefined;
      const tries = attempts !== undefined ? { attempts } : {};
      // A waypoint's denial carries its reason as the body ("RBAC: access denied").
      if (status === 403) return { kind: 'denied', reason: a ? `HTTP 403 from ${a.pod}` : `HTTP 403 ${firstLine(res.body) || 'Forbidden'}`, status };
      if (status !== 200) {
        if (a) return { kind: 'error', message: `HTTP ${status} from ${a.pod}`, status, pod: a.pod, ...tries };
        return { kind: 'error', message: `HTTP ${status}${res.body ? `: ${firstLine(res.body)}` : ''}`, status };
      }
      if (!a) return { kind: 'error', message: `HTTP 200 but the body is not the demo app's JSON: ${JSON.stringify(res.body.slice(0, 60))}`, status };
      return { kind: 'ok', app: a.app, version: a.version, pod: a.pod, callerIdentity: a.identity, status, ...tries };
    }
  }
}

interface DemoAnswer { app: string; version: string; pod: string; identity: string | null; headers: Record<string, unknown> }

/** The demo app's JSON answer, or undefined when the body is something else (e.g. a proxy's own answer). */
function demoAnswerOf(body: string): DemoAnswer | undefined {
  let a: { app?: unknown; version?: unknown; pod?: unknown; caller?: { identity?: unknown }; headers?: unknown };
  try {
    a = JSON.parse(body) as typeof a;
  } catch {
    return undefined;
  }
  if (typeof a !== 'object' || a === null || typeof a.pod !== 'string') return undefined;
  return {
    app: String(a.app ?? '?'), version: String(a.version ?? '?'), pod: a.pod,
    identity: typeof a.caller?.identity === 'string' ? a.caller.identity : null,
    headers: typeof a.headers === 'object' && a.headers !== null ? a.headers as Record<string, unknown> : {},
  };
}

/** The waypoint's try count the app saw, when it is a small positive whole number. */
function attemptsOf(headers: Record<string, unknown>): number | undefined {
  const v = headers[ATTEMPT_COUNT_HEADER];
  const n = typeof v === 'string' && /^\d{1,4}$/.test(v) ? Number(v) : NaN;
  return n >= 1 ? n : undefined;
}

function firstLine(body: string): string {
  return body.trim().split('\n')[0]!.slice(0, 80);
}

export class TrafficGenerator {
  private readonly stats: RouteStats[];
  private readonly completions: number[][];
  private readonly inFlight: number[];
  private readonly sockets = new Set<Socket>();
  private readonly pending = new Set<Promise<void>>();
  private timers: NodeJS.Timeout[] = [];
  private startedAt = 0;
  private stopped = false;
  private readonly rate: number;
  private readonly maxInFlight: number;
  private readonly timeoutMs: number;

  constructor(private readonly routes: readonly DemoRoute[], private readonly opts: TrafficOptions = {}) {
    this.rate = opts.ratePerRoute ?? DEFAULT_RATE_PER_ROUTE;
    this.maxInFlight = opts.maxInFlightPerRoute ?? DEFAULT_MAX_IN_FLIGHT_PER_ROUTE;
    this.timeoutMs = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    if (!(this.rate > 0 && this.rate <= 1000)) throw new RangeError(`rate per route must be in (0, 1000] requests per second, got ${this.rate}`);
    this.stats = routes.map((r) => emptyStats(r.name, r.expect, r.layer, r.label));
    this.completions = routes.map(() => []);
    this.inFlight = routes.map(() => 0);
  }

  start(): void {
    if (this.timers.length || this.stopped) return;
    this.startedAt = Date.now();
    const periodMs = 1000 / this.rate;
    this.routes.forEach((_, i) => {
      // Spread the routes over one period so their requests do not all leave at the same instant.
      const first = setTimeout(() => {
        this.fire(i);
        this.timers.push(setInterval(() => this.fire(i), periodMs));
      }, (periodMs * i) / this.routes.length);
      this.timers.push(first);
    });
  }

  /** Stops sending, ends open requests (they are not counted) and waits for them to settle. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
    for (const s of this.sockets) s.destroy();
    await Promise.allSettled([...this.pending]);
  }

  snapshot(now = Date.now()): RouteStats[] {
    const windowMs = Math.min(RATE_WINDOW_MS, Math.max(now - this.startedAt, 1));
    return this.stats.map((s, i) => {
      const recent = this.completions[i]!.filter((t) => t > now - RATE_WINDOW_MS).length;
      return structuredClone({ ...s, ratePerSec: this.startedAt ? (recent * 1000) / windowMs : 0 });
    });
  }

  private fire(i: number): void {
    if (this.stopped || this.inFlight[i]! >= this.maxInFlight) return;
    const route = this.routes[i]!;
    this.inFlight[i]!++;
    const own = new Set<Socket>();
    const p = sendOnce(route, this.timeoutMs, (s) => {
      own.add(s);
      this.sockets.add(s);
    })
      .then((outcome) => {
        if (!this.stopped) this.record(i, outcome);
      })
      .finally(() => {
        this.inFlight[i]!--;
        for (const s of own) this.sockets.delete(s);
        this.pending.delete(p);
      });
    this.pending.add(p);
  }

  private record(i: number, o: Outcome): void {
    const s = this.stats[i]!;
    const now = Date.now();
    const times = this.completions[i]!;
    times.push(now);
    while (times.length && times[0]! <= now - RATE_WINDOW_MS) times.shift();
    bump(s.statuses, o.status !== undefined ? String(o.status) : o.kind === 'denied' ? NOT_HTTP.refused : NOT_HTTP.failed);
    const attempts = o.kind === 'denied' ? undefined : o.attempts;
    if (attempts !== undefined && attempts > 1 && o.status !== undefined) {
      bump(s.retried, String(o.status));
      s.retries += attempts - 1;
    }
    if (o.kind === 'ok') {
      s.ok++;
      bump(s.apps, o.app);
      bump(s.versions, o.version);
      bump(s.pods, o.pod);
      bump(s.callerIdentities, o.callerIdentity ?? '');
    } else if (o.kind === 'denied') {
      s.denied++;
      bump(s.deniedReasons, o.reason, MAX_DISTINCT_MESSAGES);
    } else {
      s.errors++;
      if (o.pod !== undefined) bump(s.podFailures, o.pod, MAX_DISTINCT_MESSAGES);
      bump(s.errorMessages, o.message, MAX_DISTINCT_MESSAGES);
      s.lastError = o.message;
      this.opts.log?.debug({ route: s.route, err: o.message }, 'demo request failed');
    }
  }
}

export function emptyStats(route: string, expect: Expectation, layer: Layer = 'l4', label = route): RouteStats {
  return {
    route, expect, layer, label, ok: 0, denied: 0, errors: 0, ratePerSec: 0, apps: {}, versions: {}, pods: {}, callerIdentities: {}, deniedReasons: {},
    errorMessages: {}, statuses: {}, retried: {}, retries: 0, podFailures: {},
  };
}

function bump(m: Record<string, number>, key: string, maxKeys = Infinity): void {
  const k = key in m || Object.keys(m).length < maxKeys ? key : '(other)';
  m[k] = (m[k] ?? 0) + 1;
}
