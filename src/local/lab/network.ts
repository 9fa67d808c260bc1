/**
 * The lab's network (lab contract §3), made with `ip` and `iptables-restore` inside namespaces named
 * `<prefix><role>`: a fabric namespace holding a bridge, the controller's and each node's namespace on it (a veth
 * each, 198.19.254.0/24), and a namespace per pod with a veth `eth0` to its node (the pod's address /32, default route
 * via the node's gateway address, which sits /32 on each of the node's pod veths). Nodes forward (ip_forward=1) and
 * route every other node's pods via that node's fabric address (and the rest of 198.18.0.0/15 onto the fabric, so
 * that Service VIPs have a route to be DNATed from); pods do not forward.
 * Invariants: a namespace is in `made` before `ip netns add` runs, so removal covers one made halfway; every link is
 * created inside a lab namespace with its peer moved straight into another lab namespace, never the root one; no
 * address, route, rule or sysctl is ever set outside the lab's namespaces; every address is in 198.18.0.0/15
 * (checked before each command that sets one), so nothing routes out of the lab.
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { constants } from 'node:os';
import { StraitError } from '../../common/errors.js';
import { LAB_NET } from '../address-base.js';
import { CONTROLLER_ADDRESS, FABRIC_PREFIX_LENGTH, isLabAddress, type LabNode } from './plan.js';

/** Inside each node namespace: its end of the veth to the fabric bridge. */
export const FABRIC_INTERFACE = 'fabric0';
const BRIDGE = 'br0';
/** Each pod's end of its veth. */
const POD_INTERFACE = 'eth0';
const COMMAND_TIMEOUT_MS = 30_000;
/** After SIGKILL, how long a namespace's processes get to be gone before the namespace is deleted anyway. */
const KILL_WAIT_MS = 3_000;

/** The iptables binary, as the capture scripts choose it (lab contract §1): iptables-nft if it can read nat, else legacy, else plain. */
const IPTABLES_CHOICES = ['iptables-nft', 'iptables-legacy', 'iptables'] as const;

export interface PodLink {
  netns: string;
  /** The pod veth's end in the node namespace. */
  hostInterface: string;
}

export interface Route {
  /** A pod's address (/32). */
  address: string;
  /** The fabric address of the node it is on. */
  via: string;
}

/** Runs argv, feeding `input`; rejects with the command and what it said. */
export function run(argv: readonly string[], input = ''): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: COMMAND_TIMEOUT_MS, maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
      reject(new StraitError('STRAIT_ERR_LAB', missing
        ? `${argv[0]} is not installed (or not on PATH): ${installHint(argv[0]!)}`
        : `\`${argv.join(' ')}\` failed: ${(stderr || err.message).trim()}${input ? `\n  its input was:\n    ${input.trim().split('\n').join('\n    ')}` : ''}`));
    });
    // A command that reads no input (or fails first) closes its end: that is its exit status's business, not ours.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input);
  });
}

export function installHint(tool: string): string {
  if (tool === 'ip') return 'apt-get install -y iproute2';
  if (tool.startsWith('iptables')) return 'apt-get install -y iptables';
  if (tool === 'curl') return 'apt-get install -y curl';
  if (tool === 'sysctl') return 'apt-get install -y procps';
  return `install ${tool}`;
}

function assertLab(ip: string, what: string): void {
  if (!isLabAddress(ip)) throw new StraitError('STRAIT_ERR_BUG', `BUG: ${what} ${ip} is outside 198.18.0.0/15; the lab never sets such an address`);
}

export class LabNetwork {
  readonly fabricNs: string;
  readonly controlNs: string;
  /** Namespaces made (or being made), in order. */
  private readonly made: string[] = [];
  private iptablesBin: string | undefined;

  /** `iptables`: the binary to use (STRAIT_IPTABLES); default: chosen as the capture scripts choose. */
  constructor(readonly prefix: string, private readonly iptables?: string) {
    this.fabricNs = `${prefix}fabric`;
    this.controlNs = `${prefix}control`;
  }

  nodeNs(name: string): string { return `${this.prefix}n-${name}`; }
  podNs(k: number): string { return `${this.prefix}p-${k}`; }
  get namespaces(): readonly string[] { return this.made; }
  get iptablesCommand(): string { return this.iptablesBin ?? this.iptables ?? 'iptables'; }

  /** The fabric (a bridge) and the controller's namespace on it. */
  async createBase(): Promise<void> {
    await this.addNamespace(this.fabricNs);
    await this.ip(this.fabricNs, ['link set lo up', `link add ${BRIDGE} type bridge forward_delay 0`, `link set ${BRIDGE} up`]);
    await this.addNamespace(this.controlNs);
    assertLab(CONTROLLER_ADDRESS, 'controller address');
    await this.ip(this.controlNs, ['link set lo up', `link add eth0 type veth peer name ctl netns ${this.fabricNs}`,
      `addr add ${CONTROLLER_ADDRESS}/${FABRIC_PREFIX_LENGTH} dev eth0`, 'link set eth0 up']);
    await this.ip(this.fabricNs, [`link set ctl master ${BRIDGE}`, 'link set ctl up']);
    this.iptablesBin = await this.chooseIptables();
  }

  /** A node's namespace on the fabric, forwarding, with its service chains (`services`: iptables-restore input). */
  async addNode(node: LabNode, services: string): Promise<void> {
    const ns = this.nodeNs(node.name);
    assertLab(node.address, `node ${node.name} address`);
    await this.addNamespace(ns);
    const peer = `n${node.index}`;
    // The lab's whole range on the fabric, under the /32s of the pods: a Service VIP needs a route before the OUTPUT
    // hook DNATs it (a node's own client, or its ztunnel passing traffic through), as a Kubernetes node's default route.
    await this.ip(ns, ['link set lo up', `link add ${FABRIC_INTERFACE} type veth peer name ${peer} netns ${this.fabricNs}`,
      `addr add ${node.address}/${FABRIC_PREFIX_LENGTH} dev ${FABRIC_INTERFACE}`, `link set ${FABRIC_INTERFACE} up`, `route add ${LAB_NET} dev ${FABRIC_INTERFACE}`]);
    await this.ip(this.fabricNs, [`link set ${peer} master ${BRIDGE}`, `link set ${peer} up`]);
    await this.sysctl(ns, 'net.ipv4.ip_forward', '1');
    await this.setServices(ns, services);
  }

  /**
   * Pod number `k` on `node`: its namespace, its veth (eth0 in the pod, pod<k> in the node), the pod's address /32
   * and default route via the node's gateway, the node's /32 route to it. Routes on other namespaces: addRoutes.
   */
  async addPod(k: number, address: string, node: LabNode): Promise<PodLink> {
    assertLab(address, `pod address`);
    assertLab(node.gateway, `node ${node.name} gateway`);
    const netns = this.podNs(k);
    const hostInterface = `pod${k}`;
    const nodeNs = this.nodeNs(node.name);
    await this.addNamespace(netns);
    await this.ip(nodeNs, [`link add ${hostInterface} type veth peer name ${POD_INTERFACE} netns ${netns}`,
      `addr add ${node.gateway}/32 dev ${hostInterface}`, `link set ${hostInterface} up`, `route replace ${address}/32 dev ${hostInterface} src ${node.gateway}`]);
    await this.ip(netns, ['link set lo up', `addr add ${address}/32 dev ${POD_INTERFACE}`, `link set ${POD_INTERFACE} up`,
      `route add ${node.gateway}/32 dev ${POD_INTERFACE} scope link`, `route add default via ${node.gateway} dev ${POD_INTERFACE}`]);
    await this.sysctl(netns, 'net.ipv4.ip_forward', '0');
    return { netns, hostInterface };
  }

  /** Routes in `ns` (a node's or the controller's) to pods on other nodes, via those nodes' fabric addresses. */
  async addRoutes(ns: string, routes: readonly Route[]): Promise<void> {
    if (routes.length === 0) return;
    for (const r of routes) {
      assertLab(r.address, 'routed pod address');
      assertLab(r.via, 'route gateway');
    }
    await this.ip(ns, routes.map((r) => `route replace ${r.address}/32 via ${r.via}`));
  }

  /** Removes routes to `addresses` from `ns` (those not there are skipped). */
  async removeRoutes(ns: string, addresses: readonly string[]): Promise<void> {
    if (addresses.length === 0) return;
    await this.ip(ns, addresses.map((a) => `route del ${a}/32`), true);
  }

  /** Replaces the node's service chains' rules (iptables-restore --noflush input: declared chains are flushed first). */
  async setServices(nodeNs: string, rules: string): Promise<void> {
    await run(['ip', 'netns', 'exec', nodeNs, `${this.iptablesCommand}-restore`, '-w', '--noflush'], rules);
  }

  /** Ends whatever runs in `ns` and deletes it (its links go with it). */
  async removeNamespace(ns: string): Promise<void> {
    await removeNamespaces([ns]);
    const i = this.made.indexOf(ns);
    if (i >= 0) this.made.splice(i, 1);
  }

  /** Removes every namespace made (newest first); returns those it could not delete, with why. */
  async destroy(): Promise<string[]> {
    const failed = await removeNamespaces([...this.made].reverse());
    const left = this.made.filter((ns) => failed.some((f) => f.startsWith(`${ns}: `)));
    this.made.splice(0, this.made.length, ...left);
    return failed;
  }

  /** destroy(), synchronously: the last resort at process exit. */
  destroySync(): void {
    removeNamespacesSync([...this.made].reverse());
    this.made.splice(0, this.made.length);
  }

  private async addNamespace(ns: string): Promise<void> {
    this.made.push(ns);
    await run(['ip', 'netns', 'add', ns]);
  }

  /** `ip -n NS -batch -`: one process for several commands; stops at the first failure unless `force`. */
  private async ip(ns: string, commands: readonly string[], force = false): Promise<void> {
    await run(['ip', ...(force ? ['-force'] : []), '-n', ns, '-batch', '-'], commands.join('\n') + '\n');
  }

  private async sysctl(ns: string, key: string, value: string): Promise<void> {
    await run(['ip', 'netns', 'exec', ns, 'sysctl', '-q', '-w', `${key}=${value}`]);
  }

  private async chooseIptables(): Promise<string> {
    if (this.iptables) {
      await run(['ip', 'netns', 'exec', this.fabricNs, this.iptables, '-w', '-t', 'nat', '-S']);
      return this.iptables;
    }
    const tried: string[] = [];
    for (const bin of IPTABLES_CHOICES) {
      try {
        await run(['ip', 'netns', 'exec', this.fabricNs, bin, '-w', '-t', 'nat', '-S']);
        return bin;
      } catch (err) {
        tried.push((err as Error).message);
      }
    }
    throw new StraitError('STRAIT_ERR_LAB', `no iptables can use the nat table in a network namespace (${tried.join('; ')}): apt-get install -y iptables, `
      + 'and run on a kernel with nf_tables or iptable_nat');
  }
}

// ---- removal (also for `strait lab down` and leftovers of a lab that is gone) ----

/** Pids of the processes in network namespace `ns` (none when it does not exist). */
async function pidsIn(ns: string): Promise<number[]> {
  try {
    return parsePids(await run(['ip', 'netns', 'pids', ns]));
  } catch {
    return [];
  }
}

function parsePids(out: string): number[] {
  return out.split(/\s+/).filter((x) => /^\d+$/.test(x)).map(Number).filter((p) => p !== process.pid);
}

function killAll(pids: readonly number[]): void {
  for (const pid of pids) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
  }
}

/** Names of the network namespaces that start with `prefix`. */
export async function namespacesWithPrefix(prefix: string): Promise<string[]> {
  const out = await run(['ip', 'netns', 'list']);
  return out.split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '').filter((n) => n.startsWith(prefix));
}

/**
 * Kills every process in each namespace (SIGKILL: what was to stop gracefully has been stopped), waits for them to be
 * gone, then deletes the namespace. Returns "ns: why" for each it could not delete. Never throws.
 */
export async function removeNamespaces(names: readonly string[]): Promise<string[]> {
  const failed: string[] = [];
  for (const ns of names) {
    const until = Date.now() + KILL_WAIT_MS;
    for (let pids = await pidsIn(ns); pids.length > 0 && Date.now() < until; pids = await pidsIn(ns)) {
      killAll(pids);
      await new Promise((r) => setTimeout(r, 50));
    }
    const exists = await run(['ip', 'netns', 'list']).then((out) => out.split('\n').some((l) => l.trim().split(/\s+/)[0] === ns), () => true);
    if (!exists) continue;
    try {
      await run(['ip', 'netns', 'del', ns]);
    } catch (err) {
      failed.push(`${ns}: ${(err as Error).message}`);
    }
  }
  return failed;
}

/** removeNamespaces, synchronously (process exit). */
export function removeNamespacesSync(names: readonly string[]): void {
  for (const ns of names) {
    const until = Date.now() + KILL_WAIT_MS;
    for (;;) {
      const r = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', timeout: 5_000 });
      const pids = r.status === 0 ? parsePids(r.stdout) : [];
      if (pids.length === 0 || Date.now() >= until) break;
      killAll(pids);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    }
    spawnSync('ip', ['netns', 'del', ns], { encoding: 'utf8', timeout: 5_000 });
  }
}

/** Starts `ip netns exec NS argv...` with this process's standard streams; resolves with its exit status. */
export function execIn(ns: string, argv: readonly string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: 'inherit' });
    child.on('error', reject);
    // As a shell reports it: 128 + the signal's number when the command was killed.
    child.on('exit', (code, signal) => resolve(code ?? 128 + (signal ? constants.signals[signal] : 0)));
  });
}
