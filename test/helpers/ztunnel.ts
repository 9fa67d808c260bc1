import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { socks5Connect } from '../../src/demo/socks5-client.js';
import { ZTUNNEL_NODE_OPTIONS } from '../../src/ztunnel/config.js';
import { startController, type ControllerHandle } from './controller.js';
import { docs } from './manifests.js';
import { STRAIT_BIN, StraitProcess } from './procs.js';
import { tempDir } from './temp-dir.js';
import { eventually } from './eventually.js';

/**
 * A real controller (file source) and one real `strait ztunnel` process for one node, started by the test itself
 * (no `strait up`), so the test can signal it, read its exit code and start it under `prlimit`. The test plays
 * the pods' applications: it listens on their addresses.
 */
export class ZtunnelNode {
  readonly dir = tempDir('ztn-manifests');
  readonly data = tempDir('ztn-data');
  controller!: ControllerHandle;
  proc!: StraitProcess;
  /** Extra flags for the controller start() starts. */
  controllerArgs: string[] = [];

  constructor(readonly node: string, readonly address: string, readonly manifests: unknown[]) {}

  get socks5() { return { host: this.address, port: 15080 }; }
  get admin() { return `${this.address}:15000`; }

  async start(args: string[] = [], prlimit?: string): Promise<this> {
    writeFileSync(join(this.dir.path, 'mesh.yaml'), docs(...this.manifests));
    this.controller = await startController(this.dir.path, this.data.path, this.controllerArgs);
    await this.startZtunnel(args, prlimit);
    return this;
  }

  /**
   * One process (`--workers 1`) unless `args` choose: the tests of per-process limits (descriptors, HBONE handshake and
   * session budgets) measure one process; test/integration/ztunnel-workers.test.ts runs the workers.
   */
  async startZtunnel(args: string[] = [], prlimit?: string): Promise<StraitProcess> {
    const argv = [...ZTUNNEL_NODE_OPTIONS, STRAIT_BIN, 'ztunnel', '--node', this.node, '--xds-address', this.controller.xds,
      '--token-file', join(this.data.path, 'tokens', `node-${this.node}.token`), '--root-cert', this.controller.rootFile,
      '--listen-address', this.address, '--local-pod-listeners', ...(args.includes('--workers') ? [] : ['--workers', '1']), ...args];
    const child = prlimit
      ? spawn('prlimit', [`--nofile=${prlimit}`, process.execPath, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = new StraitProcess(child);
    await this.proc.waitFor((l) => l.msg === 'ztunnel listening', 20_000, 'ztunnel listening');
    await eventually(async () => (await fetch(`http://${this.address}:15021/healthz/ready`)).ok, 20_000, 'ztunnel ready');
    return this.proc;
  }

  /** The sum of a metric's series whose labels include `labels` (all of them when empty). */
  async metric(name: string, labels = ''): Promise<number> {
    const text = await (await fetch(`http://${this.address}:15020/metrics`)).text();
    return text.split('\n')
      .filter((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && l.includes(labels))
      .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  }

  async configDump(): Promise<any> {
    return (await fetch(`http://${this.admin}/config_dump`)).json();
  }

  /** A SOCKS5 connection from `fromIp` (an enrolled pod) through this node's ztunnel. */
  connect(fromIp: string, host: string, port: number, timeoutMs = 10_000) {
    return socks5Connect({ proxy: this.socks5, localAddress: fromIp, target: { host, port }, timeoutMs });
  }

  async stop(): Promise<void> {
    await this.proc?.stop(15_000);
    await this.controller?.stop();
    this.dir.remove();
    this.data.remove();
  }
}

/** A TCP server on an address the test owns, echoing every byte; closed (connections destroyed) by close(). */
export async function echoServer(host: string, port: number): Promise<{ server: net.Server; sockets: Set<net.Socket>; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
    s.pipe(s);
  });
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(port, host, () => resolve()); });
  return {
    server, sockets,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}
