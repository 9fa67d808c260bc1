/**
 * Output as kubectl prints it: tables with upper-case headers and columns three spaces apart, ages as kubectl's
 * HumanDuration, `-o json` (four-space indent) and `-o yaml`. Pure functions; commands write the result.
 */
import { stringify } from 'yaml';
import type { OutputFormat } from './options.js';

/** Columns are left-aligned and three spaces apart; the last column is not padded (kubectl's tabwriter settings). */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [headers, ...rows];
  const widths = headers.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => headers.map((_, i) => (i === headers.length - 1 ? r[i] ?? '' : (r[i] ?? '').padEnd(widths[i]! + 3))).join('').trimEnd() + '\n').join('');
}

export function formatJson(value: unknown): string {
  return JSON.stringify(value, null, 4) + '\n';
}

export function formatYaml(value: unknown): string {
  return stringify(value, { lineWidth: 0 });
}

/** json or yaml of a value (never called with table). */
export function formatData(format: Exclude<OutputFormat, 'table'>, value: unknown): string {
  return format === 'json' ? formatJson(value) : formatYaml(value);
}

/** Kubernetes' List wrapper, as `kubectl get -o json` prints several objects. */
export function asList(items: unknown[]): { apiVersion: 'v1'; kind: 'List'; items: unknown[]; metadata: { resourceVersion: '' } } {
  return { apiVersion: 'v1', kind: 'List', items, metadata: { resourceVersion: '' } };
}

/**
 * An age as kubectl shows it (HumanDuration): 95s, 3m12s, 45m, 5h3m, 30h, 3d5h, 45d, 2y30d, 9y. Negative ages
 * (clock skew) read 0s; more than a second into the future reads <invalid>, as kubectl's.
 */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  const both = (a: number, ua: string, b: number, ub: string) => (b === 0 ? `${a}${ua}` : `${a}${ua}${b}${ub}`);
  if (minutes < 10) return both(minutes, 'm', seconds % 60, 's');
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return both(hours, 'h', minutes % 60, 'm');
  if (hours < 48) return `${hours}h`;
  const days = Math.floor(hours / 24);
  if (hours < 24 * 8) return both(days, 'd', hours % 24, 'h');
  if (days < 365 * 2) return `${days}d`;
  const years = Math.floor(days / 365);
  if (days < 365 * 8) return both(years, 'y', days % 365, 'd');
  return `${years}y`;
}

/** Age of an ISO timestamp at `now`; `<unknown>` when there is none (kubectl's word). */
export function age(iso: string | undefined | null, now: number): string {
  if (!iso) return '<unknown>';
  const t = Date.parse(iso);
  return Number.isNaN(t) ? '<unknown>' : humanDuration(now - t);
}
