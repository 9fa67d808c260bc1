/**
 * The local mesh (`strait up`): the controller, one ztunnel per node and the demo apps, each as its own
 * process on loopback addresses, as they would run in a cluster (DESIGN §7).
 * Invariants: every component has one Supervisor in `components` from when it is first started until it is removed
 * or the mesh stops; the state file, once written, is rewritten on every change of a component's pid or status, so
 * it never names a dead process; start() either resolves with everything ready or rejects having stopped what it
 * started and removed what it made (temporary data directory, manifest copy, state file); stop() ends every child
 * (SIGTERM, then SIGKILL after a grace period: a ztunnel's exceeds its drain period) and removes the same.
 */
import { mkdirSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { StraitError, errorMessage } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { loadManifestPath, type ParseResult } from '../common/model/index.js';
import { formatProblem } from '../common/model/types.js';
import { formatAddressBase, relocateText } from './address-base.js';
import { MeshChild } from './child.js';
import { PORTS, appSpec, controllerSpec, listenAddresses, waypointPodsManifest, waypointSpec, ztunnelSpec, type MeshPlaces } from './components.js';
import { ManifestMirror } from './manifest-mirror.js';
import { watchManifests, type ManifestWatch } from './manifest-watch.js';
import { planLocalMesh, type LocalPlan, type PlannedApp, type PlannedNode, type PlannedWaypoint } from './plan.js';
import { describeTaken, takenAddresses } from './preflight.js';
import { Supervisor, type ComponentSpec, type ComponentStatus } from './supervisor.js';
import { UsageSampler } from './usage.js';
import { writeStateFile } from './up-state-file.js';

export { STRAIT_BIN } from './child.js';
const READY_TIMEOUT_MS = 30_000;
const EMPTY_PLAN: LocalPlan = { nodes: [], apps: [], pods: [], waypoints: [], problems: [], errors: [] };

export interface LocalMeshOptions {
  manifestDir: string;
  dataDir?: string;
  stateFile?: string;
  logDir?: string;
  logLevel: string;
  /** Second octet N of the address base 127.N.0.0 (0: addresses as the manifests write them). */
  addressBase?: number;
  /** Default 127.N.99.1. */
  controllerAddress?: string;
  /** Workload certificate lifetime the controller issues (its --cert-ttl). */
  certTtl?: string;
  /** --workers of every ztunnel and waypoint (default 1). */
  workers?: number;
  log: Logger;
  /** Where the components' output lines go without a log directory (default: standard output). */
  write?: (line: string) => void;
}

export interface ComponentState {
  /** null while the component is not running (being restarted). */
  pid: number | null;
  status: ComponentStatus;
  restarts: number;
}

export interface MeshState {
  /** The `strait up` (or `strait demo`) process. */
  pid: number;
  rootCert: string;
  addressBase: string;
  controller: ComponentState & { xds: string; admin: string };
  nodes: Record<string, ComponentState & { address: string; socks5: string; admin: string; metrics: string; ready: string }>;
  waypoints: Record<string, ComponentState & { address: string; hbone: string; admin: string; metrics: string; ready: string }>;
  apps: Record<string, ComponentState & { address: string; node: string }>;
}

export interface ComponentUsage extends ComponentState {
  /** "controller", "ztunnel/node-a", "app/shop/web-1/app:8080" */
  name: string;
  cpuPercent: number | null;
  rssBytes: number | null;
}

export class LocalMesh {
  private readonly components = new Map<string, Supervisor>();
  private readonly base: number;
  private readonly controllerAddress: string;
  private readonly nodePoolPrefix: string;
  private readonly waypointPoolPrefix: string;
  /** Manifests the mesh writes for the controller (the waypoints' pods): `<data-dir>/platform`, removed at stop. */
  private platformDir: string | undefined;
  private readonly log: Logger;
  private readonly sampler = new UsageSampler();
  private dataDir = '';
  private madeDataDir = false;
  private mirror: ManifestMirror | undefined;
  private plan: LocalPlan = EMPTY_PLAN;
  private watcher: ManifestWatch | undefined;
  private reconciling: Promise<void> = Promise.resolve();
  private started = false;
  private stopping = false;
  private stopped: Promise<void> | undefined;
  private readonly said = new Set<string>();

  constructor(private readonly opts: LocalMeshOptions) {
    this.log = opts.log;
    this.base = opts.addressBase ?? 0;
    this.controllerAddress = opts.controllerAddress ?? `127.${this.base}.99.1`;
    this.nodePoolPrefix = `127.${this.base}.100.`;
    this.waypointPoolPrefix = `127.${this.base}.101.`;
  }

  get rootCertFile(): string {
    return join(this.dataDir, 'root-cert.pem');
  }

  /** The demo apps as planned (addresses already in the address base). */
  get apps(): readonly PlannedApp[] {
    return this.plan.apps;
  }

  async start(): Promise<MeshState> {
    try {
      return await this.startAll();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Ends every child, then removes the state file and what the mesh made. Safe to call more than once. */
  stop(): Promise<void> {
    return (this.stopped ??= this.stopAll());
  }

  /**
   * Last resort when the process exits without stop() having finished (a second signal, a crash): removes what the
   * mesh made. The children notice their parent is gone by themselves (see child.ts).
   */
  cleanupSync(): void {
    if (this.opts.stateFile && this.started) rmSync(this.opts.stateFile, { force: true });
    if (this.madeDataDir) rmSync(this.dataDir, { recursive: true, force: true });
    this.mirror?.remove();
    if (this.platformDir) rmSync(this.platformDir, { recursive: true, force: true });
  }

  /** The state file's content (DESIGN §7). */
  state(): MeshState {
    const c = this.components.get('controller');
    const nodes: MeshState['nodes'] = {};
    for (const n of this.plan.nodes) {
      const s = this.components.get(`ztunnel/${n.name}`);
      if (!s) continue;
      nodes[n.name] = {
        ...componentState(s), address: n.address, socks5: `${n.address}:${PORTS.socks5}`, admin: `${n.address}:${PORTS.admin}`,
        metrics: `${n.address}:${PORTS.metrics}`, ready: `${n.address}:${PORTS.ready}`,
      };
    }
    const apps: MeshState['apps'] = {};
    for (const a of this.plan.apps) {
      const s = this.components.get(`app/${a.key}`);
      if (s) apps[a.key] = { ...componentState(s), address: `${a.address}:${a.port}`, node: a.node };
    }
    const waypoints: MeshState['waypoints'] = {};
    for (const w of this.plan.waypoints) {
      const s = this.components.get(`waypoint/${w.key}`);
      if (!s) continue;
      waypoints[w.key] = {
        ...componentState(s), address: w.address, hbone: `${w.address}:${PORTS.hbone}`, admin: `${w.address}:${PORTS.admin}`,
        metrics: `${w.address}:${PORTS.metrics}`, ready: `${w.address}:${PORTS.ready}`,
      };
    }
    return {
      pid: process.pid,
      rootCert: this.rootCertFile,
      addressBase: formatAddressBase(this.base),
      controller: { ...(c ? componentState(c) : { pid: null, status: 'stopped', restarts: 0 }), xds: `${this.controllerAddress}:${PORTS.xds}`, admin: `${this.controllerAddress}:${PORTS.controllerAdmin}` },
      nodes, waypoints, apps,
    };
  }

  /** CPU and memory of every component's process (systeminformation), controller first, then ztunnels, then apps. */
  async usage(): Promise<ComponentUsage[]> {
    const list = [...this.components.values()].sort((a, b) => rank(b.name) - rank(a.name) || a.name.localeCompare(b.name));
    const samples = await this.sampler.sample(list.map((s) => s.pid).filter((p): p is number => p !== null));
    return list.map((s) => {
      const u = s.pid !== null ? samples.get(s.pid) : undefined;
      return { name: s.name, ...componentState(s), cpuPercent: u?.cpuPercent ?? null, rssBytes: u?.rssBytes ?? null };
    });
  }

  /** What to do when addresses are taken: said with every such failure. */
  conflictHint(): string {
    const next = (this.base + 1) % 256;
    return `Another local mesh (strait up or strait demo) probably runs on these addresses: stop it, or run this one on other loopback `
      + `addresses with --address-base ${formatAddressBase(next === 0 ? 1 : next)}`;
  }

  // ---- start and stop ----

  private async startAll(): Promise<MeshState> {
    if (this.opts.logDir) mkdirSync(this.opts.logDir, { recursive: true });
    try {
      statSync(this.opts.manifestDir);
    } catch (err) {
      throw new StraitError('STRAIT_ERR_MANIFEST_SOURCE', `cannot read manifests in ${this.opts.manifestDir}: ${errorMessage(err)}`);
    }
    if (this.opts.dataDir) {
      this.dataDir = resolve(this.opts.dataDir);
    } else {
      this.dataDir = mkdtempSync(join(tmpdir(), 'strait-up-'));
      this.madeDataDir = true;
    }
    if (this.base !== 0) this.mirror = new ManifestMirror(resolve(this.opts.manifestDir), (text) => relocateText(text, this.base));
    // Inside the data directory, so that nothing is left anywhere else even when strait up is killed outright.
    this.platformDir = join(this.dataDir, 'platform');
    rmSync(this.platformDir, { recursive: true, force: true });
    mkdirSync(this.platformDir, { recursive: true, mode: 0o700 });

    const { loaded, plan } = await this.load();
    if (loaded.problems.some((p) => p.severity === 'error' && p.code === 'STRAIT_ERR_MANIFEST_SOURCE' && p.doc === 0 && loaded.objects.length === 0)) {
      throw new StraitError('STRAIT_ERR_MANIFEST_SOURCE', `cannot read manifests in ${this.opts.manifestDir}: ${loaded.problems.map(formatProblem).join('; ')}`);
    }
    for (const p of loaded.problems) if (p.severity === 'error') this.log.warn(formatProblem(p));
    for (const p of plan.problems) this.log.warn(p);
    if (plan.errors.length > 0) {
      for (const e of plan.errors) this.said.add(e);
      throw new StraitError('STRAIT_ERR_LOCAL_MESH', `cannot run ${this.opts.manifestDir} as a local mesh:\n  ${plan.errors.join('\n  ')}`);
    }
    this.plan = plan;
    this.writeWaypointPods(plan.waypoints);

    const taken = await takenAddresses(listenAddresses(this.controllerAddress, plan));
    if (taken.length > 0) {
      throw new StraitError('STRAIT_ERR_LISTEN', `cannot start the local mesh: ${taken.length === 1 ? 'an address it listens on is' : `${taken.length} addresses it listens on are`} `
        + `in use: ${describeTaken(taken)}. ${this.conflictHint()}.`);
    }

    await this.add(controllerSpec(this.places()), true);
    this.log.info({ xds: `${this.controllerAddress}:${PORTS.xds}`, dataDir: this.dataDir }, 'controller ready');
    for (const n of plan.nodes) await this.addZtunnel(n, true);
    for (const a of plan.apps) await this.add(this.appSpec(a), true);
    for (const w of plan.waypoints) await this.addWaypoint(w, true);
    this.watch();
    this.started = true;
    void this.sampler.sample([]).catch(() => undefined); // the first sample only sets the baseline for CPU figures
    return this.writeState();
  }

  private async stopAll(): Promise<void> {
    this.stopping = true;
    this.watcher?.close();
    // Apps first, then waypoints, then ztunnels, then the controller: the reverse of start. Stopping a component also ends a wait
    // for it to get ready, so an edit being applied finishes at once; what it started is stopped in the second pass.
    const stopEverything = async () => {
      const all = [...this.components.values()];
      for (const r of [0, 1, 2, 3]) await Promise.all(all.filter((s) => rank(s.name) === r).map((s) => s.stop()));
    };
    await stopEverything();
    await this.reconciling.catch(() => undefined);
    await stopEverything();
    if (this.opts.stateFile && this.started) rmSync(this.opts.stateFile, { force: true });
    if (this.madeDataDir) rmSync(this.dataDir, { recursive: true, force: true });
    this.mirror?.remove();
    if (this.platformDir) rmSync(this.platformDir, { recursive: true, force: true });
  }

  private async load(): Promise<{ loaded: ParseResult; plan: LocalPlan }> {
    let dir = this.opts.manifestDir;
    if (this.mirror) {
      this.mirror.sync();
      dir = this.mirror.dir;
    }
    const loaded = await loadManifestPath(dir);
    const plan = planLocalMesh(loaded.objects.map((o) => o.object), {
      previous: new Map(this.plan.nodes.map((n) => [n.name, n.address])), nodePoolPrefix: this.nodePoolPrefix,
      previousWaypoints: new Map(this.plan.waypoints.map((w) => [w.key, w.address])), waypointPoolPrefix: this.waypointPoolPrefix,
    });
    return { loaded, plan };
  }

  // ---- components ----

  private async add(spec: ComponentSpec, fatal: boolean): Promise<void> {
    if (this.stopping) throw new StraitError('STRAIT_ERR_LOCAL_MESH', `not starting ${spec.what}: the local mesh is stopping`);
    const s = new Supervisor(spec, {
      spawn: (c) => MeshChild.spawn(c, this.opts.logLevel, { ...(this.opts.logDir ? { logDir: this.opts.logDir } : {}), write: this.opts.write ?? ((l) => process.stdout.write(l)) }),
      log: this.log, onChange: () => this.componentChanged(), readyTimeoutMs: READY_TIMEOUT_MS, conflictHint: `${this.conflictHint()}.`,
    });
    this.components.set(spec.name, s);
    await s.start(fatal);
  }

  private async addZtunnel(n: PlannedNode, fatal: boolean): Promise<void> {
    await this.add(ztunnelSpec(this.places(), n), fatal);
    if (this.components.get(`ztunnel/${n.name}`)?.status === 'running') {
      this.log.info({ node: n.name, address: n.address, socks5: `${n.address}:${PORTS.socks5}` }, 'ztunnel ready');
    }
  }

  private async remove(name: string): Promise<void> {
    const s = this.components.get(name);
    if (!s) return;
    await s.stop();
    this.components.delete(name);
  }

  private componentChanged(): void {
    if (this.started && !this.stopping) this.writeState();
  }

  private places(): MeshPlaces {
    return {
      controllerAddress: this.controllerAddress, dataDir: this.dataDir, configDir: this.mirror?.dir ?? resolve(this.opts.manifestDir),
      ...(this.platformDir ? { extraConfigDir: this.platformDir } : {}), ...(this.opts.certTtl ? { certTtl: this.opts.certTtl } : {}),
      ...(this.opts.workers ? { workers: this.opts.workers } : {}),
    };
  }

  private appSpec(a: PlannedApp): ComponentSpec {
    return appSpec(a, this.plan.nodes.find((n) => n.name === a.node));
  }

  private async addWaypoint(w: PlannedWaypoint, fatal: boolean): Promise<void> {
    await this.add(waypointSpec(this.places(), w), fatal);
    if (this.components.get(`waypoint/${w.key}`)?.status === 'running') {
      this.log.info({ waypoint: w.key, address: w.address, hbone: `${w.address}:${PORTS.hbone}` }, 'waypoint ready');
    }
  }

  /** The waypoints' pods, for the controller (written by rename: it never reads half a file). */
  private writeWaypointPods(waypoints: readonly PlannedWaypoint[]): void {
    if (!this.platformDir) return;
    const file = join(this.platformDir, 'waypoint-pods.yaml');
    writeFileSync(`${file}.partial`, waypointPodsManifest(waypoints));
    renameSync(`${file}.partial`, file);
  }

  // ---- live edits ----

  private watch(): void {
    this.watcher = watchManifests(this.opts.manifestDir, () => {
      this.reconciling = this.reconciling.then(() => this.reconcile()).catch((err) => this.log.error({ err: errorMessage(err) }, 'applying manifest changes failed'));
    });
  }

  /**
   * Starts what new manifests need; stops what they no longer name (only when they load without errors). A new
   * component that does not start is retried with backoff like a crashed one; the rest keeps running.
   */
  private async reconcile(): Promise<void> {
    if (this.stopping) return;
    const { loaded, plan: next } = await this.load();
    if (this.stopping) return;
    // A manifest or pod refused (e.g. a bad demo annotation) stops nothing that runs: removals wait for a clean load.
    const clean = !loaded.problems.some((p) => p.severity === 'error') && next.errors.length === 0;
    const runningWaypoints = this.plan.waypoints;
    for (const e of next.errors) {
      if (this.said.has(e)) continue;
      this.said.add(e);
      this.log.error(e);
    }
    let changed = false;
    for (const n of next.nodes) {
      if (this.components.has(`ztunnel/${n.name}`)) continue;
      this.plan = { ...this.plan, nodes: [...this.plan.nodes.filter((x) => x.name !== n.name), n] };
      await this.addZtunnel(n, false);
      changed = true;
    }
    for (const a of next.apps) {
      const running = this.components.get(`app/${a.key}`);
      if (running && sameArgs(running.spec.args, this.appSpec(a).args)) continue;
      // An app whose labels or demo annotations changed is started again with its new command line.
      if (running) await this.remove(`app/${a.key}`);
      this.plan = { ...this.plan, apps: [...this.plan.apps.filter((x) => x.key !== a.key), a] };
      await this.add(this.appSpec(a), false);
      changed = true;
    }
    if (clean) {
      for (const a of this.plan.apps) if (!next.apps.some((x) => x.key === a.key)) { await this.remove(`app/${a.key}`); changed = true; }
      for (const n of this.plan.nodes) if (!next.nodes.some((x) => x.name === n.name)) { await this.remove(`ztunnel/${n.name}`); changed = true; }
      this.plan = next;
    }
    const added = next.waypoints.filter((w) => !this.components.has(`waypoint/${w.key}`));
    const gone = clean ? runningWaypoints.filter((w) => !next.waypoints.some((x) => x.key === w.key)) : [];
    if (added.length > 0 || gone.length > 0) {
      for (const w of gone) { await this.remove(`waypoint/${w.key}`); changed = true; }
      const keep = clean ? [] : runningWaypoints.filter((w) => !next.waypoints.some((x) => x.key === w.key));
      this.plan = { ...this.plan, waypoints: [...keep, ...next.waypoints] };
      this.writeWaypointPods(this.plan.waypoints);
      for (const w of added) { await this.addWaypoint(w, false); changed = true; }
    }
    if (changed) this.writeState();
  }

  private writeState(): MeshState {
    const s = this.state();
    if (this.opts.stateFile) writeStateFile(this.opts.stateFile, JSON.stringify(s, null, 2) + '\n');
    return s;
  }
}

function componentState(s: Supervisor): ComponentState {
  return { pid: s.pid, status: s.status, restarts: s.restarts };
}

const sameArgs = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** Stop order: apps, waypoints, ztunnels, the controller (the reverse of start). */
function rank(name: string): number {
  return name.startsWith('app/') ? 0 : name.startsWith('waypoint/') ? 1 : name.startsWith('ztunnel/') ? 2 : 3;
}
