/** `--workers N|auto` (env STRAIT_WORKERS) of the ztunnel and the waypoint. Pure. */
import { availableParallelism } from 'node:os';
import { configFail } from '../../common/config-values.js';

/** As Istio's ztunnel (2 worker threads). */
export const DEFAULT_WORKERS = 2;
/** More processes than this is a typo, not a machine. */
export const MAX_WORKERS = 64;

/** 1 = one process exactly as without workers (no cluster); `auto` = the cores this process may use. */
export function parseWorkers(raw: string | undefined, cores: () => number = availableParallelism): number {
  if (raw === undefined) return DEFAULT_WORKERS;
  if (raw === 'auto') return Math.max(1, Math.min(MAX_WORKERS, cores()));
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isInteger(n) || n < 1 || n > MAX_WORKERS) throw configFail(`--workers: "${raw}" must be auto or a whole number from 1 to ${MAX_WORKERS}`);
  return n;
}
