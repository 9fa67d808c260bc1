/**
 * The runtime reference of the data-path benchmark: the same client → server hop carried by two Node.js
 * processes that are nothing but a TLS tunnel (`net` ⇄ `tls` with `pipe`, datapath-nodetls-side.ts), mutual
 * TLS 1.3 with certificates from the mesh CA:
 *
 *   client → node (client side, 127.0.116.1) ══ mTLS ══ node (server side, 127.0.116.2) → server pod
 *
 * stunnel says what a tunnel written in C costs; this says what any tunnel written for Node costs before it does
 * anything a mesh does (no HTTP/2, no policy, no metrics), on the same machine in the same run. The gap between
 * it and stunnel is the runtime's; the gap between the mesh and it is Strait's.
 *
 * `placement` puts each side elsewhere (bench/capture.ts: in the node namespaces), as for the stunnel pair.
 */
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tunnelCertificates, type TunnelPlacement } from './datapath-stunnel.js';
import type { NodeTlsSideConfig } from './datapath-nodetls-side.js';
import { Forked } from './forked.js';

export const NODETLS_CLIENT_IP = '127.0.116.1';
export const NODETLS_SERVER_IP = '127.0.116.2';

export interface NodeTlsRoute {
  /** Where the client connects (on the client side's listen address). */
  clientPort: number;
  /** The TLS port between the two sides (on the server side's listen address). */
  tlsPort: number;
  /** Where the server side connects (the server pod). */
  target: { host: string; port: number };
}

export interface NodeTlsOptions {
  workDir: string;
  /** The mesh's data directory: its CA issues both certificates. */
  caDataDir: string;
  clientIdentity: string;
  serverIdentity: string;
  routes: NodeTlsRoute[];
  /** Default: both on loopback, NODETLS_CLIENT_IP and NODETLS_SERVER_IP, in this network namespace. */
  placement?: TunnelPlacement;
}

const SIDE_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'datapath-nodetls-side.js');

/** Two Node.js TLS tunnel processes (client side and server side) carrying `routes`. */
export class NodeTlsPair {
  private procs: { side: string; proc: Forked }[] = [];
  private readonly at: TunnelPlacement;

  constructor(private readonly opts: NodeTlsOptions) {
    this.at = opts.placement ?? { client: { listen: NODETLS_CLIENT_IP, source: NODETLS_CLIENT_IP }, server: { listen: NODETLS_SERVER_IP } };
  }

  async start(): Promise<void> {
    const dir = this.opts.workDir;
    const { rootFile: caFile, client, server } = await tunnelCertificates(this.opts);
    const { client: c, server: s } = this.at;
    const sides: NodeTlsSideConfig[] = [
      {
        side: 'server', ...server, ca: caFile,
        routes: this.opts.routes.map((r) => ({ listen: { host: s.listen, port: r.tlsPort }, connect: r.target })),
      },
      {
        side: 'client', ...client, ca: caFile, ...(c.source ? { localAddress: c.source } : {}),
        routes: this.opts.routes.map((r) => ({ listen: { host: c.listen, port: r.clientPort }, connect: { host: s.listen, port: r.tlsPort } })),
      },
    ];
    for (const cfg of sides) {
      const file = join(dir, `${cfg.side}.json`);
      writeFileSync(file, JSON.stringify(cfg));
      const proc = new Forked(SIDE_SCRIPT, ['--config', file], `node TLS reference (${cfg.side} side)`, { netns: this.at[cfg.side].netns });
      this.procs.push({ side: cfg.side, proc });
      await proc.ready;
    }
  }

  pids(): Record<string, number> {
    return Object.fromEntries(this.procs.map((p) => [`node-tls/${p.side}`, p.proc.pid]));
  }

  async stop(): Promise<void> {
    await Promise.all(this.procs.map(({ proc }) => proc.stop()));
  }
}
