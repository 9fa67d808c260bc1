/**
 * Whether a child of the local mesh is ready: its readiness URL answers 200 *and* the answer names the child's own
 * pid (PID_HEADER). A 200 from anything else on that address — another mesh's component, say — proves nothing and
 * is remembered, to say who holds the address when our child then fails to bind it.
 */
import { PID_HEADER } from '../common/admin.js';
import { errorMessage } from '../common/errors.js';

const POLL_INTERVAL_MS = 100;
const REQUEST_TIMEOUT_MS = 1_000;

export interface ReadyProbe {
  url: string;
  pid: number;
  /** True once the child has exited: stop waiting. */
  gone: () => boolean;
  timeoutMs: number;
}

export type ReadyOutcome =
  | { ready: true }
  | { ready: false; why: 'exited' | 'timeout'; last: string; /** pid (or "unknown") of another process that answered 200 */ answeredBy?: string };

export async function waitReady(p: ReadyProbe): Promise<ReadyOutcome> {
  const until = Date.now() + p.timeoutMs;
  let last = 'no answer yet';
  let answeredBy: string | undefined;
  const fail = (why: 'exited' | 'timeout'): ReadyOutcome => ({ ready: false, why, last, ...(answeredBy ? { answeredBy } : {}) });
  for (;;) {
    if (p.gone()) return fail('exited');
    if (Date.now() >= until) return fail('timeout');
    try {
      const res = await fetch(p.url, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      const body = (await res.text()).trim().slice(0, 200);
      const pid = res.headers.get(PID_HEADER);
      if (res.ok && pid === String(p.pid)) return { ready: true };
      if (res.ok) {
        answeredBy = pid ?? 'unknown';
        last = `200 from another process (${pid ? `pid ${pid}` : 'it does not say its pid'})`;
      } else {
        last = `${res.status} ${body}`;
      }
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause;
      last = cause ? `${errorMessage(err)}: ${errorMessage(cause)}` : errorMessage(err);
    }
    await new Promise((r) => setTimeout(r, POLL_INTERVAL_MS));
  }
}
