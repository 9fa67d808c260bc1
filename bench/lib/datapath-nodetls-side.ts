/**
 * One side of the data-path benchmark's Node.js TLS reference (see datapath-nodetls.ts): the smallest TLS
 * tunnel one can write in Node, as its own process. Client side: accept plain TCP, dial mutual TLS 1.3 to the
 * server side, pipe both ways. Server side: accept mutual TLS 1.3 (client certificate required and chained to
 * the CA), dial the target in plain TCP, pipe both ways. Like stunnel, it checks chains only (no SPIFFE id),
 * sets TCP_NODELAY, and logs nothing per connection. It tells its parent `{ ready: true }` once it listens and
 * exits when the parent disconnects.
 *
 *   node datapath-nodetls-side.js --config FILE   (FILE: NodeTlsSideConfig as JSON)
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';

export interface NodeTlsSideConfig {
  side: 'client' | 'server';
  cert: string;
  key: string;
  ca: string;
  /** Client side: plaintext listen address → TLS address of the server side. Server side: TLS listen → target. */
  routes: { listen: { host: string; port: number }; connect: { host: string; port: number } }[];
  /** Client side: the source address of its TLS connections. */
  localAddress?: string;
}

function join(a: Duplex, b: Duplex): void {
  const close = (): void => {
    a.destroy();
    b.destroy();
  };
  a.on('error', close).on('close', close);
  b.on('error', close).on('close', close);
  a.pipe(b);
  b.pipe(a);
}

function main(): void {
  const i = process.argv.indexOf('--config');
  if (i < 0) throw new Error('datapath-nodetls-side: --config FILE is required');
  const cfg = JSON.parse(readFileSync(process.argv[i + 1]!, 'utf8')) as NodeTlsSideConfig;
  const creds = { cert: readFileSync(cfg.cert), key: readFileSync(cfg.key), ca: readFileSync(cfg.ca), minVersion: 'TLSv1.3' as const };
  let pending = cfg.routes.length;
  const listening = (): void => {
    if (--pending === 0) process.send?.({ ready: true });
  };
  for (const r of cfg.routes) {
    if (cfg.side === 'client') {
      net
        .createServer({ noDelay: true }, (plain) => {
          const secure = tls.connect({
            ...creds,
            host: r.connect.host,
            port: r.connect.port,
            ...(cfg.localAddress ? { localAddress: cfg.localAddress } : {}),
            // Chain to the CA only, as stunnel's verifyChain (the certificates carry SPIFFE URIs, no host names).
            checkServerIdentity: () => undefined,
          });
          secure.setNoDelay(true);
          join(plain, secure);
        })
        .listen(r.listen.port, r.listen.host, listening);
    } else {
      tls
        .createServer({ ...creds, requestCert: true, rejectUnauthorized: true, noDelay: true }, (secure) => {
          join(secure, net.connect({ host: r.connect.host, port: r.connect.port, noDelay: true }));
        })
        .listen(r.listen.port, r.listen.host, listening);
    }
  }
  process.on('disconnect', () => process.exit(0));
}

main();
