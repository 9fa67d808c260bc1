/**
 * The peer reference of the data-path benchmark: the same client → server hop carried by two stunnel
 * processes doing mutual TLS 1.3 with certificates from the mesh CA (the client and server workload
 * identities), as a TLS tunnel that people already trust would do it:
 *
 *   client → stunnel (client mode, 127.0.115.1) ══ mTLS ══ stunnel (server mode, 127.0.115.2) → server pod
 *
 * Both sides verify the peer's chain to the mesh root (verifyChain + CAfile; the server requires a client
 * certificate). stunnel cannot check a URI SAN, so unlike the ztunnel it does not compare the SPIFFE id.
 *
 * `placement` puts each side elsewhere (bench/capture.ts: the client side in node A's network namespace, the
 * server side in node B's), with its own addresses.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants, createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { CertificateAuthority, SpiffeId, createKeyAndCsr } from '../../src/identity/index.js';
import { inNetns, waitListening } from './netns.js';

export const STUNNEL_CLIENT_IP = '127.0.115.1';
export const STUNNEL_SERVER_IP = '127.0.115.2';

/** Where the two sides of a reference tunnel pair run and listen. */
export interface TunnelPlacement {
  /** The client side: accepts plaintext on `listen`, dials the server side from `source` (if given). */
  client: { netns?: string; listen: string; source?: string };
  /** The server side: accepts TLS on `listen`. */
  server: { netns?: string; listen: string };
}

export interface StunnelBinary {
  path: string;
  version: string;
}

/** The stunnel executable on PATH (`stunnel`, or Debian's `stunnel4`), or undefined. */
export function findStunnel(): StunnelBinary | undefined {
  for (const name of ['stunnel', 'stunnel4']) {
    for (const dir of (process.env.PATH ?? '').split(delimiter)) {
      const path = join(dir, name);
      try {
        accessSync(path, constants.X_OK);
      } catch {
        continue;
      }
      const v = spawnSync(path, ['-version'], { encoding: 'utf8', timeout: 5000 });
      const version = /stunnel \S+/.exec(`${v.stdout}${v.stderr}`)?.[0] ?? 'stunnel (version unknown)';
      return { path, version };
    }
  }
  return undefined;
}

export interface StunnelRoute {
  name: string;
  /** Where the client connects (on the client side's listen address). */
  clientPort: number;
  /** The TLS port between the two stunnels (on the server side's listen address). */
  tlsPort: number;
  /** Where the server-side stunnel connects (the server pod). */
  target: { host: string; port: number };
}

export interface StunnelOptions {
  bin: StunnelBinary;
  workDir: string;
  /** The mesh's data directory: its CA issues both certificates. */
  caDataDir: string;
  clientIdentity: string;
  serverIdentity: string;
  routes: StunnelRoute[];
  /** Default: both on loopback, STUNNEL_CLIENT_IP and STUNNEL_SERVER_IP, in this network namespace. */
  placement?: TunnelPlacement;
}

/** Key and certificate chain for `id` from the mesh CA, written as <dir>/<name>-key.pem and <name>-chain.pem. */
async function issue(ca: CertificateAuthority, id: string, dir: string, name: string): Promise<{ cert: string; key: string }> {
  const { keyPem, csrPem } = await createKeyAndCsr();
  const { certChainPem } = ca.signWorkload(csrPem, SpiffeId.parse(id));
  const cert = join(dir, `${name}-chain.pem`);
  const key = join(dir, `${name}-key.pem`);
  writeFileSync(cert, certChainPem.join('\n'));
  writeFileSync(key, keyPem, { mode: 0o600 });
  return { cert, key };
}

/**
 * For a reference tunnel pair: creates `workDir`, writes the mesh root there and a key + chain for each side's
 * identity, all from the mesh CA in `caDataDir`.
 */
export async function tunnelCertificates(opts: { workDir: string; caDataDir: string; clientIdentity: string; serverIdentity: string }): Promise<{
  rootFile: string;
  client: { cert: string; key: string };
  server: { cert: string; key: string };
}> {
  mkdirSync(opts.workDir, { recursive: true });
  const ca = await CertificateAuthority.loadOrCreate({ dataDir: opts.caDataDir });
  const rootFile = join(opts.workDir, 'root-cert.pem');
  writeFileSync(rootFile, ca.rootCertPem);
  const client = await issue(ca, opts.clientIdentity, opts.workDir, 'client');
  const server = await issue(ca, opts.serverIdentity, opts.workDir, 'server');
  return { rootFile, client, server };
}

function config(side: 'client' | 'server', files: { cert: string; key: string; ca: string }, routes: StunnelRoute[], at: TunnelPlacement): string {
  const global = [
    'foreground = yes',
    'pid =',
    'debug = 4', // warnings and worse: no line per connection
  ];
  const services = routes.map((r) => [
    `[${r.name}]`,
    ...(side === 'client'
      ? ['client = yes', `accept = ${at.client.listen}:${r.clientPort}`, `connect = ${at.server.listen}:${r.tlsPort}`, ...(at.client.source ? [`local = ${at.client.source}`] : [])]
      : [`accept = ${at.server.listen}:${r.tlsPort}`, `connect = ${r.target.host}:${r.target.port}`]),
    `cert = ${files.cert}`,
    `key = ${files.key}`,
    `CAfile = ${files.ca}`,
    'verifyChain = yes', // implies requireCert on the server side
    'sslVersionMin = TLSv1.3',
    'sslVersionMax = TLSv1.3',
  ].join('\n'));
  return [...global, '', ...services].join('\n') + '\n';
}

/** Two stunnel processes (client side and server side) carrying `routes`. */
export class StunnelPair {
  private procs: { side: string; proc: ChildProcess; exited: Promise<unknown> }[] = [];

  private readonly at: TunnelPlacement;

  constructor(private readonly opts: StunnelOptions) {
    this.at = opts.placement ?? { client: { listen: STUNNEL_CLIENT_IP, source: STUNNEL_CLIENT_IP }, server: { listen: STUNNEL_SERVER_IP } };
  }

  async start(): Promise<void> {
    const dir = this.opts.workDir;
    const { rootFile, client, server } = await tunnelCertificates(this.opts);
    for (const [side, files] of [['server', server], ['client', client]] as const) {
      const conf = join(dir, `${side}.conf`);
      writeFileSync(conf, config(side, { ...files, ca: rootFile }, this.opts.routes, this.at));
      const [cmd, ...args] = inNetns(this.at[side].netns, [this.opts.bin.path, conf]);
      const proc = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      const log = createWriteStream(join(dir, `${side}.log`));
      proc.stdout!.pipe(log);
      proc.stderr!.pipe(log);
      this.procs.push({ side, proc, exited: once(proc, 'exit') });
    }
    // In a namespace both sides are checked with ss; on loopback only the client side's plaintext ports are probed
    // (a bare TCP probe of a TLS port makes the server side log a handshake error), and the benchmark's first
    // request through the pair retries until both sides are up.
    const alive = () => {
      for (const p of this.procs) {
        if (p.proc.exitCode !== null) throw new Error(`stunnel (${p.side} side) exited with ${p.proc.exitCode}; see ${join(dir, `${p.side}.log`)}`);
      }
    };
    for (const r of this.opts.routes) {
      await waitListening({ netns: this.at.client.netns, host: this.at.client.listen, port: r.clientPort, what: 'stunnel (client side)', alive });
      if (this.at.server.netns) await waitListening({ netns: this.at.server.netns, host: this.at.server.listen, port: r.tlsPort, what: 'stunnel (server side)', alive });
    }
  }

  pids(): Record<string, number> {
    return Object.fromEntries(this.procs.map((p) => [`stunnel/${p.side}`, p.proc.pid!]));
  }

  async stop(): Promise<void> {
    await Promise.all(this.procs.map(async (p) => {
      if (p.proc.exitCode !== null || p.proc.signalCode !== null) return;
      p.proc.kill('SIGTERM');
      const t = setTimeout(() => p.proc.kill('SIGKILL'), 5000);
      await p.exited;
      clearTimeout(t);
    }));
  }
}
