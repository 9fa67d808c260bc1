/**
 * The ztunnel's TCP listeners: 15001, 15006, 15008, 15080 on the node address and, in the local mesh, each local
 * pod's address:15008.
 * Invariants: every listener listens with the configured backlog and keeps a permanent 'error' handler (an accept
 * error is counted and logged at a bounded rate, never fatal: the listener keeps listening); every accepted socket
 * is in `accepted` until it closes; on a listener that sheds, a socket the FdGuard does not admit is reset before
 * any handler sees it. HBONE listeners never shed: one HBONE connection carries up to 100 streams, and the reserve
 * the guard keeps by shedding single connections elsewhere is there for them. In a data-plane worker each listener is
 * the worker's handle on a socket the primary bound once and shared with every worker (dataplane/workers).
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { StraitError, errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { formatHostPort, normalizeIp } from '../common/net.js';
import type { FdGuard } from './fd-guard.js';
import { setTransparent } from './capture/original-dst.js';


/** At most one log line per listener per this long for accept errors that are not fd exhaustion. */
const ERROR_LOG_INTERVAL_MS = 10_000;

/** Node's own default, where the kernel's maximum cannot be read. */
export const NODE_DEFAULT_BACKLOG = 511;

/** The largest listen backlog the kernel grants (net.core.somaxconn of this network namespace). */
export function kernelListenBacklog(): number {
  try {
    const n = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : NODE_DEFAULT_BACKLOG;
  } catch {
    return NODE_DEFAULT_BACKLOG;
  }
}

export interface ListenerOptions {
  backlog: number;
  guard: Pick<FdGuard, 'admit' | 'observe'>;
  log: Logger;
  /** Called for every accepted connection (a data-plane worker counts its share). */
  onAccept?: () => void;
}

interface Listener {
  server: net.Server;
  what: string;
  address: string;
  lastErrorLogAt: number;
  errorsSinceLog: number;
}

function listenHint(code: string | undefined, host: string): string {
  switch (code) {
    case 'EADDRINUSE': return 'is another ztunnel running on this address?';
    case 'EADDRNOTAVAIL': return `${host} is not an address of this node (in the local mesh a pod address must be on the loopback interface)`;
    case 'EACCES': return 'ports below 1024 need privileges';
    default: return 'check the address and port';
  }
}

export class Listeners {
  private readonly listeners = new Map<string, Listener>();
  /** Accepted sockets still open, with whether the drain waits for them. */
  private readonly accepted = new Map<net.Socket, boolean>();
  private waitingCount = 0;
  private stopped = false;

  constructor(private readonly o: ListenerOptions) {}

  /**
   * Listens on host:port; `onSocket` gets each admitted connection. `transparent`: IP_TRANSPARENT on the listening
   * socket (capture's TPROXY rules deliver it connections addressed to pods); failing to set it fails the listen.
   */
  async listen(host: string, port: number, what: string, onSocket: (s: net.Socket) => void, opts: { hbone?: boolean; transparent?: boolean } = {}): Promise<{ host: string; port: number }> {
    if (this.stopped) throw new StraitError('STRAIT_ERR_LISTEN', `${what} cannot listen on ${formatHostPort({ host, port })}: the ztunnel is draining`);
    // HBONE: the drain waits for its streams (counted by the HBONE server), not its connections; it never sheds.
    const drainWaits = !opts.hbone;
    const sheds = !opts.hbone;
    const server = net.createServer({ noDelay: true }, (s) => {
      s.on('error', () => undefined);
      this.o.onAccept?.();
      this.accepted.set(s, drainWaits);
      if (drainWaits) this.waitingCount++;
      s.once('close', () => {
        if (this.accepted.delete(s) && drainWaits) this.waitingCount--;
      });
      if (sheds && !this.o.guard.admit()) {
        s.resetAndDestroy();
        return;
      }
      onSocket(s);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // Not exclusive: in a data-plane worker the primary binds the address once and every worker accepts on that one
      // socket (dataplane/workers/protocol.ts); in a single process the flag changes nothing.
      server.listen({ host, port, backlog: this.o.backlog, exclusive: false }, () => {
        server.removeListener('error', reject);
        resolve();
      });
    }).catch((err: NodeJS.ErrnoException) => {
      throw new StraitError('STRAIT_ERR_LISTEN', `${what} cannot listen on ${formatHostPort({ host, port })}: ${errorMessage(err)} (${listenHint(err.code, host)})`, { cause: err });
    });
    if (opts.transparent) {
      try {
        setTransparent(server);
      } catch (err) {
        server.close();
        throw new StraitError('STRAIT_ERR_LISTEN', `${what} on ${formatHostPort({ host, port })}: ${errorMessage(err)}`, { cause: err });
      }
    }
    const bound = server.address() as net.AddressInfo;
    const address = formatHostPort({ host: normalizeIp(bound.address), port: bound.port });
    const l: Listener = { server, what, address, lastErrorLogAt: 0, errorsSinceLog: 0 };
    server.on('error', (err) => this.acceptError(l, err));
    if (this.stopped) {
      server.close();
      throw new StraitError('STRAIT_ERR_LISTEN', `${what} on ${address} closed again: the ztunnel started draining while it was starting`);
    }
    this.listeners.set(address, l);
    return { host: normalizeIp(bound.address), port: bound.port };
  }

  /** Stops one listener (its pod left the node); connections already accepted on it continue. */
  close(host: string, port: number): void {
    const key = formatHostPort({ host: normalizeIp(host), port });
    const l = this.listeners.get(key);
    if (!l) return;
    this.listeners.delete(key);
    l.server.close();
  }

  /** Drain and stop: no listener accepts any more (the kernel refuses new connections); accepted sockets go on. */
  stopAccepting(): void {
    this.stopped = true;
    for (const l of this.listeners.values()) l.server.close();
    this.listeners.clear();
  }

  /** True once stopAccepting() ran (the ztunnel drains): no listener will be opened again. */
  get stopping(): boolean {
    return this.stopped;
  }

  /** Accepted sockets still open. */
  get open(): number {
    return this.accepted.size;
  }

  /** Accepted sockets still open that the drain waits for (SOCKS5, captured outbound, plaintext inbound). */
  get waiting(): number {
    return this.waitingCount;
  }

  /** Ends every accepted socket (end of the drain period, or close). */
  destroyAll(): void {
    for (const s of this.accepted.keys()) s.destroy();
    this.accepted.clear();
    this.waitingCount = 0;
  }

  /** For /config_dump. */
  list(): { address: string; listener: string; backlog: number }[] {
    return [...this.listeners.values()].map((l) => ({ address: l.address, listener: l.what, backlog: this.o.backlog }));
  }

  private acceptError(l: Listener, err: Error): void {
    if (this.o.guard.observe('accept', err)) return;
    l.errorsSinceLog++;
    const now = Date.now();
    if (now - l.lastErrorLogAt < ERROR_LOG_INTERVAL_MS) return;
    this.o.log.error({ listener: l.what, address: l.address, err: errorMessage(err), errors: l.errorsSinceLog }, 'accepting a connection failed; still listening');
    l.lastErrorLogAt = now;
    l.errorsSinceLog = 0;
  }
}
