/**
 * Data-plane workers (issue 14): N processes share a proxy's traffic, one process keeps its control plane.
 *
 * What runs where
 * - PRIMARY (the process that was started): config, the ONE xDS client (the state's one writer) and the ONE CA
 *   client with the certificate store (one CSR per identity, whatever N is), capture set-up, the admin ports (15000
 *   admin + config_dump, 15020 metrics of all workers merged, 15021 ready = primary synced AND every worker ready),
 *   the drain, and the workers' lifecycle (a worker that dies is started again, with a log line and a metric).
 * - WORKERS (`cluster` children running the same command line): listeners and the whole data path (handlers, HBONE
 *   server and pool, connector, connection tracking, access log, per-worker metrics). Each has a ProxyState whose one
 *   writer is the IPC feed from the primary, and asks the primary for certificates (key + chain) by identity.
 *
 * IPC (node's cluster channel, JSON, in order): primary → worker `init` (slot + state snapshot), `state` (one applied
 * xDS update), `cert-rotated`, `log-level`, `drain`, `close`, `req`/`res` (metrics, config dump, connections);
 * worker → primary `hello`, `listening`, `ready`, `failed`, `draining`, `drained`, `req`/`res` (certificates).
 *
 * Listening sockets: Node 20 has no SO_REUSEPORT (`reusePort` came in Node 22.12/23.1). `cluster`'s default
 * (round-robin) makes the primary accept every connection and hand each socket over IPC: one more hop and one core
 * for all accepts, the bottleneck this work removes. With SCHED_NONE the primary binds each address ONCE and hands
 * every worker a duplicate of the same listening socket; the kernel then gives each connection to one of the workers
 * blocked in accept (socket options such as IP_TRANSPARENT and the backlog act on that one socket). Node's warning
 * applies: the split is not perfectly even under light load (the first worker woken wins); under load every worker
 * accepts. A worker dying leaves the socket open in the others, so nothing is refused while it restarts.
 */
import type { Cert } from '../../identity/index.js';

/** One applied state update, or a store's full contents in a snapshot (`removed` empty). */
export interface StateUpdate {
  store: string;
  added: unknown[];
  removed: string[];
}

/** A worker's live work, reported when it stops accepting (the primary's "drain started" line sums them). */
export type LiveWork = Record<string, number>;

export type ToWorker =
  | { t: 'init'; slot: number; snapshot: StateUpdate[] }
  | { t: 'state'; update: StateUpdate }
  | { t: 'cert-rotated'; identity: string }
  | { t: 'log-level'; level: string }
  | { t: 'drain'; drainMs: number }
  | { t: 'close' }
  | { t: 'req'; id: number; what: string; arg?: unknown }
  | { t: 'res'; id: number; ok: true; body: unknown }
  | { t: 'res'; id: number; ok: false; code: string; message: string };

export type ToPrimary =
  | { t: 'hello' }
  | { t: 'listening' }
  | { t: 'ready'; ready: boolean; detail: Record<string, unknown> }
  | { t: 'failed'; code: string; message: string }
  | { t: 'draining'; live: LiveWork }
  | { t: 'drained'; completed: number; closed: number }
  | { t: 'req'; id: number; what: string; arg?: unknown }
  | { t: 'res'; id: number; ok: true; body: unknown }
  | { t: 'res'; id: number; ok: false; code: string; message: string };

/** A certificate as it crosses the IPC channel (the worker checks it again: certFromMaterial). */
export interface CertOverIpc { keyPem: string; certChainPem: string[] }

export function certOverIpc(c: Cert): CertOverIpc {
  return { keyPem: c.keyPem, certChainPem: c.certChainPem };
}

/** Requests in flight on one channel, each way; more fail at once (a worker asking for thousands at once is a bug). */
export const MAX_PENDING_REQUESTS = 4096;
/** An answer that does not come in this long fails the request (the other side is stuck or gone). */
export const REQUEST_TIMEOUT_MS = 10_000;
