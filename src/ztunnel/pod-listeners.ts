/**
 * The local mesh's per-pod HBONE listeners (DESIGN §6): one on each local enrolled pod's address, port 15008, so
 * the HBONE server presents the certificate of the pod whose address was dialled. Under capture the kernel
 * redirects pod:15008 to the node listener instead, and this is off.
 * Invariants: `open` holds exactly the addresses listened on (or being listened on); syncs run one at a time, in
 * the order the workloads changed.
 */
import type net from 'node:net';
import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { formatHostPort, normalizeIp } from '../common/net.js';
import type { ProxyStateView } from '../dataplane/state/proxy-state.js';
import type { Listeners } from './listeners.js';

export interface PodListenersOptions {
  state: ProxyStateView;
  node: string;
  listeners: Listeners;
  port: number;
  /** Hands an accepted socket to the HBONE server with the pod address and port it was accepted on. */
  onSocket(s: net.Socket, localAddress: string, localPort: number): void;
  log: Logger;
}

export class PodListeners {
  private readonly open = new Set<string>();
  private queue = Promise.resolve();

  constructor(private readonly o: PodListenersOptions) {}

  /** Follows the state: call once; syncs now and after every workload change. */
  follow(): void {
    const queue = () => { this.queue = this.queue.then(() => this.sync()); };
    this.o.state.on('workloads', queue);
    queue();
  }

  private async sync(): Promise<void> {
    const { o } = this;
    if (o.listeners.stopping) return; // draining: pods that come and go now get no listener, and that is no error
    const want = new Set(o.state.localWorkloads(o.node).flatMap((w) => w.addresses));
    for (const addr of want) {
      if (this.open.has(addr)) continue;
      this.open.add(addr);
      try {
        await o.listeners.listen(addr, o.port, 'HBONE (pod)', (s) => o.onSocket(s, normalizeIp(s.localAddress ?? addr), s.localPort ?? o.port), { hbone: true });
        o.log.info({ address: formatHostPort({ host: addr, port: o.port }) }, 'HBONE listener for local pod');
      } catch (err) {
        this.open.delete(addr);
        o.log.error({ address: addr, err: errorMessage(err) }, 'cannot listen for a local pod (is the address on this machine?)');
      }
    }
    for (const addr of [...this.open]) {
      if (want.has(addr)) continue;
      this.open.delete(addr);
      o.listeners.close(addr, o.port);
    }
  }
}
