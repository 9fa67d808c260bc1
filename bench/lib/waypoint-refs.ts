/**
 * The references of the waypoint benchmark, each doing the waypoint's L7 job between the same two TLS ends:
 *
 *   client → TLS originator (127.0.196.1) ══ mTLS ══ L7 proxy ══ mTLS ══ TLS terminator (127.0.196.2) → server pod
 *
 * - the ends are the data-path benchmark's Node.js TLS tunnel sides (datapath-nodetls-side.ts: net ⇄ tls, pipe),
 *   so that each reference path has the shape of the mesh's (two tunnel processes, two TLS connections, the L7
 *   proxy between them); the originator carries the client's identity, the terminator the server's and forwards
 *   its port 18443 to server v1 and 18444 to server v2;
 * - `tls-pair`: originator → terminator, no L7 proxy (the same ends without a proxy);
 * - `floor` (c): waypoint-floor.ts, the smallest Node.js HTTP proxy doing the job;
 * - `nginx-1w` / `nginx-auto` (b): Debian's nginx with 1 worker / `worker_processes auto` (waypoint-nginx.ts).
 *
 * Every certificate comes from the mesh's CA: the L7 proxies present the waypoint's SPIFFE id (plus a DNS name),
 * the terminator the server's (plus server.bench.svc.cluster.local, the name nginx verifies: it cannot check URI
 * SANs). All TLS is 1.3, mutual, chains checked against the mesh root.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CertificateAuthority, SpiffeId, createKeyAndCsr } from '../../src/identity/index.js';
import type { NodeTlsSideConfig } from './datapath-nodetls-side.js';
import type { FloorConfig } from './waypoint-floor.js';
import { NginxProxy, type NginxBinary } from './waypoint-nginx.js';

const HERE = dirname(fileURLToPath(import.meta.url));

export const ORIGINATOR_IP = '127.0.196.1';
export const TERMINATOR_IP = '127.0.196.2';
export const TERMINATOR_PORTS = { a: 18443, b: 18444 };
export const FLOOR_ADDRESS = { host: '127.0.195.1', port: 8443 };
export const NGINX_ADDRESSES = { one: { host: '127.0.194.1', port: 8443 }, auto: { host: '127.0.194.2', port: 8443 } };
/** The originator's plaintext ports, one per reference path. */
export const ORIGINATOR_PORTS = { 'tls-pair': 18001, floor: 18002, 'nginx-1w': 18003, 'nginx-auto': 18004 } as const;
export type RefName = keyof typeof ORIGINATOR_PORTS;
/** The name nginx checks in the terminator's certificate (proxy_ssl_name). */
export const TERMINATOR_DNS_NAME = 'server.bench.svc.cluster.local';

export interface RefsOptions {
  workDir: string;
  caDataDir: string;
  trustDomain: string;
  namespace: string;
  clientSa: string;
  serverSa: string;
  proxySa: string;
  /** Server pods: v1 behind terminator port a, v2 behind port b. */
  servers: { v1: { host: string; port: number }; v2: { host: string; port: number } };
  /** Canary header: name (lower case) and value. */
  header: string;
  value: string;
  nginx?: NginxBinary;
  accessLogs: boolean;
}

interface Files { cert: string; key: string }

/** A forked bench helper that sends one message once it listens; exits when its IPC channel closes. */
async function forkReady(script: string, args: string[], what: string): Promise<ChildProcess> {
  const proc = fork(join(HERE, script), args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] });
  await new Promise<void>((resolve, reject) => {
    proc.once('message', () => resolve());
    proc.once('exit', (code) => reject(new Error(`${what} exited with ${code} before listening`)));
  });
  return proc;
}

async function stopForked(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = once(proc, 'exit');
  if (proc.connected) proc.disconnect();
  const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
}

export class References {
  private procs: { name: string; proc: ChildProcess }[] = [];
  private nginxes: { name: RefName; proxy: NginxProxy }[] = [];
  rootFile = '';

  constructor(private readonly o: RefsOptions) {}

  private async certificates(): Promise<{ client: Files; proxy: Files; server: Files }> {
    const dir = join(this.o.workDir, 'certs');
    mkdirSync(dir, { recursive: true });
    const ca = await CertificateAuthority.loadOrCreate({ dataDir: this.o.caDataDir, trustDomain: this.o.trustDomain });
    this.rootFile = join(dir, 'root-cert.pem');
    writeFileSync(this.rootFile, ca.rootCertPem);
    const id = (sa: string) => SpiffeId.of(this.o.trustDomain, this.o.namespace, sa);
    const write = (name: string, keyPem: string, chain: readonly string[]): Files => {
      const cert = join(dir, `${name}-chain.pem`);
      const key = join(dir, `${name}-key.pem`);
      writeFileSync(cert, chain.join('\n'));
      writeFileSync(key, keyPem, { mode: 0o600 });
      return { cert, key };
    };
    // The client: a workload certificate as the mesh issues them (URI SAN only).
    const { keyPem, csrPem } = await createKeyAndCsr();
    const client = write('client', keyPem, ca.signWorkload(csrPem, id(this.o.clientSa)).certChainPem);
    const proxyCert = ca.issueServing({ dnsNames: [`l7-proxy.${this.o.namespace}.svc.cluster.local`], ips: [], identity: id(this.o.proxySa) });
    const proxy = write('proxy', proxyCert.keyPem, proxyCert.certChainPem);
    const serverCert = ca.issueServing({ dnsNames: [TERMINATOR_DNS_NAME], ips: [], identity: id(this.o.serverSa) });
    const server = write('server', serverCert.keyPem, serverCert.certChainPem);
    return { client, proxy, server };
  }

  async start(): Promise<void> {
    mkdirSync(this.o.workDir, { recursive: true });
    const { client, proxy, server } = await this.certificates();
    const ca = this.rootFile;
    const serverId = SpiffeId.of(this.o.trustDomain, this.o.namespace, this.o.serverSa).toString();

    const sideConfig = (name: string, cfg: NodeTlsSideConfig): string => {
      const file = join(this.o.workDir, `${name}.json`);
      writeFileSync(file, JSON.stringify(cfg));
      return file;
    };
    const terminator = sideConfig('terminator', {
      side: 'server', ...server, ca,
      routes: [
        { listen: { host: TERMINATOR_IP, port: TERMINATOR_PORTS.a }, connect: this.o.servers.v1 },
        { listen: { host: TERMINATOR_IP, port: TERMINATOR_PORTS.b }, connect: this.o.servers.v2 },
      ],
    });
    this.procs.push({ name: 'tls-terminator', proc: await forkReady('datapath-nodetls-side.js', ['--config', terminator], 'TLS terminator') });

    const floorFile = join(this.o.workDir, 'floor.json');
    const floor: FloorConfig = {
      listen: FLOOR_ADDRESS, ...proxy, ca, header: this.o.header, value: this.o.value,
      a: { host: TERMINATOR_IP, port: TERMINATOR_PORTS.a, identity: serverId },
      b: { host: TERMINATOR_IP, port: TERMINATOR_PORTS.b, identity: serverId },
    };
    writeFileSync(floorFile, JSON.stringify(floor));
    this.procs.push({ name: 'floor', proc: await forkReady('waypoint-floor.js', ['--config', floorFile], 'the floor proxy') });

    const routes: NodeTlsSideConfig['routes'] = [
      { listen: { host: ORIGINATOR_IP, port: ORIGINATOR_PORTS['tls-pair'] }, connect: { host: TERMINATOR_IP, port: TERMINATOR_PORTS.a } },
      { listen: { host: ORIGINATOR_IP, port: ORIGINATOR_PORTS.floor }, connect: FLOOR_ADDRESS },
    ];
    if (this.o.nginx) {
      for (const [name, workers, listen] of [['nginx-1w', 1, NGINX_ADDRESSES.one], ['nginx-auto', 'auto', NGINX_ADDRESSES.auto]] as const) {
        const n = new NginxProxy({
          bin: this.o.nginx, prefix: join(this.o.workDir, name), workers, listen, serverCert: proxy, clientCert: proxy, ca,
          header: this.o.header, value: this.o.value, accessLog: this.o.accessLogs,
          upstreams: { a: { host: TERMINATOR_IP, port: TERMINATOR_PORTS.a }, b: { host: TERMINATOR_IP, port: TERMINATOR_PORTS.b } },
          upstreamName: TERMINATOR_DNS_NAME,
        });
        this.nginxes.push({ name, proxy: n });
        await n.start();
        routes.push({ listen: { host: ORIGINATOR_IP, port: ORIGINATOR_PORTS[name] }, connect: listen });
      }
    }
    const originator = sideConfig('originator', { side: 'client', ...client, ca, localAddress: ORIGINATOR_IP, routes });
    this.procs.push({ name: 'tls-originator', proc: await forkReady('datapath-nodetls-side.js', ['--config', originator], 'TLS originator') });
  }

  /** The processes of the references by name: tls-originator, tls-terminator, floor. */
  pid(name: 'tls-originator' | 'tls-terminator' | 'floor'): number {
    return this.procs.find((p) => p.name === name)?.proc.pid ?? 0;
  }

  nginx(name: RefName): NginxProxy | undefined {
    return this.nginxes.find((n) => n.name === name)?.proxy;
  }

  allPids(): number[] {
    return [...this.procs.map((p) => p.proc.pid ?? 0), ...this.nginxes.flatMap((n) => [n.proxy.masterPid, ...n.proxy.workerPids()])].filter((p) => p > 0);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.procs.map((p) => stopForked(p.proc)), ...this.nginxes.map((n) => n.proxy.stop())]);
  }
}
