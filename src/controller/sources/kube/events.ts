/**
 * Pure mapping from Kubernetes API objects and watch events to the store's per-object SourceEvents. Objects go
 * through the same validation as a manifest file (validateObject), so an object gives the same problems whether
 * it comes from the API server or from a file; only the `file` of each problem says where it came from.
 */
import type { KubeResourceType, StoredKubeObject, WatchEventType } from '../../../common/kube/index.js';
import { validateObject } from '../../../common/model/validate.js';
import { objectKey, type Problem, type SourceRef } from '../../../common/model/types.js';
import type { SourceEvent } from '../../store.js';

/** What problems and objects from the API server name as their "file". */
export const KUBE_SOURCE_FILE = 'kubernetes';
const SOURCE: SourceRef = { file: KUBE_SOURCE_FILE, doc: 0 };

/** The store key of an API object ("Kind/namespace/name"; namespace '' for cluster-scoped kinds). */
export function keyOf(type: KubeResourceType, o: StoredKubeObject): string {
  return `${type.kind}/${type.namespaced ? (o.metadata.namespace ?? '') : ''}/${o.metadata.name}`;
}

/** An object as the store takes it: a valid version (upsert, with warnings) or the problems of an invalid one. */
export function objectEvent(type: KubeResourceType, o: StoredKubeObject): SourceEvent {
  const r = validateObject(o, SOURCE);
  if (r.object) return { type: 'upsert', object: { key: objectKey(r.object), object: r.object, source: SOURCE }, warnings: r.problems };
  return { type: 'reject', key: keyOf(type, o), problems: r.problems };
}

/** A watch event as the store takes it; undefined for BOOKMARK (it only moves the resume point). */
export function watchEvent(type: KubeResourceType, ev: { type: WatchEventType; object: StoredKubeObject }): SourceEvent | undefined {
  switch (ev.type) {
    case 'ADDED':
    case 'MODIFIED':
      return objectEvent(type, ev.object);
    case 'DELETED':
      return { type: 'delete', key: keyOf(type, ev.object) };
    case 'BOOKMARK':
      return undefined;
  }
}

/** The warning while a custom kind's CRD is not installed. */
export function missingCrdProblem(type: KubeResourceType, retryMs: number): Problem {
  const crd = type.crd ?? { name: `${type.resource}.${type.group}`, from: 'its project' };
  return {
    severity: 'warning',
    file: KUBE_SOURCE_FILE,
    doc: 0,
    path: '',
    message: `the CustomResourceDefinition ${crd.name} is not installed, so no ${type.kind} objects are read: install it (${crd.from}); Strait looks for it again every ${Math.round(retryMs / 1000)}s and reads them without a restart`,
    code: 'STRAIT_ERR_KUBE',
  };
}

/** An error that keeps a kind from being read at all (forbidden, unauthorized, not served): in the config report until it clears. */
export function kindErrorProblem(message: string): Problem {
  return { severity: 'error', file: KUBE_SOURCE_FILE, doc: 0, path: '', message, code: 'STRAIT_ERR_KUBE' };
}
