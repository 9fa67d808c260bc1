/**
 * Who called the demo app, as the mesh saw it: the ztunnel of the app's node lists its live connections on
 * its admin endpoint (`GET /connections`), each inbound one with `upstreamLocal`, the "ip:port" of the
 * ztunnel's own socket to the pod, and `dst.addr`, the pod's "ip:port" it dialled. The app's request socket has
 * exactly that pair as its (remote, local) ends, so the entry with both carries the caller's SPIFFE id
 * (`src.identity`). The remote end alone is not enough: the kernel gives the same local port to the ztunnel's
 * connections to different pods at once (a TCP connection is unique by its address pair, not by one end).
 *
 * Invariants: a snapshot taken at time T lists every connection live at T, and two live connections never
 * share an address pair. So an entry found in a snapshot taken after the app accepted the connection is
 * this connection's; a snapshot taken after the request arrived that lacks it means "not through the mesh".
 * Requests arriving together share one fetch.
 */
import { errorMessage } from '../common/errors.js';

export const DEFAULT_LOOKUP_TIMEOUT_MS = 2_000;

/** The part of a ztunnel `/connections` entry the lookup reads. */
export interface AdminConnection {
  upstreamLocal?: string;
  /** The target the ztunnel dialled ("ip:port": the pod's address and the app's port). */
  'dst.addr'?: string;
  'src.identity'?: string;
  direction?: string;
}

export interface CallerLookupResult {
  /** The caller's SPIFFE id; null when the connection did not come through the mesh (or the lookup failed). */
  identity: string | null;
  /** Why the identity is null when the ztunnel could not be asked. */
  error?: string;
}

interface Snapshot {
  takenAt: number;
  /** upstreamLocal → the live connections from that ztunnel socket address (to one pod or several). */
  byUpstreamLocal: Map<string, AdminConnection[]>;
}

/** The entry of the connection from `peer` to `local`; an entry without `dst.addr` matches any local end. */
function find(snap: Snapshot, peer: string, local: string | undefined): AdminConnection | undefined {
  return snap.byUpstreamLocal.get(peer)?.find((c) => local === undefined || c['dst.addr'] === undefined || normalizePeer(c['dst.addr']) === local);
}

export class CallerLookup {
  private latest: Snapshot | undefined;
  private inFlight: { startedAt: number; done: Promise<Snapshot> } | undefined;

  /** `adminAddress`: "ip:port" of the node's ztunnel admin endpoint; undefined = no mesh, every caller is anonymous. */
  constructor(private readonly adminAddress: string | undefined, private readonly timeoutMs = DEFAULT_LOOKUP_TIMEOUT_MS, private readonly now: () => number = Date.now) {}

  /**
   * `peer`: the request socket's "remoteAddress:remotePort"; `local`: its "localAddress:localPort" (the pod's
   * address and the app's port); `acceptedAt`: when the app accepted that socket; `receivedAt`: when the request
   * arrived (by then the ztunnel has registered the connection).
   */
  async identityOf(peer: string, acceptedAt: number, receivedAt: number, local?: string): Promise<CallerLookupResult> {
    if (!this.adminAddress) return { identity: null };
    const cached = this.latest;
    if (cached && cached.takenAt >= acceptedAt) {
      const hit = find(cached, peer, local);
      if (hit) return { identity: hit['src.identity'] ?? null };
    }
    try {
      const snap = await this.fetchSince(receivedAt);
      return { identity: find(snap, peer, local)?.['src.identity'] ?? null };
    } catch (err) {
      return { identity: null, error: `cannot ask the ztunnel at ${this.adminAddress}: ${errorMessage(err)}` };
    }
  }

  /** A snapshot whose fetch started at or after `since`, sharing one in flight when there is one. */
  private fetchSince(since: number): Promise<Snapshot> {
    if (this.inFlight && this.inFlight.startedAt >= since) return this.inFlight.done;
    const startedAt = this.now();
    const done = this.fetchSnapshot(startedAt).finally(() => {
      if (this.inFlight?.done === done) this.inFlight = undefined;
    });
    this.inFlight = { startedAt, done };
    return done;
  }

  private async fetchSnapshot(takenAt: number): Promise<Snapshot> {
    const res = await fetch(`http://${this.adminAddress}/connections`, { signal: AbortSignal.timeout(this.timeoutMs) });
    if (!res.ok) throw new Error(`GET /connections answered ${res.status}`);
    const body = (await res.json()) as { connections?: AdminConnection[] };
    if (!Array.isArray(body.connections)) throw new Error('GET /connections has no "connections" list');
    const byUpstreamLocal = new Map<string, AdminConnection[]>();
    for (const c of body.connections) {
      if (typeof c.upstreamLocal !== 'string') continue;
      const k = normalizePeer(c.upstreamLocal);
      const list = byUpstreamLocal.get(k);
      if (list) list.push(c);
      else byUpstreamLocal.set(k, [c]);
    }
    const snap = { takenAt, byUpstreamLocal };
    if (!this.latest || this.latest.takenAt <= takenAt) this.latest = snap;
    return snap;
  }
}

/** "ip:port" with an IPv4-mapped IPv6 address written as plain IPv4, so both sides compare equal. */
export function normalizePeer(peer: string): string {
  return peer.startsWith('::ffff:') ? peer.slice('::ffff:'.length) : peer;
}
