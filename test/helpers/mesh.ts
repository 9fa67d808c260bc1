import { existsSync, readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';

import { StraitProcess, run } from './procs.js';
import { tempDir } from './temp-dir.js';
import { eventually } from './eventually.js';

/** What the state file says of each component: its pid (null while it is not running), status and restarts. */
export interface ComponentStateFile { pid: number; status?: 'starting' | 'running' | 'restarting' | 'stopped'; restarts?: number }

export interface MeshStateFile {
  rootCert: string;
  addressBase?: string;
  controller: ComponentStateFile & { xds: string; admin: string };
  nodes: Record<string, ComponentStateFile & { address: string; socks5: string; admin: string; metrics: string; ready: string }>;
  apps: Record<string, ComponentStateFile & { address: string; node: string }>;
}

/** A real `strait up` on a manifest directory, driven through its state file and log directory. */
export class TestMesh {
  readonly logDir = tempDir('mesh-logs');
  readonly dataDir = tempDir('mesh-data');
  readonly stateFile: string;
  proc!: StraitProcess;
  state!: MeshStateFile;

  constructor(readonly manifestDir: string, readonly extraArgs: string[] = [], readonly env: Record<string, string> = {}) {
    this.stateFile = join(this.logDir.path, 'state.json');
  }

  async start(): Promise<this> {
    this.proc = StraitProcess.start(['up', this.manifestDir, '--state-file', this.stateFile, '--log-dir', this.logDir.path, '--data-dir', this.dataDir.path, ...this.extraArgs], this.env);
    await this.proc.waitFor((l) => l.msg === 'mesh ready', 60_000, 'mesh ready');
    this.state = JSON.parse(readFileSync(this.stateFile, 'utf8')) as MeshStateFile;
    return this;
  }

  /** JSON lines of one component's log file (e.g. "ztunnel/node-a"). */
  logs(component: string): Record<string, any>[] {
    const file = join(this.logDir.path, `${component.replace(/[/:]/g, '_')}.log`);
    if (!existsSync(file)) return [];
    return readFileSync(file, 'utf8').split('\n').filter(Boolean).flatMap((l) => { try { return [JSON.parse(l)]; } catch { return []; } });
  }

  logFiles(): string[] {
    return readdirSync(this.logDir.path);
  }

  async metrics(node: string): Promise<string> {
    return (await fetch(`http://${this.state.nodes[node].metrics}/metrics`)).text();
  }

  async configDump(node: string): Promise<any> {
    return (await fetch(`http://${this.state.nodes[node].admin}/config_dump`)).json();
  }

  /** Waits until a node's ztunnel holds (or no longer holds) an authorization resource. */
  async policyOnNode(node: string, key: string, present = true): Promise<void> {
    await eventually(async () => ((await this.configDump(node)).policies as { key: string }[]).some((p) => p.key === key) === present, 5000, `${key} ${present ? 'on' : 'gone from'} ${node}`);
  }

  /** Real curl from a pod's address through its node's SOCKS5. */
  curl(fromIp: string, node: string, url: string, extra: string[] = []) {
    return run('curl', ['-sS', '--max-time', '10', '--noproxy', '', '--interface', fromIp, '--socks5-hostname', this.state.nodes[node].socks5, ...extra, url]);
  }

  /** The state file as it is now. */
  readState(): MeshStateFile {
    return JSON.parse(readFileSync(this.stateFile, 'utf8')) as MeshStateFile;
  }

  /** Every pid the state file names: controller, ztunnels, apps. */
  pids(state: MeshStateFile = this.state): number[] {
    return [state.controller.pid, ...Object.values(state.nodes).map((n) => n.pid), ...Object.values(state.apps).map((a) => a.pid)].filter((p) => typeof p === 'number');
  }

  async stop(): Promise<number | null> {
    const code = await this.proc?.stop(15_000);
    return code;
  }

  cleanup(): void {
    this.logDir.remove();
    this.dataDir.remove();
  }
}

export const policy = (ns: string, name: string, spec: unknown) => ({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name, namespace: ns }, spec });

export function node(name: string, ip: string) {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name }, status: { addresses: [{ type: 'InternalIP', address: ip }] } };
}

/** A pod running the built-in demo app on port 8080. */
export function appPod(ns: string, name: string, nodeName: string, ip: string, sa: string, labels: Record<string, string> = {}) {
  return {
    apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns, labels: { app: name, ...labels } },
    spec: { nodeName, serviceAccountName: sa, containers: [{ name: 'app', image: 'strait/demo-app', ports: [{ name: 'http', containerPort: 8080 }] }] },
    status: { podIP: ip },
  };
}

export const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Whether something accepts TCP connections at host:port. */
export const portOpen = (host: string, port: number): Promise<boolean> => new Promise<boolean>((resolve) => {
  const s = net.connect({ host, port }, () => { s.destroy(); resolve(true); });
  s.on('error', () => resolve(false));
});

/** Pids of processes whose command line contains `text` (e.g. a test's own temporary directory). */
export function pidsMentioning(text: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** SIGKILLs what a failed test left behind. */
export function killAll(pids: readonly number[]): void {
  for (const pid of pids) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
}
