/**
 * HTTP/1.1 `Upgrade` (WebSocket) through the waypoint: the request goes to one endpoint of the service over HBONE
 * through `http-proxy` (design card), and once the backend answers 101 the bytes pass both ways untouched.
 * L7 routing does not apply to upgraded connections beyond the choice of the service's endpoint.
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import httpProxy from 'http-proxy';
import { errorMessage } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import type { ProxyStateView } from '../../dataplane/state/proxy-state.js';
import type { Backends } from '../upstream/backends.js';
import { asSocket, type UpstreamClient } from '../upstream/upstream-client.js';
import type { DownstreamContext } from './downstream.js';

export interface WebSocketPassthroughOptions {
  state: ProxyStateView;
  backends: Backends;
  upstream: UpstreamClient;
  log: Logger;
}

export class WebSocketPassthrough {
  private readonly proxy = httpProxy.createProxyServer({ ws: true, xfwd: false, prependPath: false });

  constructor(private readonly o: WebSocketPassthroughOptions) {
    this.proxy.on('error', (err: Error, _req: unknown, socket: unknown) => {
      this.o.log.info({ err: errorMessage(err) }, 'upgrade to the backend failed');
      if (socket && typeof (socket as Duplex).destroy === 'function') (socket as Duplex).destroy();
    });
  }

  handle(req: http.IncomingMessage, socket: Duplex, head: Buffer, ctx: DownstreamContext): void {
    let target: { address: string; port: number; identity: string; plaintext?: boolean } | undefined;
    if (ctx.workload) target = { address: ctx.destinationIp, port: ctx.destinationPort, identity: ctx.workload.identity, plaintext: ctx.workload.protocol !== 'HBONE' };
    else if (ctx.service) {
      const cl = this.o.backends.cluster(`${ctx.service.namespace}/${ctx.service.name}`, ctx.destinationPort, undefined);
      if (!('kind' in cl)) {
        const ep = this.o.backends.pick(cl, this.o.backends.endpoints(cl).usable);
        if (ep) target = { address: ep.address, port: ep.port, identity: ep.identity, plaintext: ep.plaintext };
      }
    }
    if (!target) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    const t = target;
    // One connection per upgrade: an upgraded connection never goes back to a pool.
    const agent = new http.Agent({ keepAlive: false });
    (agent as unknown as { createConnection: unknown }).createConnection = (_opts: unknown, cb: (err: Error | null, s?: Duplex) => void) => {
      this.o.upstream.openTunnel(t).then((s) => cb(null, asSocket(s)), (err: Error) => cb(err));
      return undefined;
    };
    // http-proxy sets socket options on both ends; an HBONE stream has none to set.
    this.proxy.ws(req, asSocket(socket), head, { target: { host: t.address, port: t.port }, agent } as httpProxy.ServerOptions);
  }
}
