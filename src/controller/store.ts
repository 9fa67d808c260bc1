import { EventEmitter } from 'node:events';
import { isDeepStrictEqual } from 'node:util';
import type { LoadedObject, MeshObject, Problem } from '../common/model/types.js';

export interface StoreChange {
  /** ms timestamp of the source event that caused the change. */
  changedAt: number;
  added: string[];
  updated: string[];
  removed: string[];
}

/** What one config source currently offers: its full set of good objects and its current problems. */
export interface SourceState {
  objects: LoadedObject[];
  problems: Problem[];
}

/** A config source (file directory, Kubernetes API) feeding the store. */
export interface ConfigSource {
  readonly name: string;
  /** Starts watching; calls `update` with the full state now and after every change. Resolves after the first state. */
  start(update: (state: SourceState, changedAt: number) => void): Promise<void>;
  close(): Promise<void>;
}

/**
 * The controller's one store of validated config objects, fed by sources.
 * Invariants: only validated objects are held; an object changes only when its source offers a new valid
 * version or stops offering it; every effective change emits exactly one 'change' event.
 */
export class ConfigStore extends EventEmitter<{ change: [StoreChange] }> {
  private readonly objects = new Map<string, LoadedObject>();
  private readonly bySource = new Map<string, SourceState>();
  private readonly owner = new Map<string, string>();

  /** Replace everything `source` offers; other sources' objects are untouched. */
  replaceSource(source: string, state: SourceState, changedAt = Date.now()): StoreChange {
    const change: StoreChange = { changedAt, added: [], updated: [], removed: [] };
    const next = new Map(state.objects.map((o) => [o.key, o]));
    for (const [key, src] of this.owner) {
      if (src === source && !next.has(key)) {
        this.objects.delete(key);
        this.owner.delete(key);
        change.removed.push(key);
      }
    }
    for (const [key, obj] of next) {
      const prevOwner = this.owner.get(key);
      if (prevOwner !== undefined && prevOwner !== source) continue; // first source to offer a key keeps it
      const prev = this.objects.get(key);
      this.owner.set(key, source);
      this.objects.set(key, obj);
      if (!prev) change.added.push(key);
      else if (!isDeepStrictEqual(prev.object, obj.object)) change.updated.push(key);
    }
    this.bySource.set(source, state);
    if (change.added.length + change.updated.length + change.removed.length > 0) this.emit('change', change);
    return change;
  }

  get(key: string): LoadedObject | undefined {
    return this.objects.get(key);
  }

  list(): LoadedObject[] {
    return [...this.objects.values()];
  }

  *meshObjects(): Iterable<MeshObject> {
    for (const o of this.objects.values()) yield o.object;
  }

  problems(): Problem[] {
    return [...this.bySource.values()].flatMap((s) => s.problems);
  }

  get size(): number {
    return this.objects.size;
  }
}
