/**
 * Decide, then do, for capture (DESIGN §6a): which pod addresses of this node should have capture rules, and what to
 * run to get there from what is applied. Pure; the scripts run in pod-capture.ts.
 */
import { isIP } from 'node:net';
import { isThisHostAddress, normalizeIp } from '../../common/net.js';
import type { ProxyStateView } from '../../dataplane/state/proxy-state.js';

/** A pod address that should be captured, and the pod it belongs to ("ns/name"). */
export interface WantedPod {
  address: string;
  pod: string;
}

/** What is known of one address's rules. */
export type PodRuleState =
  /** pod-add.sh succeeded (or the rules were found at start and the pod is still enrolled). */
  | 'present'
  | 'adding'
  | 'removing'
  /** The last pod-add.sh or pod-del.sh failed; retried at `retryAt`. */
  | 'failed'
  /** An address the scripts cannot capture (IPv6 today): said once, never run. */
  | 'unsupported';

export interface AppliedPod {
  address: string;
  /** "ns/name"; "(unknown)" for rules found at start whose pod the controller no longer names. */
  pod: string;
  state: PodRuleState;
  /** When the state was entered (ms since the epoch). */
  since: number;
  /** Failed attempts in a row. */
  attempts: number;
  lastError?: string;
  /** For `failed`: what the retry will do, and when. */
  retry?: { operation: 'add' | 'remove'; at: number };
}

export type PodRuleStep = { operation: 'add'; address: string; pod: string } | { operation: 'remove'; address: string; pod: string };

/**
 * Every address of this node's enrolled (HBONE) workloads. A waypoint's own pods are never enrolled (the controller
 * sends them as TCP), so a waypoint on this node is not captured.
 */
export function wantedPods(state: ProxyStateView, node: string): Map<string, WantedPod> {
  const out = new Map<string, WantedPod>();
  for (const w of state.localWorkloads(node)) {
    for (const a of w.addresses) {
      if (isIP(a) === 0) continue;
      const address = normalizeIp(a);
      if (!out.has(address)) out.set(address, { address, pod: `${w.namespace}/${w.name}` });
    }
  }
  return out;
}

/**
 * Why an enrolled pod's address is not captured, or undefined when it is:
 * - `ipv6`: the ztunnel captures IPv4 only (its listeners and node-setup.sh's chains);
 * - `this_host`: a loopback or unspecified address, and
 * - `node_address`: one of this node's own addresses (`nodeAddresses`; a hostNetwork pod has its node's address):
 *   rules for them would redirect the node's own connections (kubelet, ssh, its clients) to the ztunnel.
 */
export type CaptureRefusal = { code: 'ipv6' | 'this_host' | 'node_address'; message: string };

export function captureRefusal(address: string, nodeAddresses: ReadonlySet<string> = new Set()): CaptureRefusal | undefined {
  if (isThisHostAddress(address)) {
    return { code: 'this_host', message: 'a loopback or unspecified pod address is never captured: its rules would capture this node\'s own connections; give the pod its own address' };
  }
  if (nodeAddresses.has(address)) {
    return { code: 'node_address', message: 'a pod address that is this node\'s own (a hostNetwork pod?) is never captured: its rules would send every TCP connection to and from the node through the ztunnel; take the pod out of the mesh (istio.io/dataplane-mode=none)' };
  }
  if (isIP(address) !== 4) {
    return { code: 'ipv6', message: 'capture of IPv6 pod addresses is not supported yet: this address is not captured (its traffic bypasses the mesh); give the pod an IPv4 address' };
  }
  return undefined;
}

/** Whether the scripts capture this address (see captureRefusal). */
export function captureSupported(address: string, nodeAddresses?: ReadonlySet<string>): boolean {
  return captureRefusal(address, nodeAddresses) === undefined;
}

/**
 * The steps that bring `applied` to `wanted`, removals first (an address that changed pods keeps its rules: the
 * rules name the address, not the pod). A failed step waits for its retry time, unless what is wanted turned the
 * other way meanwhile: a pod whose add failed and which then left is removed at once (its partial rules must go).
 * Addresses in flight (adding/removing) are skipped: the running step finishes first. Rules found for an address that
 * must never be captured (this host's, this node's: captureRefusal) are removed even while a pod wants them.
 */
export function planPodRules(wanted: ReadonlyMap<string, WantedPod>, applied: ReadonlyMap<string, AppliedPod>, now: number,
  nodeAddresses: ReadonlySet<string> = new Set()): PodRuleStep[] {
  const removals: PodRuleStep[] = [];
  const additions: PodRuleStep[] = [];
  for (const [address, a] of applied) {
    const refusal = captureRefusal(address, nodeAddresses);
    const harmful = refusal !== undefined && refusal.code !== 'ipv6';
    if ((wanted.has(address) && !harmful) || a.state === 'unsupported' || a.state === 'adding' || a.state === 'removing') continue;
    if (a.state === 'failed' && a.retry?.operation === 'remove' && a.retry.at > now) continue;
    removals.push({ operation: 'remove', address, pod: a.pod });
  }
  for (const [address, w] of wanted) {
    if (!captureSupported(address, nodeAddresses)) continue;
    const a = applied.get(address);
    if (a && (a.state === 'present' || a.state === 'adding' || a.state === 'removing')) continue;
    if (a?.state === 'failed' && a.retry?.operation === 'add' && a.retry.at > now) continue;
    additions.push({ operation: 'add', address, pod: w.pod });
  }
  return [...removals, ...additions];
}

/** The earliest retry time among failed entries (undefined: none waiting). */
export function nextRetryAt(applied: ReadonlyMap<string, AppliedPod>): number | undefined {
  let at: number | undefined;
  for (const a of applied.values()) if (a.state === 'failed' && a.retry && (at === undefined || a.retry.at < at)) at = a.retry.at;
  return at;
}
