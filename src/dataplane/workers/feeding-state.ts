/**
 * The primary's proxy state: the xDS client stays its one writer; every update it applies is also handed to `feed`
 * (the workers), in the order applied, and `snapshot()` gives a new worker everything applied so far.
 * Invariant: an update is fed only after this state applied it, so a worker's state is always one this state had.
 */
import type { AuthorizationResource, ServiceResource, WorkloadResource } from '../../common/xds/resources.js';
import { ProxyState } from '../state/proxy-state.js';
import type { StateUpdate } from './protocol.js';

/** The stores of ProxyState, by the name they carry in a StateUpdate. */
export const PROXY_STORES = ['workloads', 'services', 'policies'] as const;

export class FeedingState extends ProxyState {
  /** Set by the primary once its workers exist; updates before that reach them through the snapshot. */
  feed: ((u: StateUpdate) => void) | undefined;

  override applyWorkloads(added: WorkloadResource[], removed: string[]): void {
    super.applyWorkloads(added, removed);
    this.feed?.({ store: 'workloads', added, removed });
  }

  override applyServices(added: ServiceResource[], removed: string[]): void {
    super.applyServices(added, removed);
    this.feed?.({ store: 'services', added, removed });
  }

  override applyPolicies(added: { name: string; body: AuthorizationResource }[], removed: string[]): void {
    super.applyPolicies(added, removed);
    this.feed?.({ store: 'policies', added, removed });
  }

  snapshot(): StateUpdate[] {
    return [
      { store: 'workloads', added: [...this.workloads.values()], removed: [] },
      { store: 'services', added: [...this.services.values()], removed: [] },
      { store: 'policies', added: [...this.policies.entries()].map(([name, body]) => ({ name, body })), removed: [] },
    ];
  }
}

/** The worker's side: applies one update to its ProxyState (the worker state's one writer). */
export function applyToProxyState(state: ProxyState, u: StateUpdate): boolean {
  switch (u.store) {
    case 'workloads': state.applyWorkloads(u.added as WorkloadResource[], u.removed); return true;
    case 'services': state.applyServices(u.added as ServiceResource[], u.removed); return true;
    case 'policies': state.applyPolicies(u.added as { name: string; body: AuthorizationResource }[], u.removed); return true;
    default: return false;
  }
}
