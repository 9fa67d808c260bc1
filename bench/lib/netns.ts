/**
 * Small helpers for benchmark processes placed in network namespaces (bench/capture.ts): the argv that runs a
 * command inside one, whether something listens on a port there (read with `ss`, without connecting: a bare TCP
 * probe of a TLS port makes the server log a handshake error), and the processes inside one.
 */
import { spawnSync } from 'node:child_process';
import net from 'node:net';

/** argv run inside `netns` (`ip netns exec`, which execs: the pid is the command's own), or as is without one. */
export function inNetns(netns: string | undefined, argv: string[]): string[] {
  return netns ? ['ip', 'netns', 'exec', netns, ...argv] : argv;
}

function listeningIn(netns: string, host: string, port: number): boolean {
  const r = spawnSync('ip', ['netns', 'exec', netns, 'ss', '-Hltn', `sport = :${port}`], { encoding: 'utf8', timeout: 5000 });
  if (r.status !== 0) throw new Error(`ss in ${netns} failed (${r.status}): ${r.stderr.trim()} (apt-get install -y iproute2)`);
  return r.stdout.split('\n').some((l) => {
    const local = l.trim().split(/\s+/)[3] ?? ''; // State Recv-Q Send-Q Local Peer
    return local === `${host}:${port}` || local === `0.0.0.0:${port}` || local === `*:${port}`;
  });
}

function connects(host: string, port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const s = net.connect({ host, port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/**
 * Waits until something listens on host:port (inside `netns` when given: read with ss; else a TCP connect), up to
 * `timeoutMs`; `alive` throws when the process that should listen has died.
 */
export async function waitListening(o: { netns?: string; host: string; port: number; timeoutMs?: number; what: string; alive?: () => void }): Promise<void> {
  const until = Date.now() + (o.timeoutMs ?? 10_000);
  for (;;) {
    o.alive?.();
    if (o.netns ? listeningIn(o.netns, o.host, o.port) : await connects(o.host, o.port)) return;
    if (Date.now() > until) throw new Error(`${o.what} not listening on ${o.host}:${o.port}${o.netns ? ` in ${o.netns}` : ''} after ${(o.timeoutMs ?? 10_000) / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The pids of the processes inside network namespace `netns` (empty when it is gone). */
export function netnsPids(netns: string): number[] {
  const r = spawnSync('ip', ['netns', 'pids', netns], { encoding: 'utf8', timeout: 5000 });
  return r.status === 0 ? r.stdout.split(/\s+/).filter(Boolean).map(Number) : [];
}

/** Names of the network namespaces whose name starts with `prefix`. */
export function namespacesWithPrefix(prefix: string): string[] {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 5000 });
  return r.status === 0 ? r.stdout.split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '').filter((n) => n.startsWith(prefix)) : [];
}
