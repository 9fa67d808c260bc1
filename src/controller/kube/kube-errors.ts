/**
 * Reading the HTTP status out of an error from the Kubernetes client (StraitError STRAIT_ERR_KUBE carries `status`
 * and `reason`), and bounding a call in time.
 */
import { StraitError } from '../../common/errors.js';

/** The API server's HTTP status of a failed call (404, 409, ...), if the error carries one. */
export function kubeStatus(err: unknown): number | undefined {
  const s = (err as { status?: unknown; statusCode?: unknown; code?: unknown } | null | undefined);
  if (!s) return undefined;
  if (typeof s.status === 'number') return s.status;
  if (typeof s.statusCode === 'number') return s.statusCode;
  if (typeof s.code === 'number') return s.code;
  return undefined;
}

export const isNotFound = (err: unknown) => kubeStatus(err) === 404;
export const isConflict = (err: unknown) => kubeStatus(err) === 409;

/** Rejects with STRAIT_ERR_KUBE when `p` takes longer than `ms` (the call itself is left to finish or fail). */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StraitError('STRAIT_ERR_KUBE', `${what}: no answer from the Kubernetes API server within ${ms} ms; check that it is reachable from this pod`)), ms);
    timer.unref();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
