/**
 * The upstream connector: every TCP connection a proxy opens to a pod (or to a destination outside the mesh).
 * Invariants: a socket is in `upstreams` from its 'connect' until its 'close'; `dialing` counts the connects not yet
 * settled. Both are what the fd guard counts against the process's file-descriptor limit.
 */
import net from 'node:net';

/**
 * Opens a TCP connection; fails after `timeoutMs` (code ETIMEDOUT), or when `signal` aborts (the client gave up on
 * the stream: the socket is destroyed, code ABORT_ERR).
 */
export type TargetConnector = (host: string, port: number, timeoutMs: number, signal?: AbortSignal) => Promise<net.Socket>;

/** Connects with `open` (a plain or a marked socket), failing after `timeoutMs` or when `signal` aborts. */
export function connectWith(open: () => net.Socket, host: string, port: number, timeoutMs: number, signal?: AbortSignal): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(Object.assign(new Error(`connect to ${host}:${port} cancelled: the client gave up`), { code: 'ABORT_ERR' }));
      return;
    }
    const s = open();
    const done = (): void => {
      clearTimeout(t);
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = (): void => {
      done();
      s.destroy();
      reject(Object.assign(new Error(`connect to ${host}:${port} cancelled: the client gave up`), { code: 'ABORT_ERR' }));
    };
    const t = setTimeout(() => {
      done();
      s.destroy();
      reject(Object.assign(new Error(`connect to ${host}:${port} timed out after ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
    }, timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    s.once('connect', () => { done(); s.setNoDelay(true); resolve(s); });
    s.once('error', (err) => { done(); reject(err); });
  });
}

export interface UpstreamConnectorOptions {
  /** Opens the socket (default: a plain `net.connect`; under capture a marked socket the capture rules skip). */
  open?: (host: string, port: number) => net.Socket;
  /** Told of every failed connect (the fd guard looks for EMFILE/ENFILE). */
  onError?: (err: unknown) => void;
}

export class UpstreamConnector {
  private readonly upstreams = new Set<net.Socket>();
  private dialingCount = 0;

  constructor(private readonly o: UpstreamConnectorOptions = {}) {}

  /** The TargetConnector the proxy paths use. */
  readonly connect: TargetConnector = async (host, port, timeoutMs, signal) => {
    const open = this.o.open;
    this.dialingCount++;
    try {
      const s = await connectWith(open ? () => open(host, port) : () => net.connect({ host, port }), host, port, timeoutMs, signal);
      this.upstreams.add(s);
      s.once('close', () => this.upstreams.delete(s));
      return s;
    } catch (err) {
      this.o.onError?.(err);
      throw err;
    } finally {
      this.dialingCount--;
    }
  };

  /** Connects not yet settled. */
  get dialing(): number {
    return this.dialingCount;
  }

  /** Upstream sockets open now. */
  get open(): number {
    return this.upstreams.size;
  }
}
