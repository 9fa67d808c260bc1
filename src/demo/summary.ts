/**
 * The demo's live summary: one aligned line per route, readable at a glance, then what each component of the
 * mesh costs (CPU as a share of one core since the last sample, resident memory):
 *
 *   ✓ client → catalog.backend  ok 52  denied  0  err 0  5.0/s  catalog v1 26 / v2 26  seen as spiffe://cluster.local/ns/shop/sa/client
 *   …
 *   component        pid   cpu  memory
 *   controller      4242  0.6%  84 MiB
 *
 * `formatSummary` is pure (tests feed it fixed counts); `SummaryView` redraws it in place every interval on
 * a terminal, and appends plain blocks when the output is a file or a pipe.
 */
import type { RouteStats } from './traffic.js';

/** One process of the mesh, as LocalMesh.usage() gives it. */
export interface ComponentLine {
  /** "controller", "ztunnel/node-a", "app/shop/web-1/app:8080" */
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
}

const MARK = { asExpected: '✓', notAsExpected: '✗', nothingYet: '·' } as const;
const NO_IDENTITY = '(no mesh identity)';

/** Whether what a route saw is what the policies say: every answer as expected. */
export function routeMark(s: RouteStats): string {
  const total = s.ok + s.denied + s.errors;
  if (total === 0) return MARK.nothingYet;
  const expected = s.expect === 'ok' ? s.ok : s.denied;
  return expected === total ? MARK.asExpected : MARK.notAsExpected;
}

export function formatSummary(input: SummaryInput): string[] {
  const { routes } = input;
  const head = `Strait demo · ${formatElapsed(input.elapsedMs)}${input.final ? ' · final' : input.note ? ` · ${input.note}` : ''}`;
  const width = (k: 'ok' | 'denied' | 'errors') => Math.max(1, ...routes.map((s) => String(s[k]).length));
  const [okW, deniedW, errW] = [width('ok'), width('denied'), width('errors')];
  const rows = routes.map((s) => {
    const onlyRefused = s.ok === 0 && s.denied > 0;
    return {
      mark: routeMark(s),
      name: s.route,
      counts: `ok ${pad(s.ok, okW)}  denied ${pad(s.denied, deniedW)}  err ${pad(s.errors, errW)}`,
      rate: `${s.ratePerSec.toFixed(1)}/s`,
      answered: s.ok > 0 ? answeredBy(s) : '—',
      detail: s.ok > 0 ? seenAs(s) : onlyRefused ? top(s.deniedReasons) : s.errors > 0 ? 'no answer' : '',
    };
  });
  const w = (k: 'name' | 'rate' | 'answered') => Math.max(0, ...rows.map((r) => r[k].length));
  const lines = [head];
  for (const r of rows) {
    lines.push(`${r.mark} ${r.name.padEnd(w('name'))}  ${r.counts}  ${r.rate.padStart(w('rate'))}  ${r.answered.padEnd(w('answered'))}  ${r.detail}`.trimEnd());
  }
  // What did not fit in a line: errors, and refusals on routes that were also answered.
  for (const s of routes) {
    for (const [msg, n] of sorted(s.errorMessages).slice(0, 2)) lines.push(`  ! ${s.route}: ${n}× ${msg}`);
    if (s.ok > 0) for (const [msg, n] of sorted(s.deniedReasons).slice(0, 2)) lines.push(`  ! ${s.route}: ${n}× ${msg}`);
  }
  if (input.components && input.components.length > 0) lines.push(...formatComponents(input.components));
  lines.push(`${MARK.asExpected} as the policies say  ${MARK.notAsExpected} not as they say  ${MARK.nothingYet} no answer yet   (seen as = the caller's identity as the destination's ztunnel saw it)`);
  return lines;
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

/** "catalog v1 26 / v2 26": which app answered, and how the answers split between versions. */
function answeredBy(s: RouteStats): string {
  const apps = sorted(s.apps).map(([a]) => a).join('+');
  const versions = Object.entries(s.versions).sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }));
  return `${apps} ${versions.map(([v, n]) => `${v} ${n}`).join(' / ')}`;
}

function seenAs(s: RouteStats): string {
  const ids = sorted(s.callerIdentities);
  if (ids.length === 1) return `seen as ${ids[0]![0] || NO_IDENTITY}`;
  return `seen as ${ids.map(([id, n]) => `${id || NO_IDENTITY} ${n}`).join(', ')}`;
}

function top(m: Record<string, number>): string {
  return sorted(m)[0]?.[0] ?? '';
}

function sorted(m: Record<string, number>): [string, number][] {
  return Object.entries(m).sort(([ka, a], [kb, b]) => b - a || ka.localeCompare(kb));
}

function pad(n: number, width: number): string {
  return String(n).padStart(width);
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
