/**
 * What every proxy process serves besides traffic (DESIGN §2): admin on 15000 (`/config_dump`, `/connections`,
 * `/logging`, `/quitquitquit`; the config dump with the machine's facts), Prometheus `/metrics` on 15020 and readiness `/healthz/ready` on 15021, with the
 * drain behind `/quitquitquit`. The proxy supplies what only it knows (its config dump, its metrics, why it is not
 * ready); the runtime answers, and is not ready while draining.
 */
import { AdminServer } from '../../common/admin.js';
import type { HostPort } from '../../common/net.js';
import type { Logger } from '../../common/log.js';
import type { Drain } from './drain.js';

/** What the runtime needs of a drain: a Drain, or a primary's drain of its data-plane workers. */
export type DrainControl = Pick<Drain, 'draining' | 'start'>;
import { NodeFacts } from './node-facts.js';
import type { LogLevels } from './log-levels.js';

export interface ProxyRuntimeOptions {
  address: string;
  /** Where admin listens, when not `address` (a wildcard listen address keeps admin on loopback). */
  adminAddress?: string;
  ports: { admin: number; metrics: number; ready: number };
  /** listen() backlog of the three listeners. */
  backlog: number;
  logLevels: LogLevels;
  drain: DrainControl;
  drainMs: number;
  /** The body of GET /config_dump; the runtime adds `nodeInfo` (the machine's cores, memory, OS). */
  configDump(): Promise<Record<string, unknown>>;
  /** The body of GET /connections. */
  connections(): Record<string, unknown> | Promise<Record<string, unknown>>;
  /** The Prometheus exposition of GET /metrics. */
  metrics(): Promise<{ body: string; contentType: string }>;
  /** Whether the proxy has what it needs to serve, and the detail of what it still waits for. */
  readiness(): { ready: boolean; detail: Record<string, unknown> };
}

export class ProxyRuntime {
  private readonly admin: AdminServer;
  private readonly metrics: AdminServer;
  private readonly ready: AdminServer;
  private readonly facts = new NodeFacts();

  constructor(private readonly o: ProxyRuntimeOptions) {
    const child = (part: string): Logger => o.logLevels.child({ part });
    this.admin = new AdminServer({
      '/config_dump': async () => {
        const [dump, nodeInfo] = await Promise.all([o.configDump(), this.facts.read()]);
        return { status: 200, body: { ...dump, nodeInfo } };
      },
      '/connections': async () => ({ status: 200, body: await o.connections() }),
      '/logging': o.logLevels.route(),
      '/quitquitquit': { POST: async () => { void o.drain.start(); return { status: 200, body: { draining: true, drainMs: o.drainMs } }; } },
    }, child('admin'));
    this.metrics = new AdminServer({
      '/metrics': async () => ({ status: 200, ...(await o.metrics()) }),
    }, child('metrics'));
    this.ready = new AdminServer({
      '/healthz/ready': async () => {
        const r = o.readiness();
        if (r.ready && !o.drain.draining) return { status: 200, body: 'ready\n', contentType: 'text/plain' };
        return { status: 503, body: { ready: false, ...(o.drain.draining ? { draining: true } : {}), ...r.detail } };
      },
    }, child('ready'));
  }

  /** Listens on the three ports; resolves with the admin address (port 0 picks one). */
  async listen(): Promise<{ admin: HostPort }> {
    const { address, ports, backlog } = this.o;
    const admin = await this.admin.listen(this.o.adminAddress ?? address, ports.admin, backlog);
    await this.metrics.listen(address, ports.metrics, backlog);
    await this.ready.listen(address, ports.ready, backlog);
    return { admin };
  }

  async close(): Promise<void> {
    await Promise.all([this.admin.close(), this.metrics.close(), this.ready.close()]);
  }
}
