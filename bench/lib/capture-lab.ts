/**
 * The cluster of bench/capture.ts: `strait lab up` on a generated manifest directory (two nodes; an enrolled
 * namespace `bench` and a plain one `bench-plain`, each with a client pod on node-a and a server pod on node-b; every
 * path addresses the server pod itself, so no Service VIP's DNAT is on any of them), run as a child process and
 * read through its state file (lab contract §3). `stop()` ends it and checks that nothing of it is left: no namespace
 * with its prefix, no process of it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { namespacesWithPrefix, netnsPids } from './netns.js';

/** The compiled CLI (this file runs from dist/bench/lib/). */
export const STRAIT_BIN = new URL('../../src/cli/strait.js', import.meta.url).pathname;

export const NODE_A = 'node-a';
export const NODE_B = 'node-b';
export const MESH_NS = 'bench';
export const PLAIN_NS = 'bench-plain';
export const HTTP_PORT = 8080;
export const SINK_PORT = 9000;
/** Pod and node addresses (lab addresses, kept as they are by the lab). */
export const ADDR = {
  meshClient: '198.18.14.1', meshServer: '198.18.14.2', plainClient: '198.18.14.11', plainServer: '198.18.14.12',
  nodeA: '198.18.100.1', nodeB: '198.18.100.2',
};
export const CLIENT_ID = `spiffe://cluster.local/ns/${MESH_NS}/sa/client`;
export const SERVER_ID = `spiffe://cluster.local/ns/${MESH_NS}/sa/server`;

/** The parts of the lab's state file this benchmark reads. */
export interface LabState {
  pid: number;
  prefix: string;
  dataDir: string;
  rootCert: string;
  controller: { netns: string; pid: number };
  nodes: Record<string, { netns: string; address: string; gateway: string; fabricInterface: string; ztunnel: { pid: number; status: string } }>;
  pods: Record<string, { netns: string; node: string; address: string; process: null | { pid: number } }>;
}

export function captureManifests(): string {
  const node = (name: string, ip: string) => ({ apiVersion: 'v1', kind: 'Node', metadata: { name }, status: { addresses: [{ type: 'InternalIP', address: ip }] } });
  const ports = [{ name: 'http', containerPort: HTTP_PORT }, { name: 'sink', containerPort: SINK_PORT }];
  // The image is not the demo app's: the lab starts nothing in these pods; the benchmark runs its own processes there.
  const pod = (namespace: string, name: string, nodeName: string, ip: string) => ({
    apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace, labels: { app: name } },
    spec: { nodeName, serviceAccountName: name, containers: [{ name: 'app', image: 'strait-bench/capture', ports: name === 'server' ? ports : [] }] },
    status: { podIP: ip },
  });
  const objects = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: MESH_NS, labels: { 'istio.io/dataplane-mode': 'ambient' } } },
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: PLAIN_NS } },
    node(NODE_A, ADDR.nodeA), node(NODE_B, ADDR.nodeB),
    pod(MESH_NS, 'client', NODE_A, ADDR.meshClient), pod(MESH_NS, 'server', NODE_B, ADDR.meshServer),
    pod(PLAIN_NS, 'client', NODE_A, ADDR.plainClient), pod(PLAIN_NS, 'server', NODE_B, ADDR.plainServer),
  ];
  return objects.map((o) => JSON.stringify(o)).join('\n---\n') + '\n';
}

/**
 * `strait lab up` as a child process.
 * Invariants: once start() has spawned it, stop() (or stopSync() from an exit handler) ends it and removes what is
 * left of the lab, whatever state start() reached; both are idempotent.
 */
export class StraitLab {
  readonly manifestDir: string;
  readonly dataDir: string;
  readonly logDir: string;
  readonly stateFile: string;
  private proc: ChildProcess | undefined;
  private exited: Promise<unknown> | undefined;
  private prefix: string | undefined;
  private stopped = false;
  state!: LabState;

  constructor(workDir: string) {
    this.manifestDir = join(workDir, 'manifests');
    this.dataDir = join(workDir, 'data');
    this.logDir = join(workDir, 'logs');
    this.stateFile = join(workDir, 'lab.json');
  }

  get upLog(): string {
    return join(this.logDir, 'lab-up.out');
  }

  async start(manifests: string, timeoutMs = 90_000): Promise<LabState> {
    for (const d of [this.manifestDir, this.dataDir, this.logDir]) mkdirSync(d, { recursive: true });
    writeFileSync(join(this.manifestDir, 'capture.yaml'), manifests);
    // Info: "lab ready" is an info line. The ztunnels' access log (one info line per connection) is turned off
    // afterwards through their admin endpoint (quietZtunnels).
    this.proc = spawn(process.execPath, [STRAIT_BIN, '--log-level', 'info', 'lab', 'up', this.manifestDir, '--state-file', this.stateFile,
      '--data-dir', this.dataDir, '--log-dir', this.logDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out = createWriteStream(this.upLog);
    this.proc.stderr!.pipe(out);
    let ready = false;
    const readyLine = new Promise<void>((resolve) => {
      createInterface({ input: this.proc!.stdout! }).on('line', (line) => {
        out.write(line + '\n');
        if (!ready && /"msg"\s*:\s*"lab ready"/.test(line)) {
          ready = true;
          resolve();
        }
      });
    });
    this.exited = once(this.proc, 'exit');
    const gone = this.exited.then(() => { throw new Error(`strait lab up exited before "lab ready"; its last output:\n${tail(this.upLog)}`); });
    const late = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`strait lab up not ready after ${timeoutMs / 1000} s; see ${this.upLog}`)), timeoutMs).unref());
    await Promise.race([readyLine, gone, late]);
    this.state = JSON.parse(readFileSync(this.stateFile, 'utf8')) as LabState;
    this.prefix = this.state.prefix;
    for (const n of [NODE_A, NODE_B]) if (!this.state.nodes[n]) throw new Error(`the lab has no node ${n}: ${JSON.stringify(Object.keys(this.state.nodes))}`);
    return this.state;
  }

  /** Re-reads the state file (pids change when the lab restarts a process). */
  refresh(): LabState {
    this.state = JSON.parse(readFileSync(this.stateFile, 'utf8')) as LabState;
    return this.state;
  }

  pod(key: string): LabState['pods'][string] {
    const p = this.state.pods[key];
    if (!p) throw new Error(`the lab has no pod ${key} (pods: ${Object.keys(this.state.pods).join(', ')})`);
    return p;
  }

  /** The lab's processes: lab up and everything inside its namespaces. */
  allPids(): number[] {
    const inside = this.prefix ? namespacesWithPrefix(this.prefix).flatMap(netnsPids) : [];
    return [this.proc?.pid ?? 0, ...inside].filter((p) => p > 0);
  }

  /** SIGTERM to lab up and wait for it; then `strait lab down`, and whatever is still left removed by hand. */
  async stop(): Promise<string[]> {
    if (this.stopped || !this.proc) return [];
    this.stopped = true;
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGTERM');
      const t = setTimeout(() => this.proc?.kill('SIGKILL'), 30_000);
      await this.exited;
      clearTimeout(t);
    }
    return this.sweep();
  }

  /** For an exit handler: the same, synchronously. */
  stopSync(): string[] {
    if (this.stopped || !this.proc) return [];
    this.stopped = true;
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGTERM');
    return this.sweep();
  }

  /** `strait lab down` (a no-op when lab up cleaned up), then any namespace with the prefix: problems found. */
  private sweep(): string[] {
    const problems: string[] = [];
    if (existsSync(this.stateFile)) {
      problems.push(`the state file ${this.stateFile} was still there after lab up ended`);
      spawnSync(process.execPath, [STRAIT_BIN, 'lab', 'down', '--state-file', this.stateFile], { stdio: 'ignore', timeout: 60_000 });
    }
    if (this.prefix) {
      for (const ns of namespacesWithPrefix(this.prefix)) {
        problems.push(`namespace ${ns} was left behind`);
        for (const pid of netnsPids(ns)) {
          try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
        }
        spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      }
    }
    return problems;
  }
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no output)';
  }
}
