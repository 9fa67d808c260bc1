/**
 * Per-pod behaviour of the built-in demo app, from the pod's annotations: a share of requests (or the first N of each
 * request key, or every request during a recurring time window) answered with an error status, and a delay before
 * every answer. `strait up` reads them here (pure, no I/O) and passes them to `strait demo-app` as flags; the demo
 * app validates its flags with the same functions.
 */
import { parseDurationMs } from '../common/model/duration.js';

export const ANNOTATION_DEMO_FAIL_STATUS = 'strait.dev/demo-fail-status';
export const ANNOTATION_DEMO_FAIL_RATIO = 'strait.dev/demo-fail-ratio';
export const ANNOTATION_DEMO_FAIL_FIRST = 'strait.dev/demo-fail-first';
export const ANNOTATION_DEMO_DELAY_MS = 'strait.dev/demo-delay-ms';
export const ANNOTATION_DEMO_FAIL_WINDOW = 'strait.dev/demo-fail-window';
/** Every annotation the demo app reads. */
export const DEMO_ANNOTATIONS: readonly string[] = [
  ANNOTATION_DEMO_FAIL_STATUS, ANNOTATION_DEMO_FAIL_RATIO, ANNOTATION_DEMO_FAIL_FIRST, ANNOTATION_DEMO_DELAY_MS, ANNOTATION_DEMO_FAIL_WINDOW,
];

/** Longest delay the demo app waits, per pod and per request (`/delay/<ms>`): a test never waits forever. */
export const MAX_DEMO_DELAY_MS = 30_000;
/** Largest fail-first count: the per-key counters must not look like a leak. */
export const MAX_DEMO_FAIL_FIRST = 1_000_000;
/** Longest period of a fail window ("20s/40s": the 40 s): a day. */
export const MAX_DEMO_FAIL_PERIOD_MS = 24 * 3_600_000;
/** Shortest period of a fail window: shorter ones would be a ratio, and timers would not honour them. */
export const MIN_DEMO_FAIL_PERIOD_MS = 100;
/** The status failing requests get when only a ratio, a first count or a window is given. */
export const DEFAULT_DEMO_FAIL_STATUS = 503;

/** What a pod's demo app does to requests (every path but /healthz). All absent: nothing. */
export interface DemoBehaviour {
  /** Status of the requests that fail (200-599). */
  failStatus?: number;
  /** Share of requests that fail, 0..1, spread evenly (deterministic: 0.5 fails every second request). */
  failRatio?: number;
  /** The first N requests of each `x-request-key` value fail, later ones do not. */
  failFirst?: number;
  /** Every answer waits this long first. */
  delayMs?: number;
  /** Every request fails during the first `failMs` of every `periodMs`, counted from the app's start. */
  failWindow?: DemoFailWindow;
}

/** "20s/40s": failing for 20 s, then answering normally for 20 s, again and again from the app's start. */
export interface DemoFailWindow {
  failMs: number;
  periodMs: number;
}

/** A status the demo app can answer with: 200-599 (1xx are not final answers). */
export function parseDemoStatus(v: string): number | undefined {
  if (!/^\d{3}$/.test(v.trim())) return undefined;
  const n = Number(v);
  return n >= 200 && n <= 599 ? n : undefined;
}

export function parseDemoRatio(v: string): number | undefined {
  if (!/^[0-9.eE+-]+$/.test(v.trim())) return undefined;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 && n <= 1 ? n : undefined;
}

export function parseDemoCount(v: string): number | undefined {
  if (!/^\d+$/.test(v.trim())) return undefined;
  const n = Number(v);
  return n <= MAX_DEMO_FAIL_FIRST ? n : undefined;
}

export function parseDemoDelayMs(v: string): number | undefined {
  if (!/^\d+$/.test(v.trim())) return undefined;
  const n = Number(v);
  return n <= MAX_DEMO_DELAY_MS ? n : undefined;
}

/**
 * "FAIL/PERIOD" as two durations ("20s/40s", "1m/5m", "500ms/2s"): 0 < FAIL ≤ PERIOD, PERIOD from 100 ms to 24 h.
 * Whole milliseconds.
 */
export function parseDemoFailWindow(v: string): DemoFailWindow | undefined {
  const m = /^\s*([^/\s]+)\s*\/\s*([^/\s]+)\s*$/.exec(v);
  if (!m) return undefined;
  const failMs = parseDurationMs(m[1]!);
  const periodMs = parseDurationMs(m[2]!);
  if (failMs === undefined || periodMs === undefined || !Number.isInteger(failMs) || !Number.isInteger(periodMs)) return undefined;
  if (failMs <= 0 || failMs > periodMs || periodMs < MIN_DEMO_FAIL_PERIOD_MS || periodMs > MAX_DEMO_FAIL_PERIOD_MS) return undefined;
  return { failMs, periodMs };
}

/** The annotation's (and flag's) spelling of a window, in milliseconds so it reads back exactly. */
export function formatDemoFailWindow(w: DemoFailWindow): string {
  return `${w.failMs}ms/${w.periodMs}ms`;
}

/**
 * The demo behaviour a pod's annotations ask for, or what is wrong with them (each message names the pod's
 * annotation, its value and the values allowed).
 */
export function demoBehaviourOf(annotations: Readonly<Record<string, string>>, what: string): { behaviour: DemoBehaviour; errors: string[] } {
  const errors: string[] = [];
  const behaviour: DemoBehaviour = {};
  const read = <T>(key: string, parse: (v: string) => T | undefined, allowed: string): T | undefined => {
    const v = annotations[key];
    if (v === undefined) return undefined;
    const parsed = parse(String(v));
    if (parsed === undefined) errors.push(`${what}: annotation ${key}: "${v}" is not ${allowed}; fix or remove the annotation`);
    return parsed;
  };
  const status = read(ANNOTATION_DEMO_FAIL_STATUS, parseDemoStatus, 'an HTTP status from 200 to 599 (e.g. "503")');
  const ratio = read(ANNOTATION_DEMO_FAIL_RATIO, parseDemoRatio, 'a share from 0 to 1 (e.g. "0.5"; "1" fails every request)');
  const first = read(ANNOTATION_DEMO_FAIL_FIRST, parseDemoCount, `a count from 0 to ${MAX_DEMO_FAIL_FIRST} (e.g. "2")`);
  const delay = read(ANNOTATION_DEMO_DELAY_MS, parseDemoDelayMs, `milliseconds from 0 to ${MAX_DEMO_DELAY_MS} (e.g. "250")`);
  const window = read(ANNOTATION_DEMO_FAIL_WINDOW, parseDemoFailWindow,
    'FAIL/PERIOD, two durations with 0 < FAIL ≤ PERIOD and PERIOD from 100ms to 24h (e.g. "20s/40s": failing 20 s of every 40 s)');
  if (status !== undefined) behaviour.failStatus = status;
  if (ratio !== undefined) behaviour.failRatio = ratio;
  if (first !== undefined) behaviour.failFirst = first;
  if (delay !== undefined) behaviour.delayMs = delay;
  if (window !== undefined) behaviour.failWindow = window;
  return { behaviour, errors };
}

/** The `strait demo-app` flags that give it this behaviour. */
export function demoBehaviourArgs(b: DemoBehaviour): string[] {
  return [
    ...(b.failStatus !== undefined ? ['--fail-status', String(b.failStatus)] : []),
    ...(b.failRatio !== undefined ? ['--fail-ratio', String(b.failRatio)] : []),
    ...(b.failFirst !== undefined ? ['--fail-first', String(b.failFirst)] : []),
    ...(b.delayMs !== undefined ? ['--delay-ms', String(b.delayMs)] : []),
    ...(b.failWindow !== undefined ? ['--fail-window', formatDemoFailWindow(b.failWindow)] : []),
  ];
}
