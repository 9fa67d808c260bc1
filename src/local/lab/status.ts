/**
 * `strait lab status` for people: the state file as tables (nodes, pods, waypoints, services). Pure.
 */
import type { LabState, ProcessState } from './state.js';

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

const proc = (p: ProcessState) => `${p.pid ?? '-'} ${p.status}${p.restarts ? ` (${p.restarts} restarts)` : ''}`;

export function statusTable(s: LabState): string {
  const out: string[] = [];
  out.push(`lab ${s.id} (namespaces ${s.prefix}*), lab up pid ${s.pid}, manifests ${s.manifestDir}\n`);
  out.push(`controller  ${s.controller.address}  ${proc(s.controller)}  netns ${s.controller.netns}\n`);
  out.push(table(['NODE', 'ADDRESS', 'ZTUNNEL', 'NETNS'],
    Object.entries(s.nodes).map(([name, n]) => [name, n.address, proc(n.ztunnel), n.netns])));
  out.push(table(['POD', 'NODE', 'ADDRESS', 'PROCESS', 'NETNS', 'COMMAND'],
    Object.entries(s.pods).map(([key, p]) => [key, p.node, p.address, p.process ? proc(p.process) : '-', p.netns, p.process?.command ?? ''])));
  if (Object.keys(s.waypoints).length > 0) {
    out.push(table(['WAYPOINT', 'NODE', 'ADDRESS', 'PROCESS', 'NETNS'],
      Object.entries(s.waypoints).map(([key, w]) => [key, w.node, w.address, proc(w), w.netns])));
  }
  out.push(table(['SERVICE', 'CLUSTER-IP', 'PORTS', 'ENDPOINTS'],
    Object.entries(s.services).map(([key, v]) => [key, v.clusterIP, v.ports.map((p) => `${p.port}→${p.targetPort}`).join(','), v.endpoints.join(',') || '(none)'])));
  return out.join('\n');
}
