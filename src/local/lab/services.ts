/**
 * Service VIPs in the lab, as kube-proxy's iptables mode does them, in each node's namespace (lab contract §3): a nat
 * chain STRAIT_LAB_SERVICES, jumped to from PREROUTING (pods' traffic through the node) and OUTPUT (the node's own),
 * DNATs each clusterIP:port to one of the ready endpoints, picked at random with equal chances (`statistic`, as
 * kube-proxy: endpoint i of n with probability 1/(n-i), the last one always). The jumps are appended, so Strait's own
 * capture jumps (inserted first by node-setup.sh) see a mesh pod's traffic before it: the ztunnel sees the VIP.
 * A pod calling a VIP that lands on itself (hairpin) is masqueraded behind its gateway by STRAIT_LAB_POSTROUTING, or
 * the pod would drop the answer to itself from itself. Pure: the text fed to `iptables-restore --noflush`, which
 * replaces a declared chain's rules in one step.
 */
import type { LabService } from './plan.js';

export const SERVICES_CHAIN = 'STRAIT_LAB_SERVICES';
export const HAIRPIN_CHAIN = 'STRAIT_LAB_POSTROUTING';

/** The chains, their jumps (appended after whatever is there) and their rules: once, when a node namespace is made. */
export function serviceTablesSetup(services: readonly LabService[], localPods: readonly string[]): string {
  return [
    '*nat',
    `:${SERVICES_CHAIN} - [0:0]`,
    `:${HAIRPIN_CHAIN} - [0:0]`,
    `-A PREROUTING -j ${SERVICES_CHAIN}`,
    `-A OUTPUT -j ${SERVICES_CHAIN}`,
    `-A POSTROUTING -j ${HAIRPIN_CHAIN}`,
    ...ruleLines(services, localPods),
    'COMMIT',
    '',
  ].join('\n');
}

/** Both chains' rules, replacing what they held (a declared chain is flushed by iptables-restore --noflush). */
export function serviceTablesUpdate(services: readonly LabService[], localPods: readonly string[]): string {
  return ['*nat', `:${SERVICES_CHAIN} - [0:0]`, `:${HAIRPIN_CHAIN} - [0:0]`, ...ruleLines(services, localPods), 'COMMIT', ''].join('\n');
}

function ruleLines(services: readonly LabService[], localPods: readonly string[]): string[] {
  const lines: string[] = [];
  for (const s of services) {
    s.ports.forEach((sp, i) => {
      const targets = s.endpoints.filter((e) => e.ports[i] !== null).map((e) => `${e.address}:${e.ports[i]}`);
      const proto = sp.protocol.toLowerCase();
      const match = `-d ${s.clusterIP}/32 -p ${proto} -m ${proto} --dport ${sp.port} -m comment --comment "${s.key}:${sp.port}"`;
      targets.forEach((to, k) => {
        const left = targets.length - k;
        const pick = left > 1 ? ` -m statistic --mode random --probability ${(1 / left).toFixed(11)}` : '';
        lines.push(`-A ${SERVICES_CHAIN} ${match}${pick} -j DNAT --to-destination ${to}`);
      });
    });
  }
  for (const ip of localPods) lines.push(`-A ${HAIRPIN_CHAIN} -s ${ip}/32 -d ${ip}/32 -m conntrack --ctstate DNAT -j MASQUERADE`);
  return lines;
}
