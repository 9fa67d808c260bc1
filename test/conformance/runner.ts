/**
 * Runs the server-role case table against a target: one fresh connection per case, a few cases at a time, each
 * bounded in time; and prints the results the way h2spec does (a group per section, a mark per case, the
 * reason for each failure), with the counts of several targets side by side.
 */
import { H2Peer } from '../helpers/h2-peer.js';
import { makeContext, type ServerCase, type ServerTarget } from './case.js';
import { GENERIC_CASES } from './server-cases-generic.js';
import { HTTP2_CASES } from './server-cases-http2.js';
import { HPACK_CASES } from './server-cases-hpack.js';
import { EXTRA_CASES } from './server-cases-connect.js';

/** Every server-role case: h2spec's generic, http2 and hpack groups, then the CONNECT and field cases. */
export const SERVER_CASES: ServerCase[] = [...GENERIC_CASES, ...HTTP2_CASES, ...HPACK_CASES, ...EXTRA_CASES];

export type Status = 'pass' | 'fail' | 'skip';

export interface CaseResult {
  id: string;
  case: ServerCase;
  status: Status;
  detail: string;
  /** A failure h2spec would count as a pass (see Verdict). */
  lenient?: boolean;
  ms: number;
}

export interface RunOptions {
  /** How long each wait for the server may take (the suite's default is 2 s). */
  timeoutMs?: number;
  /** Cases run at once, each on its own connection. */
  concurrency?: number;
  /** Only cases whose id starts with one of these. */
  only?: string[];
  onResult?: (r: CaseResult) => void;
}

export async function runServerCase(target: ServerTarget, c: ServerCase, timeoutMs: number): Promise<CaseResult> {
  const started = Date.now();
  const done = (status: Status, detail: string): CaseResult => ({ id: c.id, case: c, status, detail, ms: Date.now() - started });
  if (!c.connectOnly.applies) return done('skip', `does not apply to a CONNECT-only server: ${c.connectOnly.why}`);
  let peer: H2Peer;
  try {
    peer = await H2Peer.connect({ host: target.host, port: target.port, ...(target.tls !== undefined ? { tls: target.tls } : {}), timeoutMs: 5000 });
  } catch (err) {
    return done('fail', `cannot connect: ${(err as Error).message}`);
  }
  // A case waits at most a few times `timeoutMs`; this bounds a case that would wait for ever.
  let guard: NodeJS.Timeout | undefined;
  try {
    const verdict = await Promise.race([
      c.run(makeContext(peer, target, timeoutMs)),
      new Promise<never>((_, reject) => {
        guard = setTimeout(() => reject(new Error(`case took longer than ${8 * timeoutMs + 5000} ms`)), 8 * timeoutMs + 5000);
      }),
    ]);
    if (verdict.skip === true) return done('skip', verdict.detail);
    const r = done(verdict.pass ? 'pass' : 'fail', verdict.detail);
    if (verdict.lenient === true) r.lenient = true;
    return r;
  } catch (err) {
    return done('fail', `error: ${(err as Error).message}`);
  } finally {
    clearTimeout(guard);
    peer.destroy();
  }
}

export async function runServerCases(target: ServerTarget, opts: RunOptions = {}, cases: ServerCase[] = SERVER_CASES): Promise<CaseResult[]> {
  const selected = opts.only === undefined ? cases : cases.filter((c) => opts.only!.some((p) => c.id.startsWith(p)));
  const timeoutMs = opts.timeoutMs ?? 1000;
  const results: CaseResult[] = new Array(selected.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < selected.length) {
      const i = next++;
      const r = await runServerCase(target, selected[i]!, timeoutMs);
      results[i] = r;
      opts.onResult?.(r);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 4) }, worker));
  return results;
}

export interface Counts {
  total: number;
  pass: number;
  fail: number;
  skip: number;
  /** Failures h2spec would count as passes. */
  lenient: number;
}

export function countResults(results: Array<{ status: Status; lenient?: boolean }>): Counts {
  const c = { total: results.length, pass: 0, fail: 0, skip: 0, lenient: 0 };
  for (const r of results) {
    c[r.status]++;
    if (r.status === 'fail' && r.lenient === true) c.lenient++;
  }
  return c;
}

/** The section part of an id: "http2/6.5.3/2" → "http2/6.5.3". */
function sectionOf(id: string): string {
  return id.slice(0, id.lastIndexOf('/'));
}

/** An h2spec-like listing of one target's results. */
export function formatResults(name: string, results: CaseResult[], opts: { color?: boolean } = {}): string {
  const paint = (code: number, s: string): string => (opts.color === true ? `\x1b[${code}m${s}\x1b[0m` : s);
  const lines: string[] = [name, ''];
  let section = '';
  for (const r of results) {
    const s = sectionOf(r.id);
    if (s !== section) {
      section = s;
      lines.push(`  ${s}`);
    }
    const n = r.id.slice(r.id.lastIndexOf('/') + 1);
    const mark = r.status === 'pass' ? paint(32, '✔') : r.status === 'skip' ? paint(33, '-') : paint(31, '×');
    lines.push(`    ${mark} ${n}: ${r.case.description}`);
    if (r.status === 'fail') {
      lines.push(`      -> expected: ${r.case.expect}`);
      lines.push(`         actual:   ${r.detail}`);
    } else if (r.status === 'skip') {
      lines.push(`      (skipped: ${r.detail})`);
    }
  }
  const c = countResults(results);
  lines.push('', `${c.total} tests, ${c.pass} passed, ${c.skip} skipped, ${c.fail} failed` +
    (c.lenient > 0 ? ` (${c.lenient} of the failures only by error code: h2spec would count ${c.pass + c.lenient} passed)` : ''));
  return lines.join('\n');
}

/** Passed/total per group for several targets, side by side ([h2spec: n] counts wrong-code-then-close as passes). */
export function formatComparison(runs: Array<{ name: string; results: CaseResult[] }>): string {
  const groups = [...new Set(runs.flatMap((r) => r.results.map((x) => x.case.group)))];
  const header = ['group', ...runs.map((r) => r.name)];
  const rows: string[][] = [];
  for (const g of [...groups, 'all']) {
    rows.push([g, ...runs.map((r) => {
      const c = countResults(r.results.filter((x) => g === 'all' || x.case.group === g));
      return `${c.pass}/${c.total}${c.lenient > 0 ? ` [h2spec: ${c.pass + c.lenient}]` : ''}${c.skip > 0 ? ` (${c.skip} skipped)` : ''}`;
    })]);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** The failures grouped by the area of the rule they check, with the rule's section: for reports and issues. */
export function formatFailuresByArea(name: string, results: Array<{ id: string; status: Status; detail: string; case: { area: string; rfc: string; description: string } }>): string {
  const byArea = new Map<string, string[]>();
  for (const r of results) {
    if (r.status !== 'fail') continue;
    const list = byArea.get(r.case.area) ?? [];
    list.push(`    ${r.id} (${r.case.rfc}) ${r.case.description}: ${r.detail}`);
    byArea.set(r.case.area, list);
  }
  if (byArea.size === 0) return `${name}: no failures`;
  const lines = [`${name}: failures by area`];
  for (const [area, list] of [...byArea].sort(([a], [b]) => a.localeCompare(b))) lines.push(`  ${area} (${list.length})`, ...list);
  return lines.join('\n');
}
