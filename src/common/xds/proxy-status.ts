/**
 * The controller's `/debug/proxy-status` answer (what `strait status` reads, as `istioctl proxy-status` reads
 * istiod's syncz): the controller itself, and per connected proxy and per xDS type whether the proxy is in step.
 */
import type { ProxyInfo, TypeSyncStatus } from './types.js';

/**
 * Per type, as istioctl proxy-status says it:
 * - SYNCED: everything sent was ACKed; the proxy runs the version the controller last sent.
 * - STALE: a response is sent and not yet answered, or pushes are held back (the proxy is not reading): the proxy
 *   runs an older version for now.
 * - NACKED: the proxy refused the latest response it answered and keeps running the version before it (lastNack).
 * - NOT SENT: nothing of this type was sent yet on this stream.
 */
export const SYNC_STATES = ['SYNCED', 'STALE', 'NACKED', 'NOT SENT'] as const;
export type SyncState = (typeof SYNC_STATES)[number];

export function syncState(t: Pick<TypeSyncStatus, 'versionSent' | 'unanswered' | 'coalesced' | 'lastAnswer'>): SyncState {
  if (t.unanswered > 0 || t.coalesced) return 'STALE';
  if (t.versionSent === '') return 'NOT SENT';
  if (t.lastAnswer === 'NACK') return 'NACKED';
  return 'SYNCED';
}

/** Who leads: `none` when the controller runs alone (file source), `lease` with a Kubernetes Lease. */
export type LeaderStatus = { election: 'none' } | { election: 'lease'; leader: boolean; holder: string | null };

export interface ControllerInfo {
  /** Strait's version (package.json). */
  version: string;
  /** The pod name in a cluster, else the host name. */
  identity: string;
  pid: number;
  /** ISO timestamp. */
  startedAt: string;
  uptimeSeconds: number;
  leader: LeaderStatus;
  /** The configuration generation proxies are pushed (system_version_info). */
  generation: number;
  /** Config sources, e.g. ["file"] or ["kubernetes"]. */
  sources: string[];
}

export interface ProxyTypeStatus {
  status: SyncState;
  /** system_version_info of the last response sent ('' before any). */
  versionSent: string;
  /** system_version_info of the last response ACKed ('' before any). */
  versionAcked: string;
  /** ISO timestamp of the last ACK. */
  lastAckedAt?: string;
  /** The latest NACK of this type on this stream, also once a later response was ACKed. */
  lastNack?: { nonce: string; message: string; at: string };
}

export interface ProxyStatusEntry {
  proxy: ProxyInfo;
  /** ISO timestamp. */
  connectedAt: string;
  /** The peer address of the stream. */
  peer: string;
  /** Short type name (Workload, Service, ...) → status. */
  types: Record<string, ProxyTypeStatus>;
}

export interface ProxyStatusReport {
  controller: ControllerInfo;
  proxies: ProxyStatusEntry[];
}

/** `type.strait.dev/Workload` → `Workload`. */
export function shortTypeName(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
}
