/**
 * The demo's live summary, readable at a glance in 80-120 columns: the L4 routes (the ztunnels alone), the L7 routes
 * (through a waypoint) with the status codes they got, the retries the waypoint made and how the answers split
 * between versions or pods, the waypoint's outlier ejections under the route they concern, then what each component
 * of the mesh costs (CPU as a share of one core since the last sample, resident memory):
 *
 *   L4 · ztunnels                ok  denied  err   rate  answered by            caller, as the destination saw it
 *   ✓ client → catalog.backend   52       0    0  5.0/s  catalog v1 26 / v2 26  spiffe://cluster.local/ns/shop/sa/client
 *   L7 · waypoint store/waypoint  answers        retried   rate  answered by
 *   ✓ client → payments.store     200×52         16 → 200  5.0/s  payments v1 52
 *   ✓ client → inventory.store    200×49 503×3          0  5.0/s  inventory-1 40 (82%) / inventory-2 9 (18%)
 *     ⏏ outlier detection: inventory-2 ejected (consecutive 5xx), back in 6s · ejections so far: inventory-2 1×
 *   component        pid   cpu  memory
 *   controller      4242  0.6%  84 MiB
 *
 * `formatSummary` is pure (tests feed it fixed counts); `SummaryView` redraws it in place every interval on
 * a terminal, and appends plain blocks when the output is a file or a pipe.
 */
import type { RouteStats } from './traffic.js';
import type { OutlierView, WaypointStatus } from './waypoint-status.js';

/** One process of the mesh, as LocalMesh.usage() gives it. */
export interface ComponentLine {
  /** "controller", "ztunnel/node-a", "waypoint/store/waypoint", "app/shop/web-1/app:8080" */
  name: string;
  pid: number | null;
  status: string;
  restarts: number;
  cpuPercent: number | null;
  rssBytes: number | null;
}

export const DEFAULT_SUMMARY_INTERVAL_MS = 2_000;

export interface SummaryInput {
  elapsedMs: number;
  routes: readonly RouteStats[];
  /** Shown after the elapsed time in the first line while running (for example how to stop). */
  note?: string;
  final?: boolean;
  /** CPU and memory per component; the demo apps are summed into one line. */
  components?: readonly ComponentLine[];
  /** The waypoints ("ns/name") the L7 routes go through, named in the L7 table's title. */
  waypoints?: readonly string[];
  /** The waypoints' outlier state (and which could not be asked). */
  waypointStatus?: WaypointStatus;
  /** Now, for "back in 6s" (default Date.now()). */
  nowMs?: number;
}

const MARK = { asExpected: '✓', notAsExpected: '✗', nothingYet: '·' } as const;
const NO_IDENTITY = '(no mesh identity)';
const EJECTED = '⏏';
const REASONS: Readonly<Record<string, string>> = { consecutive_5xx: 'consecutive 5xx', consecutive_gateway_failure: 'consecutive gateway errors' };

/**
 * Whether what a route saw is what the manifests say: every answer as expected (`outlier`: answered, and every
 * failure a 5xx that a pod gave itself, none made by the mesh).
 */
export function routeMark(s: RouteStats): string {
  const total = s.ok + s.denied + s.errors;
  if (total === 0) return MARK.nothingYet;
  if (s.expect === 'outlier') {
    const podFailures = Object.values(s.podFailures).reduce((n, k) => n + k, 0);
    const allFromPods = podFailures === s.errors && Object.keys(s.statuses).every((k) => k === '200' || /^5\d\d$/.test(k));
    return s.ok > 0 && s.denied === 0 && allFromPods ? MARK.asExpected : MARK.notAsExpected;
  }
  const expected = s.expect === 'ok' ? s.ok : s.denied;
  return expected === total ? MARK.asExpected : MARK.notAsExpected;
}

export function formatSummary(input: SummaryInput): string[] {
  const { routes } = input;
  const now = input.nowMs ?? Date.now();
  const head = `Strait demo · ${formatElapsed(input.elapsedMs)}${input.final ? ' · final' : input.note ? ` · ${input.note}` : ''}`;
  const lines = [head];
  const l4 = routes.filter((s) => s.layer !== 'l7');
  const l7 = routes.filter((s) => s.layer === 'l7');
  if (l4.length > 0) lines.push(...l4Table(l4));
  const outliers = input.waypointStatus?.outliers ?? [];
  if (l7.length > 0) {
    const title = `L7 · waypoint${input.waypoints && input.waypoints.length > 0 ? ` ${input.waypoints.join(', ')}` : ''}`;
    lines.push(...l7Table(l7, title, outliers, now));
  }
  // Outlier state of clusters no route of the demo names.
  const shown = new Set(l7.map((s) => s.label));
  for (const o of outliers) if (!shown.has(o.service)) lines.push(`  ${outlierLine(o, now, true)}`);
  for (const [w, err] of Object.entries(input.waypointStatus?.errors ?? {})) lines.push(`  ! waypoint ${w}: ${err}`);
  // What did not fit in a line: errors, and refusals on routes that were also answered (not the failures an
  // outlier route expects from its failing pod).
  for (const s of routes) {
    if (s.expect !== 'outlier' || routeMark(s) !== MARK.asExpected) {
      for (const [msg, n] of sorted(s.errorMessages).slice(0, 2)) lines.push(`  ! ${s.route}: ${n}× ${msg}`);
    }
    if (s.ok > 0) for (const [msg, n] of sorted(s.deniedReasons).slice(0, 2)) lines.push(`  ! ${s.route}: ${n}× ${msg}`);
  }
  if (input.components && input.components.length > 0) lines.push(...formatComponents(input.components));
  lines.push(`${MARK.asExpected} as the manifests say  ${MARK.notAsExpected} not as they say  ${MARK.nothingYet} no answer yet`
    + (l7.length > 0 ? '   retried: answers after more than one try at the waypoint' : ''));
  return lines;
}

/** The routes through the ztunnels alone: counts, rate, who answered, and the caller as the destination saw it. */
function l4Table(routes: readonly RouteStats[]): string[] {
  const rows = routes.map((s) => ({
    mark: routeMark(s), name: s.route, ok: String(s.ok), denied: String(s.denied), err: String(s.errors), rate: rate(s),
    answered: s.ok > 0 ? byVersion(s, false) : '—',
    detail: s.ok > 0 ? seenAs(s) : s.denied > 0 ? top(s.deniedReasons) : s.errors > 0 ? 'no answer' : '',
  }));
  const title = 'L4 · ztunnels';
  const w = (k: 'name' | 'ok' | 'denied' | 'err' | 'rate' | 'answered', h: string) => Math.max(h.length, ...rows.map((r) => r[k].length));
  const nw = Math.max(title.length - 2, ...rows.map((r) => r.name.length));
  const [ow, dw, ew, rw, aw] = [w('ok', 'ok'), w('denied', 'denied'), w('err', 'err'), w('rate', 'rate'), w('answered', 'answered by')];
  const line = (first: string, ok: string, denied: string, err: string, r: string, answered: string, detail: string) =>
    `${first}  ${ok.padStart(ow)}  ${denied.padStart(dw)}  ${err.padStart(ew)}  ${r.padStart(rw)}  ${answered.padEnd(aw)}  ${detail}`.trimEnd();
  return [
    line(title.padEnd(nw + 2), 'ok', 'denied', 'err', 'rate', 'answered by', 'caller, as the destination saw it'),
    ...rows.map((r) => line(`${r.mark} ${r.name.padEnd(nw)}`, r.ok, r.denied, r.err, r.rate, r.answered, r.detail)),
  ];
}

/**
 * The routes through a waypoint: the statuses the caller got, the answers that took retries (and how they ended),
 * rate, and how the answers split between versions (or between pods, when one version has several); each followed by
 * the outlier state of the clusters of its service.
 */
function l7Table(routes: readonly RouteStats[], title: string, outliers: readonly OutlierView[], now: number): string[] {
  const rows = routes.map((s) => ({
    s, mark: routeMark(s), name: s.route, answers: statusesOf(s) || '—', retried: retriedOf(s), rate: rate(s),
    answered: s.ok > 0 ? split(s) : s.denied > 0 ? top(s.deniedReasons) : s.errors > 0 ? 'no answer' : '',
  }));
  const w = (k: 'answers' | 'retried' | 'rate', h: string) => Math.max(h.length, ...rows.map((r) => r[k].length));
  const nw = Math.max(title.length - 2, ...rows.map((r) => r.name.length));
  const [sw, tw, rw] = [w('answers', 'answers'), w('retried', 'retried'), w('rate', 'rate')];
  const line = (first: string, answers: string, retried: string, r: string, answered: string) =>
    `${first}  ${answers.padEnd(sw)}  ${retried.padStart(tw)}  ${r.padStart(rw)}  ${answered}`.trimEnd();
  const out = [line(title.padEnd(nw + 2), 'answers', 'retried', 'rate', 'answered by')];
  const placed = new Set<string>();
  for (const r of rows) {
    out.push(line(`${r.mark} ${r.name.padEnd(nw)}`, r.answers, r.retried, r.rate, r.answered));
    if (placed.has(r.s.label)) continue;
    placed.add(r.s.label);
    for (const o of outliers) if (o.service === r.s.label) out.push(`    ${outlierLine(o, now, false)}`);
  }
  return out;
}

/**
 * "⏏ outlier detection: inventory-2 ejected (consecutive 5xx), back in 6s · ejections so far: inventory-2 3×".
 * `named`: say which cluster (when the line is not under a route of its service).
 */
export function outlierLine(o: OutlierView, now: number, named: boolean): string {
  const where = named ? ` on ${o.service}:${o.port}${o.subset ? ` subset ${o.subset}` : ''} (waypoint ${o.waypoint})` : '';
  const out = o.endpoints.filter((e) => e.ejected);
  let state: string;
  if (out.length > 0) {
    state = out.map((e) => {
      const back = e.untilMs !== undefined ? Math.ceil((e.untilMs - now) / 1000) : undefined;
      const reason = e.reason ? ` (${REASONS[e.reason] ?? e.reason})` : '';
      return `${e.pod} ejected${reason}${back === undefined ? '' : back > 0 ? `, back in ${back}s` : ', due back now'}`;
    }).join('; ');
  } else {
    state = o.endpoints.length === 0 ? 'no endpoints' : `${o.endpoints.map((e) => e.pod).join(', ')} in service`;
  }
  const past = o.endpoints.filter((e) => e.ejections > 0);
  const history = past.length > 0 ? `ejections so far: ${past.map((e) => `${e.pod} ${e.ejections}×`).join(', ')}` : 'no ejection yet';
  return `${EJECTED} outlier detection${where}: ${state} · ${history}`;
}

/** An aligned table: the controller, each ztunnel, then the demo apps together. */
export function formatComponents(components: readonly ComponentLine[]): string[] {
  const apps = components.filter((c) => c.name.startsWith('app/'));
  const rows = components.filter((c) => !c.name.startsWith('app/')).map((c) => ({
    name: c.name.replace('/', ' '),
    pid: c.pid === null ? '—' : String(c.pid),
    cpu: c.status !== 'running' ? '' : c.cpuPercent === null ? '…' : `${c.cpuPercent.toFixed(1)}%`,
    mem: c.status !== 'running' || c.rssBytes === null ? '' : mib(c.rssBytes),
    note: [c.status !== 'running' ? c.status : '', c.restarts > 0 ? `restarted ${c.restarts}×` : ''].filter(Boolean).join(', '),
  }));
  if (apps.length > 0) {
    const running = apps.filter((a) => a.status === 'running');
    const cpuKnown = running.every((a) => a.cpuPercent !== null);
    const restarts = apps.reduce((n, a) => n + a.restarts, 0);
    rows.push({
      name: `${apps.length} demo app${apps.length === 1 ? '' : 's'}`, pid: '',
      cpu: running.length === 0 ? '' : cpuKnown ? `${running.reduce((n, a) => n + a.cpuPercent!, 0).toFixed(1)}%` : '…',
      mem: running.length === 0 ? '' : mib(running.reduce((n, a) => n + (a.rssBytes ?? 0), 0)),
      note: [running.length < apps.length ? `${apps.length - running.length} not running` : '', restarts > 0 ? `restarted ${restarts}×` : ''].filter(Boolean).join(', '),
    });
  }
  const w = (k: 'name' | 'pid' | 'cpu' | 'mem', head: string) => Math.max(head.length, ...rows.map((r) => r[k].length));
  const [nw, pw, cw, mw] = [w('name', 'component'), w('pid', 'pid'), w('cpu', 'cpu'), w('mem', 'memory')];
  const line = (name: string, pid: string, cpu: string, mem: string, note: string) =>
    `${name.padEnd(nw)}  ${pid.padStart(pw)}  ${cpu.padStart(cw)}  ${mem.padStart(mw)}  ${note}`.trimEnd();
  return [line('component', 'pid', 'cpu', 'memory', ''), ...rows.map((r) => line(r.name, r.pid, r.cpu, r.mem, r.note))];
}

function mib(bytes: number): string {
  return `${Math.round(bytes / (1024 * 1024))} MiB`;
}

function rate(s: RouteStats): string {
  return `${s.ratePerSec.toFixed(1)}/s`;
}

/** "catalog v1 26 / v2 26": which app answered, and how the answers split between versions (with shares: "(90%)"). */
function byVersion(s: RouteStats, shares: boolean): string {
  const apps = sorted(s.apps).map(([a]) => a).join('+');
  return `${apps} ${counts(s.versions, s.ok, shares)}`;
}

/** By version, or by pod when a version has several pods (the versions would not tell the pods apart). */
function split(s: RouteStats): string {
  return Object.keys(s.pods).length > Object.keys(s.versions).length ? counts(s.pods, s.ok, true) : byVersion(s, true);
}

function counts(m: Record<string, number>, total: number, shares: boolean): string {
  const entries = Object.entries(m).sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }));
  const share = (n: number) => (shares && entries.length > 1 && total > 0 ? ` (${Math.round((100 * n) / total)}%)` : '');
  return entries.map(([k, n]) => `${k} ${n}${share(n)}`).join(' / ');
}

/** "200×291 503×9": statuses in code order, outcomes without an HTTP answer last. */
function statusesOf(s: RouteStats): string {
  return Object.entries(s.statuses)
    .sort(([a], [b]) => (/^\d/.test(a) ? 0 : 1) - (/^\d/.test(b) ? 0 : 1) || a.localeCompare(b, 'en', { numeric: true }))
    .map(([k, n]) => `${k}×${n}`).join(' ');
}

/** "93 → 200": answers that needed retries, by how they ended; "—" when no request reached a pod. */
function retriedOf(s: RouteStats): string {
  const entries = Object.entries(s.retried).sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }));
  if (entries.length > 0) return entries.map(([status, n]) => `${n} → ${status}`).join(', ');
  const reachedPods = s.ok + Object.values(s.podFailures).reduce((n, k) => n + k, 0);
  return reachedPods > 0 ? '0' : '—';
}

function seenAs(s: RouteStats): string {
  const ids = sorted(s.callerIdentities);
  if (ids.length === 1) return ids[0]![0] || NO_IDENTITY;
  return ids.map(([id, n]) => `${id || NO_IDENTITY} ${n}`).join(', ');
}

function top(m: Record<string, number>): string {
  return sorted(m)[0]?.[0] ?? '';
}

function sorted(m: Record<string, number>): [string, number][] {
  return Object.entries(m).sort(([ka, a], [kb, b]) => b - a || ka.localeCompare(kb));
}

export function formatElapsed(ms: number): string {
  const s = Math.floor(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

/**
 * Prints the summary every interval. On a terminal it redraws the previous block in place (cursor up, clear
 * to the end of the screen); otherwise it appends each block after a blank line.
 */
export class SummaryView {
  private timer: NodeJS.Timeout | undefined;
  private drawnRows = 0;

  constructor(
    private readonly out: NodeJS.WritableStream & { isTTY?: boolean; columns?: number },
    private readonly source: () => SummaryInput,
    private readonly intervalMs = DEFAULT_SUMMARY_INTERVAL_MS,
  ) {}

  start(): void {
    if (this.timer) return;
    this.draw();
    this.timer = setInterval(() => this.draw(), this.intervalMs);
  }

  /** Stops redrawing and prints the last block, marked final. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.draw(true);
    this.drawnRows = 0;
  }

  private draw(final = false): void {
    const lines = formatSummary({ ...this.source(), ...(final ? { final: true } : {}) });
    if (this.out.isTTY) {
      const erase = this.drawnRows > 0 ? `\x1b[${this.drawnRows}F\x1b[0J` : '';
      this.out.write(erase + lines.join('\n') + '\n');
      const cols = this.out.columns && this.out.columns > 0 ? this.out.columns : Infinity;
      this.drawnRows = lines.reduce((n, l) => n + Math.max(1, Math.ceil([...l].length / cols)), 0);
    } else {
      this.out.write(lines.join('\n') + '\n\n');
    }
  }
}
