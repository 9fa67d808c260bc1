/**
 * The mesh under test for the data-path benchmark: a manifest directory (two nodes, one enrolled namespace,
 * a client pod on node-a, a server pod on node-b, a Service) run by the real `strait up`, with its state file
 * telling where each ztunnel listens and which process it is. Other benchmarks (waypoint.ts) run their own
 * manifests, nodes and log level through the same class.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CPU_PROF_ENV, CPU_PROF_ROLES_ENV } from './datapath-profiler.js';
import { childPids } from './datapath-stats.js';

/** The compiled CLI (this file runs from dist/bench/lib/). */
export const STRAIT_BIN = new URL('../../src/cli/strait.js', import.meta.url).pathname;

export const NODE_A = { name: 'node-a', ip: '127.0.104.1' };
export const NODE_B = { name: 'node-b', ip: '127.0.104.2' };
export const CONTROLLER_IP = '127.0.104.254';
export const CLIENT_POD_IP = '127.0.114.1';
export const SERVER_POD_IP = '127.0.114.2';
export const SERVICE_VIP = '127.0.124.1';
export const NAMESPACE = 'bench';
export const SERVICE_HOST = `server.${NAMESPACE}.svc.cluster.local`;
export const HTTP_PORT = 8080;
export const SINK_PORT = 9000;
export const CLIENT_ID = `spiffe://cluster.local/ns/${NAMESPACE}/sa/client`;
export const SERVER_ID = `spiffe://cluster.local/ns/${NAMESPACE}/sa/server`;

export interface MeshState {
  rootCert: string;
  controller: { pid: number; xds: string; admin: string };
  nodes: Record<string, { pid: number; address: string; socks5: string; admin: string; metrics: string; ready: string }>;
  /** Absent before `strait up` ran waypoints. */
  waypoints?: Record<string, { pid: number; address: string; hbone: string; admin: string; metrics: string; ready: string }>;
}

function manifests(): string {
  const node = (n: { name: string; ip: string }) => ({ apiVersion: 'v1', kind: 'Node', metadata: { name: n.name }, status: { addresses: [{ type: 'InternalIP', address: n.ip }] } });
  // The image is not the demo app's: `strait up` starts nothing for these pods; the bench runs them itself.
  const pod = (name: string, nodeName: string, ip: string, ports: { name: string; containerPort: number }[]) => ({
    apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: NAMESPACE, labels: { app: name } },
    spec: { nodeName, serviceAccountName: name, containers: [{ name: 'app', image: 'strait-bench/datapath', ports }] },
    status: { podIP: ip },
  });
  const objects = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE, labels: { 'istio.io/dataplane-mode': 'ambient' } } },
    node(NODE_A), node(NODE_B),
    pod('client', NODE_A.name, CLIENT_POD_IP, []),
    pod('server', NODE_B.name, SERVER_POD_IP, [{ name: 'http', containerPort: HTTP_PORT }, { name: 'sink', containerPort: SINK_PORT }]),
    {
      apiVersion: 'v1', kind: 'Service', metadata: { name: 'server', namespace: NAMESPACE },
      spec: { clusterIP: SERVICE_VIP, selector: { app: 'server' }, ports: [{ name: 'http', port: HTTP_PORT, targetPort: 'http' }, { name: 'sink', port: SINK_PORT, targetPort: 'sink' }] },
    },
  ];
  return objects.map((o) => JSON.stringify(o)).join('\n---\n') + '\n';
}

export interface MeshOptions {
  workDir: string;
  /** The manifest directory's one file (default: the data-path mesh above). */
  manifests?: string;
  /** Nodes whose ztunnels must be in the state file (default: node-a and node-b above). */
  nodes?: { name: string }[];
  controllerAddress?: string;
  /** `strait --log-level` for every process of the mesh (default warn: no per-connection access logs). */
  logLevel?: string;
  /** Which `strait` commands load the profiler (default: the ztunnels). */
  cpuProfileRoles?: string[];
  /** If set, each ztunnel writes a CPU profile here between two SIGUSR2 (see datapath-profiler.ts). */
  cpuProfileDir?: string;
  readyTimeoutMs?: number;
  /** More `strait up` arguments (e.g. `--workers 2`). */
  upArgs?: string[];
  /** More environment for `strait up` and so for every process of the mesh (e.g. STRAIT_SAME_NODE_FAST_PATH=false). */
  env?: Record<string, string>;
}

/** `strait up` on the bench manifests. */
export class BenchMesh {
  readonly manifestDir: string;
  readonly dataDir: string;
  readonly logDir: string;
  readonly stateFile: string;
  private proc: ChildProcess | undefined;
  private exited: Promise<unknown> | undefined;
  state!: MeshState;

  constructor(private readonly opts: MeshOptions) {
    this.manifestDir = join(opts.workDir, 'manifests');
    this.dataDir = join(opts.workDir, 'data');
    this.logDir = join(opts.workDir, 'logs');
    this.stateFile = join(opts.workDir, 'state.json');
  }

  get upLog(): string {
    return join(this.logDir, 'up.out');
  }

  async start(): Promise<MeshState> {
    for (const d of [this.manifestDir, this.dataDir, this.logDir]) mkdirSync(d, { recursive: true });
    writeFileSync(join(this.manifestDir, 'bench.yaml'), this.opts.manifests ?? manifests());
    const env = { ...process.env, ...this.opts.env };
    if (this.opts.cpuProfileDir) {
      env.NODE_OPTIONS = `${env.NODE_OPTIONS ?? ''} --import=${new URL('./datapath-profiler.js', import.meta.url).href}`.trim();
      env[CPU_PROF_ENV] = this.opts.cpuProfileDir;
      if (this.opts.cpuProfileRoles) env[CPU_PROF_ROLES_ENV] = this.opts.cpuProfileRoles.join(',');
    }
    // Access logs are info lines, one per connection: warn keeps the ztunnels from logging on the hot path.
    this.proc = spawn(process.execPath, [STRAIT_BIN, '--log-level', this.opts.logLevel ?? 'warn', 'up', this.manifestDir, '--state-file', this.stateFile,
      '--log-dir', this.logDir, '--data-dir', this.dataDir, '--controller-address', this.opts.controllerAddress ?? CONTROLLER_IP, ...(this.opts.upArgs ?? [])], { stdio: ['ignore', 'pipe', 'pipe'], env });
    const out = createWriteStream(this.upLog);
    this.proc.stdout!.pipe(out);
    this.proc.stderr!.pipe(out);
    this.exited = once(this.proc, 'exit');
    let gone = false;
    void this.exited.then(() => (gone = true));

    const until = Date.now() + (this.opts.readyTimeoutMs ?? 60_000);
    while (!existsSync(this.stateFile)) {
      if (gone) throw new Error(`strait up exited before the mesh was ready; its last output:\n${this.tail(this.upLog)}`);
      if (Date.now() > until) throw new Error(`strait up not ready after ${this.opts.readyTimeoutMs ?? 60_000} ms; see ${this.upLog}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // The file is written in one call once every ztunnel answers its readiness probe; read until it parses.
    for (;;) {
      try {
        this.state = JSON.parse(readFileSync(this.stateFile, 'utf8')) as MeshState;
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    for (const n of this.opts.nodes ?? [NODE_A, NODE_B]) if (!this.state.nodes[n.name]) throw new Error(`the mesh has no ztunnel for ${n.name}: ${JSON.stringify(this.state.nodes)}`);
    return this.state;
  }

  private tail(file: string, lines = 15): string {
    try {
      return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no output)';
    }
  }

  ztunnelPids(): Record<string, number> {
    return { [`ztunnel/${NODE_A.name}`]: this.state.nodes[NODE_A.name]!.pid, [`ztunnel/${NODE_B.name}`]: this.state.nodes[NODE_B.name]!.pid };
  }

  /** The ztunnels' processes by name: each primary and, with `--workers N`, its workers ("ztunnel/node-a/w<pid>"). */
  ztunnelProcesses(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, pid] of Object.entries(this.ztunnelPids())) {
      out[name] = pid;
      for (const child of childPids(pid)) out[`${name}/w${child}`] = child;
    }
    return out;
  }

  /** Every process of the mesh: strait up, the controller, the ztunnels, the waypoints. */
  allPids(): number[] {
    return [this.proc?.pid ?? 0, this.state.controller.pid, ...Object.values(this.state.nodes).flatMap((n) => [n.pid, ...childPids(n.pid)]),
      ...Object.values(this.state.waypoints ?? {}).map((w) => w.pid)].filter((p) => p > 0);
  }

  /** The `strait up` process itself (it relays every child's log lines into the log files). */
  upPid(): number {
    return this.proc?.pid ?? 0;
  }

  socks5(node = NODE_A.name): { host: string; port: number } {
    const [host, port] = this.state.nodes[node]!.socks5.split(':');
    return { host: host!, port: Number(port) };
  }

  async stop(): Promise<void> {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc?.kill('SIGKILL'), 20_000);
    await this.exited;
    clearTimeout(t);
  }
}
