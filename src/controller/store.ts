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

/**
 * What a config source says about one object or one place it reads (DESIGN §3). Keys are "Kind/namespace/name".
 * - `upsert`: a valid version of the object (with the warnings found in it);
 * - `reject`: the source holds a version of the object that failed validation (the store keeps the last good one);
 * - `delete`: the source no longer holds the object at all;
 * - `problems`: problems that name no object (a file that cannot be read, a YAML document without a usable
 *   identity, a kind Strait ignores), replacing whatever that `scope` (e.g. a file) reported before.
 */
export type SourceEvent =
  | { type: 'upsert'; object: LoadedObject; warnings?: Problem[] }
  | { type: 'reject'; key: string; problems: Problem[] }
  | { type: 'delete'; key: string }
  | { type: 'problems'; scope: string; problems: Problem[] };

/** Receives a source's events; each call is one batch (one change event at most). */
export type SourceSink = (events: SourceEvent[], changedAt: number, opts?: ApplyOptions) => void;

export interface ApplyOptions {
  /**
   * The batch is the source's whole state (its first listing, or a relist after a watch was lost): every object
   * and scope of this source that the batch does not name is deleted.
   */
  resync?: boolean;
}

/** A config source (file directory, Kubernetes API) feeding the store. */
export interface ConfigSource {
  readonly name: string;
  /** Starts watching; sends its whole state now (as a resync batch) and then each change. Resolves after the first batch. */
  start(sink: SourceSink): Promise<void>;
  close(): Promise<void>;
}

/** The snapshot form of a source's state (a parse of a whole directory), for tests and one-shot loads. */
export interface SourceState {
  objects: LoadedObject[];
  problems: Problem[];
}

/** What one source currently offers for one key. */
interface Offer {
  /** The last valid version this source offered (kept while a later version is rejected). */
  good?: LoadedObject;
  /** Warnings found in the good version. */
  warnings: Problem[];
  /** Set while the source's current version of the object is invalid. */
  rejected?: Problem[];
  /** Bumped whenever what the source offers for the key changes (for "report once per object and change"). */
  revision: number;
}

/**
 * The controller's one store of validated config objects, fed by per-object events from sources.
 * Invariants: only validated objects are in force; an object in force changes only when its source offers a new
 * valid version or stops holding it (a rejected version never removes or alters the last good one); among
 * sources offering the same key, the earliest to have offered it wins; every batch that changes what is in force
 * emits exactly one 'change' event.
 */
export class ConfigStore extends EventEmitter<{ change: [StoreChange] }> {
  /** What is in force, by key. */
  private readonly objects = new Map<string, LoadedObject>();
  private readonly offers = new Map<string, Map<string, Offer>>(); // source → key → offer
  private readonly scopes = new Map<string, Map<string, Problem[]>>(); // source → scope → problems
  /** Sources offering each key, in the order they first offered it. */
  private readonly offeredBy = new Map<string, string[]>();

  /** Applies one batch of a source's events; returns (and emits, when not empty) what changed in force. */
  apply(source: string, events: readonly SourceEvent[], changedAt = Date.now(), opts: ApplyOptions = {}): StoreChange {
    const offers = this.offers.get(source) ?? this.offers.set(source, new Map()).get(source)!;
    const scopes = this.scopes.get(source) ?? this.scopes.set(source, new Map()).get(source)!;
    const touched = new Set<string>();
    const namedScopes = new Set<string>();
    for (const e of events) {
      switch (e.type) {
        case 'upsert': {
          const prev = offers.get(e.object.key);
          const warnings = e.warnings ?? [];
          const same = prev && !prev.rejected && prev.good && isDeepStrictEqual(prev.good, e.object) && isDeepStrictEqual(prev.warnings, warnings);
          offers.set(e.object.key, { good: e.object, warnings, revision: same ? prev.revision : (prev?.revision ?? 0) + 1 });
          touched.add(e.object.key);
          break;
        }
        case 'reject': {
          const prev = offers.get(e.key);
          const same = prev?.rejected && isDeepStrictEqual(prev.rejected, e.problems);
          offers.set(e.key, { ...(prev?.good ? { good: prev.good } : {}), warnings: prev?.warnings ?? [], rejected: e.problems, revision: same ? prev!.revision : (prev?.revision ?? 0) + 1 });
          touched.add(e.key);
          break;
        }
        case 'delete':
          offers.delete(e.key);
          touched.add(e.key);
          break;
        case 'problems':
          namedScopes.add(e.scope);
          if (e.problems.length > 0) scopes.set(e.scope, e.problems);
          else scopes.delete(e.scope);
          break;
      }
    }
    if (opts.resync) {
      for (const key of [...offers.keys()]) {
        if (!touched.has(key)) {
          offers.delete(key);
          touched.add(key);
        }
      }
      for (const scope of [...scopes.keys()]) if (!namedScopes.has(scope)) scopes.delete(scope);
    }

    const change: StoreChange = { changedAt, added: [], updated: [], removed: [] };
    for (const key of touched) {
      const order = this.offeredBy.get(key) ?? [];
      const has = offers.has(key);
      const i = order.indexOf(source);
      if (has && i < 0) order.push(source);
      if (!has && i >= 0) order.splice(i, 1);
      if (order.length > 0) this.offeredBy.set(key, order);
      else this.offeredBy.delete(key);

      const prev = this.objects.get(key);
      const next = this.inForce(key);
      if (next) this.objects.set(key, next);
      else this.objects.delete(key);
      if (!prev && next) change.added.push(key);
      else if (prev && !next) change.removed.push(key);
      else if (prev && next && !isDeepStrictEqual(prev.object, next.object)) change.updated.push(key);
    }
    if (change.added.length + change.updated.length + change.removed.length > 0) this.emit('change', change);
    return change;
  }

  /** Replaces everything `source` offers with a snapshot (a parsed directory): a resync batch. */
  replaceSource(source: string, state: SourceState, changedAt = Date.now()): StoreChange {
    return this.apply(source, snapshotEvents(state), changedAt, { resync: true });
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

  /** How often what the winning source offers for `key` changed (0 when nothing is offered). */
  revision(key: string): number {
    const src = this.offeredBy.get(key)?.[0];
    return src === undefined ? 0 : this.offers.get(src)?.get(key)?.revision ?? 0;
  }

  /**
   * Every current problem: the sources' own, each rejected version's errors, a warning for each object whose last
   * good version stays in force, and the warnings of the versions in force.
   */
  problems(): Problem[] {
    const out = new Set<Problem>(); // one problem may stand for several objects (a broken List document)
    const add = (ps: readonly Problem[]) => { for (const p of ps) out.add(p); };
    for (const scopes of this.scopes.values()) for (const ps of scopes.values()) add(ps);
    for (const offers of this.offers.values()) {
      for (const [key, offer] of offers) {
        const inForce = offer.good !== undefined && this.objects.get(key) === offer.good;
        if (offer.rejected) {
          add(offer.rejected);
          if (inForce) out.add(keptWarning(offer.good!, offer.rejected));
        }
        if (inForce) add(offer.warnings);
      }
    }
    return [...out].sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.doc - b.doc));
  }

  get size(): number {
    return this.objects.size;
  }

  /** The winning offer's good version: the first source (in offering order) that has one. */
  private inForce(key: string): LoadedObject | undefined {
    for (const src of this.offeredBy.get(key) ?? []) {
      const good = this.offers.get(src)?.get(key)?.good;
      if (good) return good;
    }
    return undefined;
  }
}

function keptWarning(good: LoadedObject, rejected: readonly Problem[]): Problem {
  const first = rejected[0]!;
  const [kind, ns, name] = good.key.split('/');
  return {
    severity: 'warning', file: first.file, doc: first.doc, kind: kind!, ...(ns ? { namespace: ns } : {}), name: name!, path: '',
    message: `the last good version (loaded from ${good.source.file}${good.source.doc > 0 ? ` doc ${good.source.doc}` : ''}) stays in force until this document is fixed`,
    code: 'STRAIT_ERR_MANIFEST_INVALID',
  };
}

/** The key a problem is about, when it names an object. */
export function problemKey(p: Problem): string | undefined {
  return p.kind && p.name ? `${p.kind}/${p.namespace ?? ''}/${p.name}` : undefined;
}

/**
 * A snapshot (objects and problems of a whole parse) as one batch of events: an upsert per object (with its
 * warnings), a reject per object named only by errors, and the remaining problems under one scope.
 */
export function snapshotEvents(state: SourceState, scope = '*'): SourceEvent[] {
  const keys = new Set(state.objects.map((o) => o.key));
  const warnings = new Map<string, Problem[]>();
  const rejected = new Map<string, Problem[]>();
  const loose: Problem[] = [];
  for (const p of state.problems) {
    const key = problemKey(p);
    if (key && keys.has(key) && p.severity === 'warning') (warnings.get(key) ?? warnings.set(key, []).get(key)!).push(p);
    else if (key && !keys.has(key) && p.severity === 'error') (rejected.get(key) ?? rejected.set(key, []).get(key)!).push(p);
    else loose.push(p);
  }
  return [
    ...state.objects.map((object): SourceEvent => ({ type: 'upsert', object, warnings: warnings.get(object.key) ?? [] })),
    ...[...rejected].map(([key, problems]): SourceEvent => ({ type: 'reject', key, problems })),
    { type: 'problems', scope, problems: loose },
  ];
}
