/**
 * The local mesh (`strait up`): the controller, one ztunnel per node and the demo apps, each as its own
 * process on loopback addresses, as they would run in a cluster (DESIGN §7).
 * Invariants: every child this class starts is in `children` until it has exited; stop() ends them all
 * (SIGTERM, then SIGKILL after a grace period: a ztunnel's exceeds its drain period) and removes the state file and
 * a temporary data directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, watch, writeFileSync, type FSWatcher, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { StraitError, errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { loadManifestPath } from '../common/model/index.js';
import { formatProblem } from '../common/model/types.js';
import { planLocalMesh, type LocalPlan, type PlannedApp, type PlannedNode } from './plan.js';
import { DEFAULT_DRAIN_MS, ZTUNNEL_NODE_OPTIONS } from '../ztunnel/config.js';

export const STRAIT_BIN = new URL('../cli/strait.js', import.meta.url).pathname;
export const DEFAULT_CONTROLLER_ADDRESS = '127.0.99.1';
const PORTS = { xds: 15012, controllerAdmin: 15014, socks5: 15080, admin: 15000, metrics: 15020, ready: 15021 };
const STOP_GRACE_MS = 5_000;
/**
 * A ztunnel drains on SIGTERM (stops accepting, lets connections finish for its --drain, then exits 0), so it gets
 * that long plus STOP_GRACE_MS before SIGKILL: the same rule as terminationGracePeriodSeconds in a DaemonSet.
 */
const ZTUNNEL_DRAIN_MS = DEFAULT_DRAIN_MS;
const ZTUNNEL_STOP_GRACE_MS = ZTUNNEL_DRAIN_MS + STOP_GRACE_MS;
const READY_TIMEOUT_MS = 30_000;

export interface LocalMeshOptions {
  manifestDir: string;
  dataDir?: string;
  stateFile?: string;
  logDir?: string;
  logLevel: string;
  controllerAddress?: string;
  /** Workload certificate lifetime the controller issues (its --cert-ttl). */
  certTtl?: string;
  log: Logger;
}

export interface MeshState {
  rootCert: string;
  controller: { pid: number; xds: string; admin: string };
  nodes: Record<string, { pid: number; address: string; socks5: string; admin: string; metrics: string; ready: string }>;
  waypoints: Record<string, { pid: number; address: string; hbone: string; metrics: string }>;
  apps: Record<string, { pid: number; address: string; node: string }>;
}

interface Child {
  name: string;
  proc: ChildProcess;
  exited: Promise<void>;
  out?: WriteStream;
}

export class LocalMesh {
  private readonly children = new Map<string, Child>();
  private readonly dataDir: string;
  private readonly tempData: boolean;
  private readonly controllerAddress: string;
  private readonly log: Logger;
  private plan: LocalPlan = { nodes: [], apps: [], waypoints: [], problems: [] };
  private watcher: FSWatcher | undefined;
  private poll: NodeJS.Timeout | undefined;
  private reconciling: Promise<void> = Promise.resolve();
  private stopping = false;
  private saidWaypoints = new Set<string>();

  constructor(private readonly opts: LocalMeshOptions) {
    this.log = opts.log;
    this.tempData = !opts.dataDir;
    this.dataDir = opts.dataDir ? resolve(opts.dataDir) : mkdtempSync(join(tmpdir(), 'strait-up-'));
    this.controllerAddress = opts.controllerAddress ?? DEFAULT_CONTROLLER_ADDRESS;
    if (opts.logDir) mkdirSync(opts.logDir, { recursive: true });
  }

  get rootCertFile(): string {
    return join(this.dataDir, 'root-cert.pem');
  }

  async start(): Promise<MeshState> {
    const loaded = await loadManifestPath(this.opts.manifestDir);
    if (loaded.problems.some((p) => p.severity === 'error' && p.code === 'STRAIT_ERR_MANIFEST_SOURCE' && p.doc === 0 && loaded.objects.length === 0)) {
      throw new StraitError('STRAIT_ERR_MANIFEST_SOURCE', `cannot read manifests in ${this.opts.manifestDir}: ${loaded.problems.map(formatProblem).join('; ')}`);
    }
    for (const p of loaded.problems) if (p.severity === 'error') this.log.warn(formatProblem(p));
    this.plan = planLocalMesh(loaded.objects.map((o) => o.object));
    for (const p of this.plan.problems) this.log.warn(p);

    await this.startController();
    for (const n of this.plan.nodes) await this.startZtunnel(n);
    for (const a of this.plan.apps) await this.startApp(a);
    this.reportWaypoints();
    this.watch();
    return this.writeState();
  }

  /** The state file's content (DESIGN §7). */
  state(): MeshState {
    const c = this.children.get('controller')!;
    const nodes: MeshState['nodes'] = {};
    for (const n of this.plan.nodes) {
      const child = this.children.get(`ztunnel/${n.name}`);
      if (!child) continue;
      nodes[n.name] = {
        pid: child.proc.pid!, address: n.address, socks5: `${n.address}:${PORTS.socks5}`, admin: `${n.address}:${PORTS.admin}`,
        metrics: `${n.address}:${PORTS.metrics}`, ready: `${n.address}:${PORTS.ready}`,
      };
    }
    const apps: MeshState['apps'] = {};
    for (const a of this.plan.apps) {
      const child = this.children.get(`app/${a.key}`);
      if (child) apps[a.key] = { pid: child.proc.pid!, address: `${a.address}:${a.port}`, node: a.node };
    }
    return {
      rootCert: this.rootCertFile,
      controller: { pid: c.proc.pid!, xds: `${this.controllerAddress}:${PORTS.xds}`, admin: `${this.controllerAddress}:${PORTS.controllerAdmin}` },
      nodes, waypoints: {}, apps,
    };
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.watcher?.close();
    clearInterval(this.poll);
    await this.reconciling.catch(() => undefined);
    // Apps first, then ztunnels, then the controller: the reverse of start.
    const order = [...this.children.keys()].sort((a, b) => rank(a) - rank(b));
    for (const group of [order.filter((k) => k.startsWith('app/')), order.filter((k) => k.startsWith('ztunnel/')), ['controller']]) {
      await Promise.all(group.map((k) => this.stopChild(k)));
    }
    if (this.opts.stateFile) rmSync(this.opts.stateFile, { force: true });
    if (this.tempData) rmSync(this.dataDir, { recursive: true, force: true });
  }

  // ---- children ----

  private spawnChild(name: string, args: string[], env: Record<string, string> = {}, nodeOptions: readonly string[] = []): Child {
    const proc = spawn(process.execPath, [...nodeOptions, STRAIT_BIN, '--log-level', this.opts.logLevel, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env },
    });
    const file = this.opts.logDir ? join(this.opts.logDir, `${name.replace(/[/:]/g, '_')}.log`) : undefined;
    const out = file ? createWriteStream(file, { flags: 'a' }) : undefined;
    const sink = (line: string) => (out ? out.write(line + '\n') : process.stdout.write(line + '\n'));
    createInterface({ input: proc.stdout! }).on('line', sink);
    createInterface({ input: proc.stderr! }).on('line', (line) => sink(JSON.stringify({ level: 'error', component: name, stderr: line })));
    const exited = once(proc, 'exit').then(([code, signal]) => {
      this.children.delete(name);
      out?.end();
      if (!this.stopping) this.log.error({ child: name, code, signal }, `${name} exited unexpectedly`);
    });
    const child = { name, proc, exited, ...(out ? { out } : {}) };
    this.children.set(name, child);
    return child;
  }

  private async stopChild(name: string): Promise<void> {
    const c = this.children.get(name);
    if (!c) return;
    c.proc.kill('SIGTERM');
    const t = setTimeout(() => c.proc.kill('SIGKILL'), name.startsWith('ztunnel/') ? ZTUNNEL_STOP_GRACE_MS : STOP_GRACE_MS);
    await c.exited;
    clearTimeout(t);
  }

  private async startController(): Promise<void> {
    const child = this.spawnChild('controller', ['controller', '--config-dir', resolve(this.opts.manifestDir), '--data-dir', this.dataDir,
      '--xds-address', `${this.controllerAddress}:${PORTS.xds}`, '--admin-address', `${this.controllerAddress}:${PORTS.controllerAdmin}`, ...(this.opts.certTtl ? ['--cert-ttl', this.opts.certTtl] : [])]);
    await this.waitHttp(child, `http://${this.controllerAddress}:${PORTS.controllerAdmin}/ready`, 'controller');
    this.log.info({ xds: `${this.controllerAddress}:${PORTS.xds}`, dataDir: this.dataDir }, 'controller ready');
  }

  private async startZtunnel(n: PlannedNode): Promise<void> {
    const child = this.spawnChild(`ztunnel/${n.name}`, ['ztunnel', '--node', n.name, '--xds-address', `${this.controllerAddress}:${PORTS.xds}`,
      '--token-file', join(this.dataDir, 'tokens', `node-${n.name}.token`), '--root-cert', this.rootCertFile,
      '--listen-address', n.address, '--local-pod-listeners', '--drain', `${ZTUNNEL_DRAIN_MS}ms`], {}, ZTUNNEL_NODE_OPTIONS);
    await this.waitHttp(child, `http://${n.address}:${PORTS.ready}/healthz/ready`, `ztunnel on ${n.name}`);
    this.log.info({ node: n.name, address: n.address, socks5: `${n.address}:${PORTS.socks5}` }, 'ztunnel ready');
  }

  private async startApp(a: PlannedApp): Promise<void> {
    const node = this.plan.nodes.find((n) => n.name === a.node);
    const child = this.spawnChild(`app/${a.key}`, ['demo-app', '--address', a.address, '--port', String(a.port), '--pod', a.pod, '--namespace', a.namespace,
      '--app', a.app, `--version=${a.version}`, '--node', a.node, ...(node ? ['--ztunnel-admin', `${node.address}:${PORTS.admin}`] : [])]);
    await this.waitHttp(child, `http://${a.address}:${a.port}/healthz`, `demo app ${a.key}`);
  }

  private async waitHttp(child: Child, url: string, what: string): Promise<void> {
    const until = Date.now() + READY_TIMEOUT_MS;
    let last = '';
    let exited = false;
    void child.exited.then(() => (exited = true));
    while (Date.now() < until) {
      if (exited) throw new StraitError('STRAIT_ERR_LISTEN', `${what} exited before it was ready (see its log lines above${this.opts.logDir ? ` or in ${this.opts.logDir}` : ''})`);
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
        if (res.ok) return;
        last = `${res.status} ${await res.text()}`;
      } catch (err) {
        last = errorMessage(err);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new StraitError('STRAIT_ERR_LISTEN', `${what} not ready after ${READY_TIMEOUT_MS / 1000}s (${url}: ${last})`);
  }

  private reportWaypoints(): void {
    for (const w of this.plan.waypoints) {
      if (this.saidWaypoints.has(w)) continue;
      this.saidWaypoints.add(w);
      this.log.warn({ waypoint: w }, `waypoint ${w} cannot start: this version of Strait has no waypoint proxy yet; traffic to services bound to it is refused until it runs`);
    }
  }

  // ---- live edits ----

  private watch(): void {
    const schedule = () => {
      this.reconciling = this.reconciling.then(() => this.reconcile()).catch((err) => this.log.error({ err: errorMessage(err) }, 'applying manifest changes failed'));
    };
    let pending: NodeJS.Timeout | undefined;
    try {
      this.watcher = watch(this.opts.manifestDir, { recursive: true, persistent: false }, () => {
        clearTimeout(pending);
        pending = setTimeout(schedule, 200);
      });
    } catch {
      // polling below still applies edits
    }
    this.poll = setInterval(schedule, 2000);
    this.poll.unref();
  }

  /** Starts what new manifests need; stops what they no longer name (only when they load without errors). */
  private async reconcile(): Promise<void> {
    if (this.stopping) return;
    const loaded = await loadManifestPath(this.opts.manifestDir);
    const clean = !loaded.problems.some((p) => p.severity === 'error');
    const next = planLocalMesh(loaded.objects.map((o) => o.object), new Map(this.plan.nodes.map((n) => [n.name, n.address])));
    let changed = false;
    for (const n of next.nodes) {
      if (!this.children.has(`ztunnel/${n.name}`)) {
        this.plan.nodes = [...this.plan.nodes.filter((x) => x.name !== n.name), n];
        await this.startZtunnel(n);
        changed = true;
      }
    }
    for (const a of next.apps) {
      if (!this.children.has(`app/${a.key}`)) {
        this.plan.apps = [...this.plan.apps.filter((x) => x.key !== a.key), a];
        await this.startApp(a);
        changed = true;
      }
    }
    if (clean) {
      for (const a of this.plan.apps) if (!next.apps.some((x) => x.key === a.key)) { await this.stopChild(`app/${a.key}`); changed = true; }
      for (const n of this.plan.nodes) if (!next.nodes.some((x) => x.name === n.name)) { await this.stopChild(`ztunnel/${n.name}`); changed = true; }
      this.plan = next;
    }
    this.plan.waypoints = next.waypoints;
    this.reportWaypoints();
    if (changed) this.writeState();
  }

  private writeState(): MeshState {
    const s = this.state();
    if (this.opts.stateFile) writeFileSync(this.opts.stateFile, JSON.stringify(s, null, 2) + '\n');
    return s;
  }
}

function rank(name: string): number {
  return name.startsWith('app/') ? 0 : name.startsWith('ztunnel/') ? 1 : 2;
}
