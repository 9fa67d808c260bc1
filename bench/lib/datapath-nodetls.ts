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
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tunnelCertificates } from './datapath-stunnel.js';
import type { NodeTlsSideConfig } from './datapath-nodetls-side.js';

export const NODETLS_CLIENT_IP = '127.0.116.1';
export const NODETLS_SERVER_IP = '127.0.116.2';

export interface NodeTlsRoute {
  /** Where the client connects (on NODETLS_CLIENT_IP). */
  clientPort: number;
  /** The TLS port between the two sides (on NODETLS_SERVER_IP). */
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
}

const SIDE_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'datapath-nodetls-side.js');

/** Two Node.js TLS tunnel processes (client side and server side) carrying `routes`. */
export class NodeTlsPair {
  private procs: { side: string; proc: ChildProcess }[] = [];

  constructor(private readonly opts: NodeTlsOptions) {}

  async start(): Promise<void> {
    const dir = this.opts.workDir;
    const { rootFile: caFile, client, server } = await tunnelCertificates(this.opts);
    const sides: NodeTlsSideConfig[] = [
      {
        side: 'server', ...server, ca: caFile,
        routes: this.opts.routes.map((r) => ({ listen: { host: NODETLS_SERVER_IP, port: r.tlsPort }, connect: r.target })),
      },
      {
        side: 'client', ...client, ca: caFile, localAddress: NODETLS_CLIENT_IP,
        routes: this.opts.routes.map((r) => ({ listen: { host: NODETLS_CLIENT_IP, port: r.clientPort }, connect: { host: NODETLS_SERVER_IP, port: r.tlsPort } })),
      },
    ];
    for (const cfg of sides) {
      const file = join(dir, `${cfg.side}.json`);
      writeFileSync(file, JSON.stringify(cfg));
      const proc = fork(SIDE_SCRIPT, ['--config', file], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] });
      this.procs.push({ side: cfg.side, proc });
      await new Promise<void>((resolve, reject) => {
        proc.once('message', () => resolve());
        proc.once('exit', (code) => reject(new Error(`node TLS reference (${cfg.side} side) exited with ${code} before listening`)));
      });
    }
  }

  pids(): Record<string, number> {
    return Object.fromEntries(this.procs.map((p) => [`node-tls/${p.side}`, p.proc.pid!]));
  }

  async stop(): Promise<void> {
    await Promise.all(this.procs.map(async ({ proc }) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = once(proc, 'exit');
      if (proc.connected) proc.disconnect();
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }));
  }
}
