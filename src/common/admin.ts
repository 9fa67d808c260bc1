import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { errorMessage } from './errors.js';
import type { Logger } from './log.js';

/**
 * Every admin answer names the process that gave it, so a parent that started it (the local mesh) can tell its own
 * child from whatever else answers on that address.
 */
export const PID_HEADER = 'x-strait-pid';

export interface AdminReply { status: number; body: unknown; contentType?: string }
export type AdminHandler = (req: IncomingMessage, url: URL) => Promise<AdminReply>;
/** A GET handler, or handlers per method. */
export type AdminRoute = AdminHandler | Partial<Record<'GET' | 'POST', AdminHandler>>;

/**
 * A small admin HTTP server (controller 15014; ztunnel and waypoint 15000, 15020, 15021). Answers JSON, or
 * text when a handler sets contentType. Unknown paths get 404 with the list of routes.
 */
export class AdminServer {
  private server: Server | undefined;
  constructor(private readonly routes: Record<string, AdminRoute>, private readonly log: Logger) {}

  /** `backlog`: listen() backlog (default Node's 511). */
  async listen(host: string, port: number, backlog?: number): Promise<{ host: string; port: number }> {
    const server = createServer((req, res) => void this.handle(req, res));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port, host, ...(backlog ? { backlog } : {}) }, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
    // An accept error (EMFILE) must not end the process: say it, at most once per 10 s, and keep listening.
    let lastLog = 0;
    server.on('error', (err) => {
      if (Date.now() - lastLog < 10_000) return;
      lastLog = Date.now();
      this.log.warn({ err: errorMessage(err), address: `${host}:${port}` }, 'admin listener: accepting a connection failed; still listening');
    });
    const addr = server.address();
    if (!addr || typeof addr === 'string') throw new Error('BUG: admin server has no address');
    return { host: addr.address, port: addr.port };
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const route = this.routes[url.pathname];
    if (!route) return send(res, 404, { error: `no such endpoint ${url.pathname}`, endpoints: Object.keys(this.routes).sort() });
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const handler = typeof route === 'function' ? (method === 'GET' ? route : undefined) : route[method as 'GET' | 'POST'];
    if (!handler) {
      const allowed = typeof route === 'function' ? ['GET'] : Object.keys(route);
      res.setHeader('allow', allowed.join(', '));
      return send(res, 405, { error: `${req.method} not allowed on ${url.pathname}; use ${allowed.join(' or ')}` });
    }
    try {
      const out = await handler(req, url);
      send(res, out.status, out.body, out.contentType);
    } catch (err) {
      this.log.error({ err: errorMessage(err), path: url.pathname }, 'admin endpoint failed');
      send(res, 500, { error: errorMessage(err) });
    }
  }
}

function send(res: ServerResponse, status: number, body: unknown, contentType?: string): void {
  const text = contentType && typeof body === 'string' ? body : JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'content-type': contentType ?? 'application/json', 'cache-control': 'no-store', [PID_HEADER]: String(process.pid) });
  res.end(text);
}
