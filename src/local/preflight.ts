/**
 * Before the local mesh starts anything: is every address:port it will listen on free? Each is bound for a moment
 * and released, so a conflict (another mesh on the same addresses, usually) is reported at once, all addresses in
 * one message, with nothing started yet. It cannot see a process that binds in between; the readiness check (the
 * child's own pid must answer) covers that.
 */
import net from 'node:net';

export interface WantedAddress {
  host: string;
  port: number;
  /** "controller xDS", "ztunnel node-a SOCKS5", "demo app shop/web-1" */
  what: string;
}

export interface TakenAddress extends WantedAddress {
  code: string;
}

/** Those of `wanted` that cannot be bound now (deduplicated by host:port), in the order given. */
export async function takenAddresses(wanted: readonly WantedAddress[]): Promise<TakenAddress[]> {
  const seen = new Set<string>();
  const unique = wanted.filter((w) => {
    const k = `${w.host}:${w.port}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
  const results = await Promise.all(unique.map(async (w) => {
    const code = await tryBind(w.host, w.port);
    return code ? { ...w, code } : undefined;
  }));
  return results.filter((r): r is TakenAddress => r !== undefined);
}

function tryBind(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
}

/** "127.0.99.1:15012 (controller xDS, in use), … and 4 more" */
export function describeTaken(taken: readonly TakenAddress[], max = 6): string {
  const shown = taken.slice(0, max).map((t) => `${t.host}:${t.port} (${t.what}${t.code === 'EADDRINUSE' ? '' : `: ${t.code}`})`);
  return shown.join(', ') + (taken.length > max ? ` and ${taken.length - max} more` : '');
}
