/**
 * A local TCP port that enters the mesh through a node's SOCKS5 listener: every connection accepted on `listen` is
 * carried by its own SOCKS5 CONNECT (its socket bound to the source pod's address, so the ztunnel knows who calls)
 * to `target`, and the two are piped. For clients that cannot speak SOCKS5 themselves (@grpc/grpc-js, nghttp,
 * h2load): point them at `forwarder.address` and they talk to the service through the mesh.
 *
 * Invariants: every accepted socket is in `clients` and every SOCKS5 socket in `upstreams` until it closes; when one
 * end of a pair closes the other is destroyed; close() stops accepting and destroys both ends of every pair.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { socks5Connect } from '../../src/demo/socks5-client.js';

export interface SocksForwarderOptions {
  /** Where to listen (port 0: any free port; read `address`). */
  listen: { host: string; port: number };
  /** The node's SOCKS5 listener (its ztunnel's 15080). */
  proxy: { host: string; port: number };
  /** Source address of the connections to the proxy: the calling pod's address. */
  source?: string;
  /** What each connection CONNECTs to, as the client would name it (e.g. { host: 'echo.grpc', port: 9090 }). */
  target: { host: string; port: number };
  /** SOCKS5 handshake timeout (default 10 s). */
  timeoutMs?: number;
}

/** A SOCKS5 CONNECT the proxy refused (reply code and its RFC 1928 text) or that failed. */
export interface ForwarderFailure { reply?: number; message: string }

export class SocksForwarder {
  /** Connections accepted so far. */
  accepted = 0;
  /** Every refusal or failure of a SOCKS5 CONNECT, in order (the client's connection was closed for each). */
  readonly failures: ForwarderFailure[] = [];
  private readonly clients = new Set<Socket>();
  private readonly upstreams = new Set<Socket>();

  private constructor(private readonly server: Server, private readonly opts: SocksForwarderOptions) {}

  static async start(opts: SocksForwarderOptions): Promise<SocksForwarder> {
    let self: SocksForwarder | undefined;
    const server = createServer((client) => self!.accept(client));
    self = new SocksForwarder(server, opts);
    server.listen(opts.listen.port, opts.listen.host);
    await once(server, 'listening');
    return self;
  }

  /** The listening address (host:port), e.g. for a gRPC target. */
  get address(): string {
    const a = this.server.address() as AddressInfo;
    return `${a.address}:${a.port}`;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Connections open now (client side). */
  get openConnections(): number {
    return this.clients.size;
  }

  private accept(client: Socket): void {
    this.accepted++;
    this.clients.add(client);
    client.on('error', () => undefined);
    client.once('close', () => this.clients.delete(client));
    client.pause();
    socks5Connect({
      proxy: this.opts.proxy, target: this.opts.target, timeoutMs: this.opts.timeoutMs ?? 10_000,
      ...(this.opts.source ? { localAddress: this.opts.source } : {}),
    }).then((r) => {
      if (!r.ok) {
        this.failures.push({ reply: r.reply, message: r.message });
        client.destroy();
        return;
      }
      const upstream = r.socket;
      this.upstreams.add(upstream);
      upstream.once('close', () => { this.upstreams.delete(upstream); client.destroy(); });
      client.once('close', () => upstream.destroy());
      if (client.destroyed) return void upstream.destroy();
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
      upstream.resume();
    }, (err: Error) => {
      this.failures.push({ message: err.message });
      client.destroy();
    });
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of [...this.clients, ...this.upstreams]) s.destroy();
    await closed;
  }
}

