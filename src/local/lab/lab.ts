/**
 * A lab (`strait lab up`, DESIGN §7, lab contract §3): the manifests' cluster in network namespaces — the controller,
 * one node namespace per node with its ztunnel capturing its pods, one namespace per pod running the pod's
 * lab-command or demo app, the waypoints in pod namespaces of the first node, Service VIPs DNATed in every node —
 * each process supervised as `strait up` supervises its own, and edits of the manifests applied live.
 * Invariants: every namespace is known to `net` from before it exists until it is deleted; the state file is written
 * as soon as the lab has its prefix (so `strait lab down` finds a lab killed while it was being built), rewritten on
 * every change, and removed at stop only if this lab wrote it; start() resolves with everything ready or rejects
 * having removed everything it made; stop() ends every process (pods, waypoints, ztunnels, then the controller),
 * then deletes every namespace (their links, routes and rules go with them), the directories it made and the state file.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { StraitError, errorMessage } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { loadManifestPath, type ParseResult } from '../../common/model/index.js';
import { formatProblem } from '../../common/model/types.js';
import { labAddressText } from '../address-base.js';
import { PORTS, appSpec, controllerSpec, waypointPodsManifest, waypointSpec, ztunnelSpec, type MeshPlaces } from '../components.js';
import { ManifestMirror } from '../manifest-mirror.js';
import { watchManifests, type ManifestWatch } from '../manifest-watch.js';
import type { ComponentSpec } from '../supervisor.js';
import { removeLeftovers } from './down.js';
import { LabProcesses } from './processes.js';
import { FABRIC_INTERFACE, LabNetwork, namespacesWithPrefix, run } from './network.js';
import { CONTROLLER_ADDRESS, planLab, type LabNode, type LabPlan, type LabService } from './plan.js';
import { serviceTablesSetup, serviceTablesUpdate } from './services.js';
import { isLabUpAlive, markLabDir, readLabState, removeLabDir, writeLabState, type LabState, type ProcessState } from './state.js';

/** Pods whose processes start at the same time (a machine with 2 cores starts 10 demo apps in half the time with 4). */
const POD_START_CONCURRENCY = 4;
const STOP_GRACE_MS = 5_000;
const EMPTY_PLAN: LabPlan = { nodes: [], pods: [], waypoints: [], services: [], problems: [], errors: [] };

export interface NetnsLabOptions {
  manifestDir: string;
  stateFile: string;
  dataDir?: string;
  logDir?: string;
  logLevel: string;
  log: Logger;
  /** Where the processes' output lines go without a log directory (default: standard output). */
  write?: (line: string) => void;
  /** The iptables binary (STRAIT_IPTABLES); default: chosen as the capture scripts choose. */
  iptables?: string;
}

/** A namespace the lab made for a pod or a waypoint ("pod/<ns>/<name>", "waypoint/<ns>/<name>"). */
interface BuiltPod {
  netns: string;
  hostInterface: string;
  node: string;
  address: string;
}

export class NetnsLab {
  private id = '';
  private prefix = '';
  private net: LabNetwork | undefined;
  private readonly processes: LabProcesses;
  private readonly nodes = new Map<string, LabNode>();
  private readonly pods = new Map<string, BuiltPod>();
  /** Routes applied in each node's (and the controller's) namespace: pod address → via. */
  private readonly routes = new Map<string, Map<string, string>>();
  /** Service rules applied in each node's namespace. */
  private readonly serviceRules = new Map<string, string>();
  private nextPod = 1;
  private plan: LabPlan = EMPTY_PLAN;
  private readonly log: Logger;
  private dataDir = '';
  private platformDir = '';
  private readonly temporaryDirs: string[] = [];
  private mirror: ManifestMirror | undefined;
  private waypointPods = '';
  private watcher: ManifestWatch | undefined;
  private reconciling: Promise<void> = Promise.resolve();
  private wroteState = false;
  private stopping = false;
  private stopped: Promise<void> | undefined;
  private readonly said = new Set<string>();

  constructor(private readonly opts: NetnsLabOptions) {
    this.log = opts.log;
    this.processes = new LabProcesses({
      logLevel: opts.logLevel, ...(opts.logDir ? { logDir: opts.logDir } : {}), write: opts.write ?? ((l) => process.stdout.write(l)), log: opts.log,
      onChange: () => this.componentChanged(),
    });
  }

  async start(): Promise<LabState> {
    try {
      return await this.startAll();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Ends every process, then removes every namespace, directory and the state file. Safe to call more than once. */
  stop(): Promise<void> {
    return (this.stopped ??= this.stopAll());
  }

  /** Last resort when the process exits without stop() having finished (a second signal, a crash). */
  cleanupSync(): void {
    this.net?.destroySync();
    for (const dir of this.temporaryDirs) removeLabDir(dir, this.id);
    if (this.wroteState) rmSync(this.opts.stateFile, { force: true });
  }

  // ---- start and stop ----

  private async startAll(): Promise<LabState> {
    for (const tool of [['ip', '-V'], ['curl', '--version'], ['sysctl', '--version']]) await run(tool);
    try {
      statSync(this.opts.manifestDir);
    } catch (err) {
      throw new StraitError('STRAIT_ERR_MANIFEST_SOURCE', `cannot read manifests in ${this.opts.manifestDir}: ${errorMessage(err)}`);
    }
    await this.takeStateFile();
    await this.chooseId();
    this.makeDirs();
    this.writeState();
    this.log.info({ id: this.id, prefix: this.prefix, stateFile: this.opts.stateFile, manifestDir: this.opts.manifestDir, dataDir: this.dataDir }, 'lab starting');

    const { loaded, plan } = await this.load();
    if (loaded.problems.some((p) => p.severity === 'error' && p.code === 'STRAIT_ERR_MANIFEST_SOURCE' && p.doc === 0 && loaded.objects.length === 0)) {
      throw new StraitError('STRAIT_ERR_MANIFEST_SOURCE', `cannot read manifests in ${this.opts.manifestDir}: ${loaded.problems.map(formatProblem).join('; ')}`);
    }
    for (const p of loaded.problems) if (p.severity === 'error') this.log.warn(formatProblem(p));
    for (const p of plan.problems) this.say('warn', p);
    if (plan.errors.length > 0) {
      throw new StraitError('STRAIT_ERR_LAB', `cannot run ${this.opts.manifestDir} as a lab:\n  ${plan.errors.join('\n  ')}`);
    }
    this.net = new LabNetwork(this.prefix, this.opts.iptables);
    await this.net.createBase();
    await this.apply(plan, true, true);
    this.watcher = watchManifests(this.opts.manifestDir, () => {
      this.reconciling = this.reconciling.then(() => this.reconcile()).catch((err) => this.log.error({ err: errorMessage(err) }, 'applying manifest changes failed'));
    });
    return this.writeState();
  }

  /** Refuses when the state file names a live lab; removes the leftovers of a dead one. */
  private async takeStateFile(): Promise<void> {
    const old = readLabState(this.opts.stateFile);
    if (!old) return;
    if (isLabUpAlive(old.pid)) {
      throw new StraitError('STRAIT_ERR_LAB', `a lab is already running (lab up pid ${old.pid}, namespaces ${old.prefix}*, state file ${this.opts.stateFile}): `
        + `stop it with \`strait lab down --state-file ${this.opts.stateFile}\`, or run this one with another --state-file`);
    }
    this.log.warn({ lab_up_pid: old.pid, prefix: old.prefix }, `the lab of ${this.opts.stateFile} is gone (lab up pid ${old.pid} is not running): removing what it left`);
    const left = await removeLeftovers(old, this.log);
    if (left.length > 0) this.log.error({ left }, 'could not remove everything the old lab left');
    rmSync(this.opts.stateFile, { force: true });
  }

  private async chooseId(): Promise<void> {
    const taken = await namespacesWithPrefix('strait-lab');
    for (let i = 0; i < 100; i++) {
      const id = `lab${randomBytes(2).toString('hex')}`;
      if (taken.some((ns) => ns.startsWith(`strait-${id}-`))) continue;
      this.id = id;
      this.prefix = `strait-${id}-`;
      return;
    }
    throw new StraitError('STRAIT_ERR_LAB', `no free lab prefix: too many strait-lab* namespaces (${taken.length}); remove old labs with strait lab down`);
  }

  private makeDirs(): void {
    if (this.opts.logDir) mkdirSync(this.opts.logDir, { recursive: true });
    if (this.opts.dataDir) {
      this.dataDir = resolve(this.opts.dataDir);
      mkdirSync(this.dataDir, { recursive: true, mode: 0o700 });
    } else {
      this.dataDir = mkdtempSync(join(tmpdir(), `strait-${this.id}-`));
      this.keep(this.dataDir);
    }
    this.platformDir = join(this.dataDir, `platform-${this.id}`);
    mkdirSync(this.platformDir, { recursive: true, mode: 0o700 });
    if (this.opts.dataDir) this.keep(this.platformDir);
    this.mirror = new ManifestMirror(resolve(this.opts.manifestDir), labAddressText, this.dataDir);
    if (this.opts.dataDir) this.keep(this.mirror.dir);
  }

  /** A directory removed at stop (and by `lab down` after a lab that is gone). */
  private keep(dir: string): void {
    markLabDir(dir, this.id);
    this.temporaryDirs.push(dir);
  }

  private async stopAll(): Promise<void> {
    this.stopping = true;
    this.watcher?.close();
    // A second pass stops what an edit being applied started meanwhile.
    await this.processes.stopAll();
    await this.reconciling.catch(() => undefined);
    await this.processes.stopAll();
    const left = (await this.net?.destroy()) ?? [];
    if (left.length > 0) this.log.error({ left }, 'could not remove every namespace of the lab');
    for (const dir of this.temporaryDirs) removeLabDir(dir, this.id);
    if (this.wroteState) rmSync(this.opts.stateFile, { force: true });
  }

  private async load(): Promise<{ loaded: ParseResult; plan: LabPlan }> {
    this.mirror!.sync();
    const loaded = await loadManifestPath(this.mirror!.dir);
    const plan = planLab(loaded.objects.map((o) => o.object), {
      prefix: this.prefix,
      previousNodes: new Map([...this.nodes.values()].map((n) => [n.name, n.index])),
      previousWaypoints: new Map(this.plan.waypoints.filter((w) => this.pods.has(`waypoint/${w.key}`)).map((w) => [w.key, w.address])),
      previousWaypointNodes: new Map(this.plan.waypoints.filter((w) => this.pods.has(`waypoint/${w.key}`)).map((w) => [w.key, w.node])),
    });
    return { loaded, plan };
  }

  // ---- applying a plan (at start, and for every edit) ----

  /**
   * Makes the lab what `next` says: stops the processes of pods that go, move or change, builds the namespaces and
   * links of new nodes and pods, removes those that went (only when `clean`: a manifest with errors removes nothing),
   * brings routes and service rules in step, then starts what is missing. `fatal`: a process that does not get ready
   * fails the whole (start); otherwise it is retried with backoff as a crashed one is.
   */
  private async apply(next: LabPlan, clean: boolean, fatal: boolean): Promise<boolean> {
    const net = this.net!;
    let changed = false;
    const wanted = new Map<string, { node: string; address: string }>();
    for (const p of next.pods) wanted.set(`pod/${p.key}`, p);
    for (const w of next.waypoints) wanted.set(`waypoint/${w.key}`, w);
    const nodeNames = new Set(next.nodes.map((n) => n.name));

    // What goes: processes first, then namespaces.
    for (const [key, b] of [...this.pods]) {
      const w = wanted.get(key);
      if (w ? w.node === b.node && w.address === b.address : !clean) continue;
      await this.stopProcessesOf(key);
      await net.removeNamespace(b.netns);
      this.pods.delete(key);
      changed = true;
    }
    if (clean) {
      for (const name of [...this.nodes.keys()]) {
        if (nodeNames.has(name)) continue;
        await this.processes.remove(`ztunnel/${name}`);
        await net.removeNamespace(net.nodeNs(name));
        this.nodes.delete(name);
        this.routes.delete(net.nodeNs(name));
        this.serviceRules.delete(name);
        changed = true;
      }
    }
    // What comes.
    for (const n of next.nodes) {
      if (this.nodes.has(n.name)) continue;
      const empty = serviceTablesUpdate([], []);
      await net.addNode(n, serviceTablesSetup([], []));
      this.nodes.set(n.name, n);
      this.serviceRules.set(n.name, empty);
      changed = true;
    }
    for (const [key, w] of wanted) {
      const node = this.nodes.get(w.node);
      if (this.pods.has(key) || !node) continue;
      const link = await net.addPod(this.nextPod++, w.address, node);
      this.pods.set(key, { ...link, node: w.node, address: w.address });
      changed = true;
    }
    await this.syncRoutes();
    this.plan = clean ? next : merge(this.plan, next);
    await this.syncServices();
    this.writeWaypointPods();

    // Processes.
    if (!this.processes.has('controller')) {
      await this.processes.add({ ...controllerSpec(this.places()), netns: net.controlNs }, fatal);
      this.log.info({ xds: `${CONTROLLER_ADDRESS}:${PORTS.xds}`, netns: net.controlNs, dataDir: this.dataDir }, 'controller ready');
    }
    for (const n of this.nodes.values()) {
      if (this.processes.has(`ztunnel/${n.name}`)) continue;
      await this.processes.add({ ...ztunnelSpec(this.places(), n, 'capture'), netns: net.nodeNs(n.name) }, fatal);
      if (this.processes.get(`ztunnel/${n.name}`)?.status === 'running') this.log.info({ node: n.name, address: n.address, netns: net.nodeNs(n.name) }, 'ztunnel ready');
      changed = true;
    }
    // Pods start a few at a time: each is its own process, and most of their start is waiting for it to get ready.
    await inBatches(this.plan.pods, POD_START_CONCURRENCY, async (p) => {
      const built = this.pods.get(`pod/${p.key}`);
      if (built && (await this.syncPodProcesses(p.key, this.podSpecs(p, built), fatal))) changed = true;
    });
    for (const w of this.plan.waypoints) {
      const built = this.pods.get(`waypoint/${w.key}`);
      if (!built) continue;
      const spec: ComponentSpec = { ...waypointSpec(this.places(), w), netns: built.netns };
      const running = this.processes.get(spec.name);
      if (running && sameSpec(running.spec, spec)) continue;
      // A Gateway whose service account changed gets its waypoint started again with it.
      if (running) await this.processes.remove(spec.name);
      await this.processes.add(spec, fatal);
      if (this.processes.get(`waypoint/${w.key}`)?.status === 'running') this.log.info({ waypoint: w.key, address: w.address, netns: built.netns }, 'waypoint ready');
      changed = true;
    }
    return changed;
  }

  private async reconcile(): Promise<void> {
    if (this.stopping) return;
    const { loaded, plan } = await this.load();
    if (this.stopping) return;
    const clean = !loaded.problems.some((p) => p.severity === 'error') && plan.errors.length === 0;
    for (const p of plan.problems) this.say('warn', p);
    for (const e of plan.errors) this.say('error', e);
    if (await this.apply(plan, clean, false)) this.writeState();
  }

  /** Routes in every node's and the controller's namespace to every pod on another node, as the pods are now. */
  private async syncRoutes(): Promise<void> {
    const net = this.net!;
    const targets: [string, string | undefined][] = [[net.controlNs, undefined], ...[...this.nodes.keys()].map((n): [string, string] => [net.nodeNs(n), n])];
    for (const [ns, nodeName] of targets) {
      const want = new Map<string, string>();
      for (const p of this.pods.values()) if (p.node !== nodeName) want.set(p.address, this.nodes.get(p.node)!.address);
      const have = this.routes.get(ns) ?? new Map<string, string>();
      const add = [...want].filter(([a, via]) => have.get(a) !== via).map(([address, via]) => ({ address, via }));
      const del = [...have.keys()].filter((a) => !want.has(a));
      await net.removeRoutes(ns, del);
      await net.addRoutes(ns, add);
      this.routes.set(ns, want);
    }
  }

  /** Each node's service chains as the plan's Services say now (endpoints: pods that have a namespace). */
  private async syncServices(): Promise<void> {
    const built = new Set([...this.pods.values()].map((p) => p.address));
    const services = this.liveServices(built);
    for (const node of this.nodes.values()) {
      const local = [...this.pods.values()].filter((p) => p.node === node.name).map((p) => p.address).sort();
      const text = serviceTablesUpdate(services, local);
      if (this.serviceRules.get(node.name) === text) continue;
      await this.net!.setServices(this.net!.nodeNs(node.name), text);
      this.serviceRules.set(node.name, text);
    }
  }

  private liveServices(built: ReadonlySet<string>): LabService[] {
    return this.plan.services.map((s) => ({ ...s, endpoints: s.endpoints.filter((e) => built.has(e.address)) }));
  }

  /** The waypoints' pods, for the controller (rewritten by rename, and only when they change). */
  private writeWaypointPods(): void {
    const text = waypointPodsManifest(this.plan.waypoints.filter((w) => this.pods.has(`waypoint/${w.key}`)));
    if (text === this.waypointPods) return;
    const file = join(this.platformDir, 'waypoint-pods.yaml');
    writeFileSync(`${file}.partial`, text);
    renameSync(`${file}.partial`, file);
    this.waypointPods = text;
  }

  // ---- processes ----

  private places(): MeshPlaces {
    return { controllerAddress: CONTROLLER_ADDRESS, dataDir: this.dataDir, configDir: this.mirror!.dir, extraConfigDir: this.platformDir };
  }

  /** What runs in a pod: its lab-command, else its demo apps, else nothing. */
  private podSpecs(p: LabPlan['pods'][number], built: BuiltPod): ComponentSpec[] {
    if (p.command !== undefined) {
      const dir = resolve(this.opts.manifestDir);
      let cwd = dir;
      try { if (!statSync(dir).isDirectory()) cwd = dirname(dir); } catch { /* gone: the next edit says so */ }
      return [{
        name: `pod/${p.key}`, what: `lab-command of pod ${p.key}`, stopGraceMs: STOP_GRACE_MS, args: [], shell: p.command, netns: built.netns, cwd,
        readyListen: p.ports.map((port) => `${p.address}:${port}`),
        env: { POD_NAME: p.name, POD_NAMESPACE: p.namespace, POD_IP: p.address, NODE_NAME: p.node },
      }];
    }
    return p.apps.map((a) => ({ ...appSpec(a, undefined), netns: built.netns }));
  }

  /** Starts the pod's processes that are missing, restarts those whose command changed; true when anything changed. */
  private async syncPodProcesses(key: string, specs: ComponentSpec[], fatal: boolean): Promise<boolean> {
    let changed = false;
    for (const name of this.processNamesOf(`pod/${key}`)) {
      const want = specs.find((s) => s.name === name);
      if (want && sameSpec(want, this.processes.get(name)!.spec)) continue;
      await this.processes.remove(name);
      changed = true;
    }
    for (const s of specs) {
      if (this.processes.has(s.name)) continue;
      // A pod's own command is the user's: one that does not get ready is retried, it never fails the lab's start.
      await this.processes.add(s, fatal && s.shell === undefined);
      changed = true;
    }
    return changed;
  }

  /** Component names running in a pod ("pod/ns/name") or a waypoint ("waypoint/ns/name"). */
  private processNamesOf(key: string): string[] {
    if (key.startsWith('waypoint/')) return this.processes.has(key) ? [key] : [];
    const podKey = key.slice('pod/'.length);
    return this.processes.names().filter((n) => n === key || n.startsWith(`app/${podKey}/`));
  }

  private async stopProcessesOf(key: string): Promise<void> {
    for (const name of this.processNamesOf(key)) await this.processes.remove(name);
  }

  private componentChanged(): void {
    if (!this.stopping) this.writeState();
  }

  private say(level: 'warn' | 'error', text: string): void {
    if (this.said.has(text)) return;
    this.said.add(text);
    this.log[level](text);
  }

  // ---- the state file ----

  state(): LabState {
    const net = this.net;
    const proc = (name: string): ProcessState => this.processes.state(name);
    const nodes: LabState['nodes'] = {};
    for (const n of this.nodes.values()) {
      nodes[n.name] = { netns: net!.nodeNs(n.name), address: n.address, gateway: n.gateway, fabricInterface: FABRIC_INTERFACE, ztunnel: proc(`ztunnel/${n.name}`) };
    }
    const pods: LabState['pods'] = {};
    const waypoints: LabState['waypoints'] = {};
    for (const [key, b] of this.pods) {
      if (key.startsWith('waypoint/')) {
        waypoints[key.slice('waypoint/'.length)] = { netns: b.netns, node: b.node, address: b.address, ...proc(key) };
        continue;
      }
      const first = this.processNamesOf(key).sort()[0];
      const spec = first ? this.processes.get(first)!.spec : undefined;
      pods[key.slice('pod/'.length)] = {
        netns: b.netns, node: b.node, address: b.address, hostInterface: b.hostInterface,
        process: spec ? { command: spec.shell ?? `strait ${spec.args.join(' ')}`, ...proc(spec.name) } : null,
      };
    }
    const built = new Set([...this.pods.values()].map((p) => p.address));
    const services: LabState['services'] = {};
    for (const s of this.liveServices(built)) {
      services[s.key] = { clusterIP: s.clusterIP, ports: s.ports.map((p) => ({ port: p.port, targetPort: p.targetPort })), endpoints: s.endpoints.map((e) => e.address) };
    }
    return {
      pid: process.pid, id: this.id, prefix: this.prefix, manifestDir: resolve(this.opts.manifestDir), dataDir: this.dataDir,
      rootCert: join(this.dataDir, 'root-cert.pem'),
      fabric: { netns: `${this.prefix}fabric` },
      controller: { netns: `${this.prefix}control`, address: CONTROLLER_ADDRESS, xds: `${CONTROLLER_ADDRESS}:${PORTS.xds}`, admin: `${CONTROLLER_ADDRESS}:${PORTS.controllerAdmin}`, ...proc('controller') },
      nodes, pods, waypoints, services, temporaryDirs: [...this.temporaryDirs],
    };
  }

  private writeState(): LabState {
    const s = this.state();
    writeLabState(this.opts.stateFile, s);
    this.wroteState = true;
    return s;
  }
}

/** Runs `fn` over `items`, at most `limit` at a time; rejects with the first failure once those running have ended. */
async function inBatches<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  const results = await Promise.allSettled(Array.from({ length: Math.min(limit, items.length) }, worker));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** The plan after an edit with errors: what runs stays, what the new plan adds or changes is taken. */
function merge(current: LabPlan, next: LabPlan): LabPlan {
  const byKey = <T extends { key: string }>(a: readonly T[], b: readonly T[]) => [...a.filter((x) => !b.some((y) => y.key === x.key)), ...b];
  return {
    nodes: [...current.nodes.filter((n) => !next.nodes.some((m) => m.name === n.name)), ...next.nodes],
    pods: byKey(current.pods, next.pods), waypoints: byKey(current.waypoints, next.waypoints), services: byKey(current.services, next.services),
    problems: next.problems, errors: next.errors,
  };
}

function sameSpec(a: ComponentSpec, b: ComponentSpec): boolean {
  return JSON.stringify([a.args, a.shell, a.netns, a.env, a.cwd, a.readyListen]) === JSON.stringify([b.args, b.shell, b.netns, b.env, b.cwd, b.readyListen]);
}
