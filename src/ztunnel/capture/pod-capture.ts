/**
 * The ztunnel's capture of its node's pods (`strait ztunnel --capture`, DESIGN §6a): the node chains at start, each
 * enrolled pod's rules while it is in the mesh; at stop the rules stay (fail closed) unless `teardown` is set.
 * Invariants: scripts run one at a time, in the order steps were planned; at most one reconcile waits in the queue;
 * `applied` holds every address that has (or
 * may have) rules, with what is known of them; a failed step is retried with a doubling delay (RETRY_BASE_MS up to
 * RETRY_MAX_MS) and never stops the ztunnel; after stop() no script runs but the teardown. Every `resyncMs` the rules
 * on the node are compared with `applied`: rules someone else removed (an iptables flush, a firewall reload) are put
 * back, node chains included, and rules no pod of this node wants are removed.
 * Live connections of a pod that leaves are not touched: conntrack keeps their redirection until they close.
 */
import { networkInterfaces } from 'node:os';
import { errorMessage } from '../../common/errors.js';
import { normalizeIp } from '../../common/net.js';
import type { Logger } from '../../common/log.js';
import type { ProxyStateView } from '../../dataplane/state/proxy-state.js';
import type { CaptureScripts, ListedPod } from './capture-scripts.js';
import { captureRefusal, captureSupported, nextRetryAt, planPodRules, wantedPods, type AppliedPod, type PodRuleState, type PodRuleStep, type WantedPod } from './pod-rules.js';

export const RETRY_BASE_MS = 500;
export const RETRY_MAX_MS = 30_000;

export function retryDelayMs(attempts: number): number {
  return Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** Math.min(Math.max(attempts - 1, 0), 16));
}

/** Counted per operation and result (metrics.ts exposes them). */
export interface CaptureCounters {
  operation(operation: 'setup' | 'add' | 'remove' | 'teardown' | 'list', result: 'ok' | 'error'): void;
}

export interface PodCaptureOptions {
  state: ProxyStateView;
  node: string;
  scripts: CaptureScripts;
  mark: number;
  counters: CaptureCounters;
  log: Logger;
  /** How often the rules on the node are checked against what was applied (0 = never). */
  resyncMs: number;
  /** Remove every rule at stop (node-teardown.sh); false: leave them (fail closed) for the next ztunnel to reconcile. */
  teardown: boolean;
  now?: () => number;
  /** The addresses of this node's own interfaces (default: read from the kernel each time); never captured. */
  nodeAddresses?: () => ReadonlySet<string>;
}

/** Every address of this network namespace's interfaces. */
export function interfaceAddresses(): Set<string> {
  return new Set(Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => normalizeIp(i.address))));
}

export interface CaptureSnapshot {
  enabled: true;
  iptables: string;
  mark: string;
  scripts: string;
  setupAt: string | null;
  /** Rules found at start that an earlier run left (their count), once the first sync has looked. */
  foundAtStart: number | null;
  pods: { pod: string; address: string; state: PodRuleState; since: string; attempts: number; lastError?: string; retryAt?: string }[];
}

export class PodCapture {
  private readonly applied = new Map<string, AppliedPod>();
  private queue: Promise<void> = Promise.resolve();
  private retryTimer: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  /** A pod-add failed or rules went missing: run node-setup.sh (idempotent) before the next additions. */
  private chainsSuspect = false;
  private following = false;
  private reconcileQueued = false;
  private stopped = false;
  private setupAt: number | undefined;
  private foundAtStart: number | undefined;
  private readonly now: () => number;
  private readonly saidUnsupported = new Set<string>();

  private readonly nodeAddresses: () => ReadonlySet<string>;

  constructor(private readonly o: PodCaptureOptions) {
    this.now = o.now ?? Date.now;
    this.nodeAddresses = o.nodeAddresses ?? interfaceAddresses;
  }

  /** node-setup.sh: the node chains. Throws (with the script's message) when they cannot be made. */
  async setup(): Promise<void> {
    try {
      await this.o.scripts.run('node-setup.sh');
    } catch (err) {
      this.o.counters.operation('setup', 'error');
      throw err;
    }
    this.o.counters.operation('setup', 'ok');
    this.setupAt = this.now();
    this.o.log.info({ iptables: this.o.scripts.iptables, mark: `0x${this.o.mark.toString(16)}` }, 'capture chains ready');
  }

  /**
   * Starts following the state: call once the controller's workloads have arrived (before that, rules an earlier run
   * left stay as they are, so an enrolled pod's traffic is refused rather than sent in plaintext). Finds the rules
   * already there first, then reconciles after every workload change.
   */
  follow(): void {
    if (this.following || this.stopped) return;
    this.following = true;
    this.enqueue(async () => {
      let found: ListedPod[] = [];
      try {
        found = await this.o.scripts.listPods();
        this.o.counters.operation('list', 'ok');
      } catch (err) {
        // Not knowing what an earlier run left only risks stale rules; pod-add.sh still replaces partial sets.
        this.o.counters.operation('list', 'error');
        this.o.log.warn({ err: errorMessage(err) }, 'cannot list existing capture rules; rules an earlier run left for pods no longer here stay until the node is torn down');
      }
      const t = this.now();
      const wanted = wantedPods(this.o.state, this.o.node);
      for (const { address, complete } of found) {
        // An incomplete set for a wanted pod is left out of `applied`, so the reconcile adds it again (pod-add.sh
        // replaces partial sets); any other found address counts as present, so the reconcile removes it if unwanted.
        if (!complete && wanted.has(address)) continue;
        this.applied.set(address, { address, pod: wanted.get(address)?.pod ?? '(unknown)', state: 'present', since: t, attempts: 0 });
      }
      this.foundAtStart = found.length;
      if (found.length > 0) this.o.log.info({ addresses: found.length }, 'capture rules from an earlier run found; reconciling them with the pods on this node');
      await this.reconcile();
    });
    this.o.state.on('workloads', () => this.schedule());
    if (this.o.resyncMs > 0) {
      this.resyncTimer = setInterval(() => this.enqueue(() => this.resync()), this.o.resyncMs);
      this.resyncTimer.unref();
    }
  }

  /** Compares the rules on the node with `applied` and reconciles the difference. */
  private async resync(): Promise<void> {
    if (this.stopped) return;
    await this.checkNodeRules();
    let listed: ListedPod[];
    try {
      listed = await this.o.scripts.listPods();
      this.o.counters.operation('list', 'ok');
    } catch (err) {
      this.o.counters.operation('list', 'error');
      this.o.log.warn({ err: errorMessage(err) }, 'cannot list the capture rules to check them; checking again later');
      return;
    }
    const complete = new Set(listed.filter((p) => p.complete).map((p) => p.address));
    const missing = [...this.applied.values()].filter((a) => a.state === 'present' && !complete.has(a.address));
    for (const a of missing) this.applied.delete(a.address);
    if (missing.length > 0) {
      this.chainsSuspect = true;
      this.o.log.warn({ pods: missing.map((a) => a.pod), addresses: missing.map((a) => a.address) }, 'capture rules missing or incomplete (removed by someone else: an iptables flush, a firewall reload?); putting them back');
    }
    const t = this.now();
    const wanted = wantedPods(this.o.state, this.o.node);
    for (const { address, complete: whole } of listed) {
      // Unknown rules count as present (the reconcile removes them unless wanted); a wanted pod's partial set does not
      // (the reconcile adds it again: pod-add.sh replaces partial sets).
      if (this.applied.has(address) || (!whole && wanted.has(address))) continue;
      this.applied.set(address, { address, pod: '(unknown)', state: 'present', since: t, attempts: 0 });
    }
    await this.reconcile();
  }

  /**
   * The node-level rules as node-setup.sh makes them: its dry run prints what is missing or out of place (a chain
   * flushed, the nftables table deleted, kube-proxy's jump moved in front of Strait's after its restart); when it
   * prints anything, node-setup.sh runs and the change is logged with what it was.
   */
  private async checkNodeRules(): Promise<void> {
    let wrong: string[];
    try {
      wrong = (await this.o.scripts.run('node-setup.sh', ['--dry-run'])).stdout.split('\n').filter((l) => l.trim() !== '');
    } catch (err) {
      this.o.log.warn({ err: errorMessage(err) }, 'cannot check the node capture rules (node-setup.sh --dry-run); checking again later');
      return;
    }
    if (wrong.length === 0) return;
    this.o.log.warn({ changes: wrong.slice(0, 10), count: wrong.length }, 'node capture rules out of place (flushed, or another rule moved in front of Strait\'s jump); putting them back');
    try {
      await this.o.scripts.run('node-setup.sh');
      this.o.counters.operation('setup', 'ok');
    } catch (err) {
      this.o.counters.operation('setup', 'error');
      this.o.log.error({ err: errorMessage(err) }, 'cannot restore the node capture rules (node-setup.sh); trying again at the next check');
    }
  }

  /** True once node chains exist and every enrolled pod of this node that can be captured has its rules. */
  ready(): { ready: boolean; detail: string } {
    if (this.setupAt === undefined) return { ready: false, detail: 'capture chains not set up' };
    if (!this.following) return { ready: false, detail: 'waiting for the controller\'s workloads' };
    const wanted = wantedPods(this.o.state, this.o.node);
    const local = this.nodeAddresses();
    const pending = [...wanted.keys()].filter((a) => captureSupported(a, local) && this.applied.get(a)?.state !== 'present');
    return pending.length === 0 ? { ready: true, detail: 'ok' } : { ready: false, detail: `capture rules pending for ${pending.length} pod address(es): ${pending.slice(0, 5).join(', ')}` };
  }

  snapshot(): CaptureSnapshot {
    const iso = (ms: number) => new Date(ms).toISOString();
    return {
      enabled: true, iptables: this.o.scripts.iptables, mark: `0x${this.o.mark.toString(16)}`, scripts: this.o.scripts.dir,
      setupAt: this.setupAt === undefined ? null : iso(this.setupAt), foundAtStart: this.foundAtStart ?? null,
      pods: [...this.applied.values()].sort((a, b) => a.pod.localeCompare(b.pod) || a.address.localeCompare(b.address)).map((a) => ({
        pod: a.pod, address: a.address, state: a.state, since: iso(a.since), attempts: a.attempts,
        ...(a.lastError ? { lastError: a.lastError } : {}), ...(a.retry && a.state === 'failed' ? { retryAt: iso(a.retry.at) } : {}),
      })),
    };
  }

  /** Pods per rule state (for the gauge). */
  counts(): Record<PodRuleState, number> {
    const c: Record<PodRuleState, number> = { present: 0, adding: 0, removing: 0, failed: 0, unsupported: 0 };
    for (const a of this.applied.values()) c[a.state]++;
    return c;
  }

  /**
   * Stops following, lets the running script finish, then (with `teardown`) removes every rule Strait made on this
   * node (node-teardown.sh). Errors are logged, not thrown: the ztunnel is stopping either way.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.resyncTimer);
    await this.queue.catch(() => undefined);
    if (!this.o.teardown) {
      this.o.log.info({ pods: this.applied.size }, 'capture rules left in place (fail closed until the next ztunnel reconciles them; --capture-teardown removes them at stop)');
      return;
    }
    try {
      await this.o.scripts.run('node-teardown.sh');
      this.o.counters.operation('teardown', 'ok');
      this.applied.clear();
      this.o.log.info('capture rules removed from the node');
    } catch (err) {
      this.o.counters.operation('teardown', 'error');
      this.o.log.error({ err: errorMessage(err) }, 'cannot remove the capture rules; run scripts/iptables/node-teardown.sh on the node');
    }
  }

  /** Queues one reconcile unless one is queued and not begun yet (it will read the latest state): a burst of workload
   * updates costs one pass, and the queue never grows with the update rate. */
  private schedule(): void {
    if (!this.following || this.stopped || this.reconcileQueued) return;
    this.reconcileQueued = true;
    this.enqueue(() => {
      this.reconcileQueued = false;
      return this.reconcile();
    });
  }

  private enqueue(work: () => Promise<void>): void {
    this.queue = this.queue.then(work).catch((err) => this.o.log.error({ err: errorMessage(err) }, 'BUG: capture reconcile failed'));
  }

  private async reconcile(): Promise<void> {
    if (this.stopped) return;
    const wanted = wantedPods(this.o.state, this.o.node);
    const local = this.nodeAddresses();
    this.noteUnsupported(wanted, local);
    // Rules name addresses, not pods: an address now given to another pod keeps its rules under the new name.
    for (const [address, a] of this.applied) {
      const w = wanted.get(address);
      if (w && w.pod !== a.pod) this.applied.set(address, { ...a, pod: w.pod });
    }
    const steps = planPodRules(wanted, this.applied, this.now(), local);
    if (this.chainsSuspect && steps.some((st) => st.operation === 'add')) {
      try {
        await this.o.scripts.run('node-setup.sh');
        this.o.counters.operation('setup', 'ok');
        this.chainsSuspect = false;
      } catch (err) {
        this.o.counters.operation('setup', 'error');
        this.o.log.error({ err: errorMessage(err) }, 'cannot restore the capture chains (node-setup.sh); pod rules will fail until it works');
      }
    }
    for (const step of steps) {
      if (this.stopped) return;
      // The state may have moved on while earlier steps ran: a step no longer wanted is planned again next time.
      const still = wantedPods(this.o.state, this.o.node).has(step.address) && captureSupported(step.address, local);
      if ((step.operation === 'add') !== still) continue;
      await this.apply(step);
    }
    this.armRetry();
  }

  private async apply(step: PodRuleStep): Promise<void> {
    const { address, pod } = step;
    const before = this.applied.get(address);
    this.applied.set(address, { address, pod, state: step.operation === 'add' ? 'adding' : 'removing', since: this.now(), attempts: before?.attempts ?? 0 });
    try {
      await this.o.scripts.run(step.operation === 'add' ? 'pod-add.sh' : 'pod-del.sh', [address]);
      this.o.counters.operation(step.operation, 'ok');
      if (step.operation === 'add') {
        this.applied.set(address, { address, pod, state: 'present', since: this.now(), attempts: 0 });
        this.o.log.info({ pod, address }, 'capture rules added');
      } else {
        this.applied.delete(address);
        this.o.log.info({ pod, address }, 'capture rules removed');
      }
    } catch (err) {
      this.o.counters.operation(step.operation, 'error');
      if (step.operation === 'add') this.chainsSuspect = true;
      const attempts = (before?.state === 'failed' ? before.attempts : 0) + 1;
      const delay = retryDelayMs(attempts);
      const lastError = errorMessage(err);
      this.applied.set(address, { address, pod, state: 'failed', since: this.now(), attempts, lastError, retry: { operation: step.operation, at: this.now() + delay } });
      this.o.log.error({ pod, address, operation: step.operation, attempts, retry_in_ms: delay, err: lastError }, 'capture rules failed');
    }
  }

  private armRetry(): void {
    clearTimeout(this.retryTimer);
    const at = nextRetryAt(this.applied);
    if (at === undefined || this.stopped) return;
    this.retryTimer = setTimeout(() => this.schedule(), Math.max(0, at - this.now()));
    this.retryTimer.unref();
  }

  /** Addresses that are not captured (captureRefusal) are said once per address and shown in /config_dump, never run. */
  private noteUnsupported(wanted: ReadonlyMap<string, WantedPod>, local: ReadonlySet<string>): void {
    for (const w of wanted.values()) {
      const refusal = captureRefusal(w.address, local);
      if (!refusal) continue;
      if (!this.applied.has(w.address)) {
        this.applied.set(w.address, { address: w.address, pod: w.pod, state: 'unsupported', since: this.now(), attempts: 0, lastError: refusal.message });
      }
      if (this.saidUnsupported.has(w.address)) continue;
      this.saidUnsupported.add(w.address);
      this.o.log.warn({ pod: w.pod, address: w.address, reason: refusal.code }, refusal.message);
    }
    for (const [address, a] of this.applied) if (a.state === 'unsupported' && !wanted.has(address)) this.applied.delete(address);
  }
}
