/**
 * What `strait status` prints, from what the controllers' /debug/proxy-status said: a table of controllers, a
 * table of proxies with each xDS type's sync state (as istioctl proxy-status), then every NACK with its message
 * and every proxy expected but not connected. Pure: the command fetches, this formats.
 */
import type { ControllerInfo, ProxyStatusEntry, ProxyTypeStatus } from '../../common/xds/proxy-status.js';
import { age, formatTable } from './output.js';

/** One controller asked: its report, or why it could not be read. */
export interface ControllerResult {
  /** How the user knows it: the pod name in a cluster, "controller" in a local mesh. */
  name: string;
  /** Where it was asked (admin URL, or the API server path). */
  address: string;
  info?: ControllerInfo;
  proxies?: ProxyStatusEntry[];
  error?: string;
  /** In a cluster: the Lease's holder is this controller (overrides what the controller says of itself). */
  leaseHolder?: boolean;
}

/** A proxy the platform runs (state file) that no controller has a stream from. */
export interface ExpectedProxy {
  kind: 'ztunnel' | 'waypoint';
  /** Node name (ztunnel) or ns/name (waypoint). */
  name: string;
  /** What the platform says of it, e.g. running, restarting. */
  state: string;
}

export interface StatusResult {
  controllers: Array<{ name: string; address: string; error?: string; isLeader?: boolean } & Partial<ControllerInfo>>;
  proxies: Array<ProxyStatusEntry & { name: string; controller: string }>;
  notConnected: ExpectedProxy[];
}

/** The order xDS types are shown in; others follow alphabetically. */
const TYPE_ORDER = ['Workload', 'Service', 'Authorization', 'Route', 'Policy'];
const KIND_ORDER = ['ztunnel', 'waypoint', 'debug'];

export function proxyName(p: ProxyStatusEntry['proxy']): string {
  if (p.kind === 'ztunnel') return p.nodeName;
  if (p.kind === 'waypoint') return `${p.namespace ?? ''}/${p.name ?? ''}`;
  return p.id;
}

export function buildStatus(results: readonly ControllerResult[], expected: readonly ExpectedProxy[] = []): StatusResult {
  const controllers = results.map((r) => {
    const isLeader = r.leaseHolder ?? (r.info?.leader.election === 'lease' ? r.info.leader.leader : undefined);
    return {
      name: r.name, address: r.address, ...(r.info ?? {}),
      ...(isLeader !== undefined ? { isLeader } : {}),
      ...(r.error !== undefined ? { error: r.error } : {}),
    };
  });
  const proxies = results.flatMap((r) => (r.proxies ?? []).map((p) => ({ name: proxyName(p.proxy), controller: r.name, ...p })));
  proxies.sort((a, b) => KIND_ORDER.indexOf(a.proxy.kind) - KIND_ORDER.indexOf(b.proxy.kind) || a.name.localeCompare(b.name) || a.connectedAt.localeCompare(b.connectedAt));
  const connected = new Set(proxies.map((p) => `${p.proxy.kind} ${p.name}`));
  // When a controller could not be asked, its proxies are unknown rather than missing.
  const complete = results.every((r) => r.error === undefined);
  const notConnected = complete ? expected.filter((e) => !connected.has(`${e.kind} ${e.name}`)) : [];
  return { controllers, proxies, notConnected };
}

/** A type's cell: its state with the version the proxy runs (and the one sent, when that differs). */
export function typeCell(t: ProxyTypeStatus | undefined): string {
  if (!t) return '-';
  switch (t.status) {
    case 'SYNCED': return `SYNCED (${t.versionAcked})`;
    case 'NACKED': return `NACKED (${t.versionAcked || 'none'})`;
    case 'STALE': return t.versionAcked ? `STALE (${t.versionAcked}, sent ${t.versionSent})` : 'STALE';
    case 'NOT SENT': return 'NOT SENT';
  }
}

export function formatStatusTable(s: StatusResult, now: number): string {
  const out: string[] = [];
  out.push(formatTable(['CONTROLLER', 'VERSION', 'LEADER', 'UPTIME', 'GENERATION', 'PROXIES', 'ADDRESS'], s.controllers.map((c) => {
    if (c.error !== undefined) return [c.name, '<unknown>', '<unknown>', '<unknown>', '<unknown>', '<unknown>', c.address];
    return [c.name, c.version ?? '<unknown>', leaderText(c), c.startedAt ? age(c.startedAt, now) : '<unknown>', String(c.generation ?? '<unknown>'),
      String(s.proxies.filter((p) => p.controller === c.name).length), c.address];
  })));
  const types = [...new Set(s.proxies.flatMap((p) => Object.keys(p.types)))]
    .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  out.push('\n');
  if (s.proxies.length === 0) {
    out.push('No proxies are connected.\n');
  } else {
    const multi = s.controllers.length > 1;
    const headers = ['NAME', 'KIND', ...types.map((t) => t.toUpperCase()), ...(multi ? ['CONTROLLER'] : []), 'CONNECTED'];
    out.push(formatTable(headers, s.proxies.map((p) => [p.name, p.proxy.kind, ...types.map((t) => typeCell(p.types[t])), ...(multi ? [p.controller] : []), age(p.connectedAt, now)])));
  }
  const nacks = s.proxies.flatMap((p) => Object.entries(p.types).filter(([, t]) => t.lastNack).map(([type, t]) => ({ p, type, t })));
  if (nacks.length > 0) {
    out.push('\nNACKs (the proxy refused the response and keeps its previous version):\n');
    for (const { p, type, t } of nacks) {
      const n = t.lastNack!;
      out.push(`  ${p.proxy.kind} ${p.name} ${type}: ${n.message} (${age(n.at, now)} ago, nonce ${n.nonce}${t.status === 'NACKED' ? '' : '; a later response was ACKed'})\n`);
    }
  }
  if (s.notConnected.length > 0) {
    out.push('\nNot connected (the platform runs them, no controller has their stream):\n');
    for (const e of s.notConnected) out.push(`  ${e.kind} ${e.name} (${e.state})\n`);
  }
  for (const c of s.controllers) if (c.error !== undefined) out.push(`\nController ${c.name} could not be asked: ${c.error}\n`);
  return out.join('');
}

/** yes/no when a Lease elects a leader; "-" for a controller that runs alone (no election). */
function leaderText(c: StatusResult['controllers'][number]): string {
  if (c.isLeader !== undefined) return c.isLeader ? 'yes' : 'no';
  return c.leader?.election === 'none' ? '-' : '<unknown>';
}

function rank(type: string): number {
  const i = TYPE_ORDER.indexOf(type);
  return i < 0 ? TYPE_ORDER.length : i;
}
