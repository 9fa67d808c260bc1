/**
 * Decide, then do, for capture (DESIGN §6a): which pod addresses of this node should have capture rules, and what to
 * run to get there from what is applied. Pure; the scripts run in pod-capture.ts.
 */
import { isIP } from 'node:net';
import { normalizeIp } from '../../common/net.js';
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

/** Whether the scripts can capture this address (IPv4 only: node-setup.sh makes IPv4 chains). */
export function captureSupported(address: string): boolean {
  return isIP(address) === 4;
}

/**
 * The steps that bring `applied` to `wanted`, removals first (an address that changed pods keeps its rules: the
 * rules name the address, not the pod). A failed step waits for its retry time, unless what is wanted turned the
 * other way meanwhile: a pod whose add failed and which then left is removed at once (its partial rules must go).
 * Addresses in flight (adding/removing) are skipped: the running step finishes first.
 */
export function planPodRules(wanted: ReadonlyMap<string, WantedPod>, applied: ReadonlyMap<string, AppliedPod>, now: number): PodRuleStep[] {
  const removals: PodRuleStep[] = [];
  const additions: PodRuleStep[] = [];
  for (const [address, a] of applied) {
    if (wanted.has(address) || a.state === 'unsupported' || a.state === 'adding' || a.state === 'removing') continue;
    if (a.state === 'failed' && a.retry?.operation === 'remove' && a.retry.at > now) continue;
    removals.push({ operation: 'remove', address, pod: a.pod });
  }
  for (const [address, w] of wanted) {
    if (!captureSupported(address)) continue;
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
