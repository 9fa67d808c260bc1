/**
 * Request/answer pairs over one IPC channel, both ways (worker → primary: certificates; primary → worker: metrics,
 * config dump, connections).
 * Invariants: every pending request is answered, times out, or fails when the channel closes, exactly once; at most
 * MAX_PENDING_REQUESTS are pending; an answer with an unknown id is ignored (it came after its timeout).
 */
import { ERROR_CODES, StraitError, errorMessage, type ErrorCode } from '../../common/errors.js';
import { MAX_PENDING_REQUESTS, REQUEST_TIMEOUT_MS } from './protocol.js';

type Res = { t: 'res'; id: number; ok: true; body: unknown } | { t: 'res'; id: number; ok: false; code: string; message: string };
type Req = { t: 'req'; id: number; what: string; arg?: unknown };

export type RequestHandler = (arg: unknown) => Promise<unknown> | unknown;

export class Requests {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private closed = false;

  /** `send` writes one message on the channel; `peer` names the other side in errors ("worker 2", "the primary"). */
  constructor(private readonly send: (m: Req | Res) => void, private readonly peer: string, private readonly handlers: Record<string, RequestHandler> = {}) {}

  request<T>(what: string, arg?: unknown, timeoutMs = REQUEST_TIMEOUT_MS): Promise<T> {
    if (this.closed) return Promise.reject(new StraitError('STRAIT_ERR_WORKER', `cannot ask ${this.peer} for ${what}: the channel is closed`));
    if (this.pending.size >= MAX_PENDING_REQUESTS) return Promise.reject(new StraitError('STRAIT_ERR_WORKER', `cannot ask ${this.peer} for ${what}: ${MAX_PENDING_REQUESTS} requests are pending already`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new StraitError('STRAIT_ERR_WORKER', `${this.peer} did not answer the request for ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      try {
        this.send({ t: 'req', id, what, ...(arg === undefined ? {} : { arg }) });
      } catch (err) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new StraitError('STRAIT_ERR_WORKER', `cannot ask ${this.peer} for ${what}: ${errorMessage(err)}`, { cause: err }));
      }
    });
  }

  /** Takes a message off the channel; true when it was a request or an answer (handled here). */
  handle(m: { t: string }): boolean {
    if (m.t === 'res') {
      const r = m as Res;
      const p = this.pending.get(r.id);
      if (!p) return true;
      this.pending.delete(r.id);
      clearTimeout(p.timer);
      if (r.ok) p.resolve(r.body);
      else p.reject(new StraitError(isCode(r.code) ? r.code : 'STRAIT_ERR_WORKER', r.message));
      return true;
    }
    if (m.t === 'req') {
      const q = m as Req;
      const h = this.handlers[q.what];
      const answer = (res: Res) => { try { if (!this.closed) this.send(res); } catch { /* the channel closed meanwhile */ } };
      if (!h) {
        answer({ t: 'res', id: q.id, ok: false, code: 'STRAIT_ERR_BUG', message: `BUG: ${this.peer} asked for unknown "${q.what}"` });
        return true;
      }
      Promise.resolve().then(() => h(q.arg)).then(
        (body) => answer({ t: 'res', id: q.id, ok: true, body }),
        (err: unknown) => answer({ t: 'res', id: q.id, ok: false, code: (err as { code?: string }).code ?? 'STRAIT_ERR_WORKER', message: errorMessage(err) }),
      );
      return true;
    }
    return false;
  }

  /** The channel closed: every pending request fails. */
  close(): void {
    this.closed = true;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(new StraitError('STRAIT_ERR_WORKER', `${this.peer} went away before answering`));
    }
  }
}

function isCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code);
}
