/**
 * Feeds workers the stores a proxy keeps outside ProxyState (the waypoint's routes and policies): each xDS
 * subscription is wrapped so that, once it applied a response, the same resources go to the workers, and the
 * resources it holds are recorded by name for a new worker's snapshot.
 * Invariant: the record of a store holds exactly the resources its subscription applied and has not removed since.
 */
import type { XdsSubscription } from '../../common/xds/index.js';
import type { XdsUpdate } from '../../common/xds/types.js';
import type { StateUpdate } from './protocol.js';

interface Named { name: string; body: unknown }

export class FeedRecorder {
  private readonly stores = new Map<string, Map<string, unknown>>();
  /** Set by the primary once its workers exist. */
  feed: ((u: StateUpdate) => void) | undefined;

  /** The subscriptions, each also recording and feeding what it applied (its store is its type URL). */
  wrap(subs: XdsSubscription[]): XdsSubscription[] {
    return subs.map((s) => {
      const held = new Map<string, unknown>();
      this.stores.set(s.typeUrl, held);
      return {
        ...s,
        apply: (u: XdsUpdate) => {
          s.apply(u); // throws (NACK) before anything is recorded or fed
          for (const n of u.removed) held.delete(n);
          for (const r of u.added) held.set(r.name, r.body);
          this.feed?.({ store: s.typeUrl, added: u.added.map((r): Named => ({ name: r.name, body: r.body })), removed: u.removed });
        },
      };
    });
  }

  snapshot(): StateUpdate[] {
    return [...this.stores].map(([store, held]) => ({ store, added: [...held].map(([name, body]): Named => ({ name, body })), removed: [] }));
  }
}

/** The worker's side: applies a fed update through the worker's own subscription of that type (its one writer). */
export function applyToSubscriptions(subs: XdsSubscription[], u: StateUpdate): boolean {
  const s = subs.find((x) => x.typeUrl === u.store);
  if (!s) return false;
  s.apply({ added: (u.added as Named[]).map((r) => ({ name: r.name, version: '', body: r.body })), removed: u.removed, systemVersion: '' });
  return true;
}
