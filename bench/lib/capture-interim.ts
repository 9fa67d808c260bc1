/**
 * INTERIM, until `strait lab up` lands: the network of the capture benchmark's cluster built by hand, laid out as
 * the lab contract (§3) lays it out — a fabric namespace with a bridge, one namespace per node on it
 * (198.19.254.(i+1)), one per pod (veth eth0, its address /32, default via the node's gateway 198.19.253.(i+1)) — with
 * no controller and no ztunnel: only the paths that do not need the
 * mesh (direct, stunnel, node-tls) can run on it. Its `state` has the shape of the lab's state file.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { ADDR, MESH_NS, NODE_A, NODE_B, PLAIN_NS, type LabState } from './capture-lab.js';
import { namespacesWithPrefix, netnsPids } from './netns.js';

function run(argv: string[]): void {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`command failed (${r.status}): ${argv.join(' ')}\n${(r.stderr ?? '').trim()}${r.error ? ` ${r.error.message}` : ''}`);
}

/** Invariants: every namespace made is named with `prefix`; stop() removes them all (and their processes), idempotently. */
export class InterimLab {
  readonly prefix = `strait-capb${randomBytes(2).toString('hex')}-`;
  state!: LabState;
  private stopped = false;

  start(): LabState {
    const p = this.prefix;
    const fabric = `${p}fabric`;
    const ns = (name: string) => {
      run(['ip', 'netns', 'add', name]);
      run(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
      return name;
    };
    ns(fabric);
    run(['ip', '-n', fabric, 'link', 'add', 'br0', 'type', 'bridge']);
    run(['ip', '-n', fabric, 'link', 'set', 'br0', 'up']);
    const nodes: LabState['nodes'] = {};
    [NODE_A, NODE_B].forEach((name, i) => {
      const n = ns(`${p}n-${name}`);
      run(['ip', '-n', n, 'link', 'add', 'fab0', 'type', 'veth', 'peer', 'name', `n${i}`, 'netns', fabric]);
      run(['ip', '-n', fabric, 'link', 'set', `n${i}`, 'master', 'br0', 'up']);
      run(['ip', '-n', n, 'addr', 'add', `198.19.254.${i + 1}/24`, 'dev', 'fab0']);
      run(['ip', '-n', n, 'link', 'set', 'fab0', 'up']);
      run(['ip', 'netns', 'exec', n, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
      nodes[name] = { netns: n, address: `198.19.254.${i + 1}`, gateway: `198.19.253.${i + 1}`, fabricInterface: 'fab0', ztunnel: { pid: 0, status: 'stopped' } };
    });
    const pods: LabState['pods'] = {};
    const podList = [
      [`${MESH_NS}/client`, NODE_A, ADDR.meshClient], [`${MESH_NS}/server`, NODE_B, ADDR.meshServer],
      [`${PLAIN_NS}/client`, NODE_A, ADDR.plainClient], [`${PLAIN_NS}/server`, NODE_B, ADDR.plainServer],
    ] as const;
    podList.forEach(([key, node, address], k) => {
      const pn = ns(`${p}p-${k}`);
      const nd = nodes[node]!;
      const host = `p${k}`;
      run(['ip', '-n', pn, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', host, 'netns', nd.netns]);
      run(['ip', '-n', pn, 'addr', 'add', `${address}/32`, 'dev', 'eth0']);
      run(['ip', '-n', pn, 'link', 'set', 'eth0', 'up']);
      run(['ip', '-n', pn, 'route', 'add', nd.gateway, 'dev', 'eth0', 'scope', 'link']);
      run(['ip', '-n', pn, 'route', 'add', 'default', 'via', nd.gateway, 'dev', 'eth0']);
      run(['ip', '-n', nd.netns, 'addr', 'add', `${nd.gateway}/32`, 'dev', host]);
      run(['ip', '-n', nd.netns, 'link', 'set', host, 'up']);
      run(['ip', '-n', nd.netns, 'route', 'add', `${address}/32`, 'dev', host]);
      for (const [other, o] of Object.entries(nodes)) if (other !== node) run(['ip', '-n', o.netns, 'route', 'add', `${address}/32`, 'via', nd.address]);
      pods[key] = { netns: pn, node, address, process: null };
    });
    this.state = { pid: process.pid, prefix: p, dataDir: '', rootCert: '', controller: { netns: '', pid: 0 }, nodes, pods };
    return this.state;
  }

  allPids(): number[] {
    return namespacesWithPrefix(this.prefix).flatMap(netnsPids);
  }

  stopSync(): string[] {
    if (this.stopped) return [];
    this.stopped = true;
    for (const n of namespacesWithPrefix(this.prefix)) {
      for (const pid of netnsPids(n)) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
      spawnSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
    }
    return namespacesWithPrefix(this.prefix).map((n) => `namespace ${n} could not be removed`);
  }

  async stop(): Promise<string[]> {
    return this.stopSync();
  }
}
