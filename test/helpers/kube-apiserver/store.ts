/**
 * The double's storage, modelled on etcd as the API server uses it: one global resourceVersion counter, every
 * write gets the next one; a history of writes since the compaction point (so a watch can resume, and a list can
 * be served at an older version); compaction drops that history (older versions then answer 410).
 * Invariants: stored objects are never handed out (callers get copies); every write is one history entry and
 * one notification, delivered synchronously in resourceVersion order.
 */
import { clone } from './patch.js';

export type Obj = Record<string, any>;
export type StoreEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoreEvent {
  rv: number;
  /** "<group>/<resource>" */
  gr: string;
  type: StoreEventType;
  /** The new object, or for DELETED the last state stamped with the deletion's resourceVersion. */
  object: Obj;
  /** The object before this write (MODIFIED, DELETED). */
  prev?: Obj;
}

export function objectKey(namespace: string | undefined, name: string): string {
  return `${namespace ?? ''}/${name}`;
}

export class ObjectStore {
  #rv = 0;
  #compacted = 0;
  readonly #objects = new Map<string, Map<string, Obj>>();
  #history: StoreEvent[] = [];
  readonly #listeners = new Set<(e: StoreEvent) => void>();
  readonly #historyLimit: number;

  constructor(historyLimit: number) {
    this.#historyLimit = historyLimit;
  }

  get resourceVersion(): number {
    return this.#rv;
  }

  /** Versions at or below this one are gone: a watch from an older one gets 410. */
  get compactedAt(): number {
    return this.#compacted;
  }

  get(gr: string, key: string): Obj | undefined {
    const o = this.#objects.get(gr)?.get(key);
    return o === undefined ? undefined : clone(o);
  }

  /** Current objects of a type, sorted by "namespace/name". */
  list(gr: string): Obj[] {
    return [...(this.#objects.get(gr) ?? new Map<string, Obj>()).entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, o]) => clone(o));
  }

  /** Every type that has objects. */
  types(): string[] {
    return [...this.#objects.keys()];
  }

  /** The objects of a type as they were at `rv` (rv >= compactedAt). */
  listAt(gr: string, rv: number): Obj[] {
    if (rv < this.#compacted) throw new Error(`BUG: listAt(${rv}) below the compaction point ${this.#compacted}`);
    const m = new Map<string, Obj>(this.#objects.get(gr) ?? []);
    for (let i = this.#history.length - 1; i >= 0 && this.#history[i]!.rv > rv; i--) {
      const e = this.#history[i]!;
      if (e.gr !== gr) continue;
      const key = objectKey(e.object['metadata']?.namespace, e.object['metadata']?.name);
      if (e.type === 'ADDED') m.delete(key);
      else m.set(key, e.prev!);
    }
    return [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, o]) => clone(o));
  }

  /** Writes after `rv` for a type, or undefined when rv is older than the compaction point. */
  eventsSince(gr: string, rv: number): StoreEvent[] | undefined {
    if (rv < this.#compacted) return undefined;
    return this.#history.filter((e) => e.rv > rv && e.gr === gr).map((e) => ({ ...e, object: clone(e.object), ...(e.prev ? { prev: clone(e.prev) } : {}) }));
  }

  /** Stores an object (new or changed), stamping the next resourceVersion; returns a copy of what was stored. */
  write(gr: string, object: Obj): Obj {
    const key = objectKey(object['metadata']?.namespace, object['metadata']?.name);
    let m = this.#objects.get(gr);
    if (!m) this.#objects.set(gr, (m = new Map()));
    const prev = m.get(key);
    const stored = clone(object);
    stored['metadata'].resourceVersion = String(++this.#rv);
    m.set(key, stored);
    this.#record({ rv: this.#rv, gr, type: prev ? 'MODIFIED' : 'ADDED', object: stored, ...(prev ? { prev } : {}) });
    return clone(stored);
  }

  remove(gr: string, key: string): Obj | undefined {
    const m = this.#objects.get(gr);
    const prev = m?.get(key);
    if (!m || !prev) return undefined;
    m.delete(key);
    const gone = clone(prev);
    gone['metadata'].resourceVersion = String(++this.#rv);
    this.#record({ rv: this.#rv, gr, type: 'DELETED', object: gone, prev });
    return clone(gone);
  }

  /** Drops history up to `rv` (default: everything so far). */
  compact(rv = this.#rv): void {
    this.#compacted = Math.max(this.#compacted, Math.min(rv, this.#rv));
    this.#history = this.#history.filter((e) => e.rv > this.#compacted);
  }

  subscribe(fn: (e: StoreEvent) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  #record(e: StoreEvent): void {
    this.#history.push(e);
    if (this.#history.length > this.#historyLimit) {
      const dropped = this.#history.splice(0, this.#history.length - this.#historyLimit);
      this.#compacted = dropped[dropped.length - 1]!.rv;
    }
    for (const fn of [...this.#listeners]) fn({ ...e, object: clone(e.object), ...(e.prev ? { prev: clone(e.prev) } : {}) });
  }
}
