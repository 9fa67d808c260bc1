/** JSON shapes of the Kubernetes API that the client hands back (only the fields Strait relies on are typed). */

export interface KubeOwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface KubeObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: KubeOwnerReference[];
  finalizers?: string[];
  [field: string]: unknown;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: KubeObjectMeta;
  [field: string]: unknown;
}

/** An object as the server returns it: metadata always present. */
export type StoredKubeObject<T extends KubeObject = KubeObject> = T & { apiVersion: string; kind: string; metadata: KubeObjectMeta & { name: string; resourceVersion: string } };

export interface KubeListMeta {
  resourceVersion: string;
  continue?: string;
  remainingItemCount?: number;
}

export interface KubeList<T extends KubeObject = KubeObject> {
  apiVersion: string;
  kind: string;
  metadata: KubeListMeta;
  /** Each item has apiVersion and kind filled in (the API server leaves them out of built-in lists). */
  items: StoredKubeObject<T>[];
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';

export interface WatchEvent<T extends KubeObject = KubeObject> {
  type: WatchEventType;
  /** For BOOKMARK only metadata.resourceVersion (and annotations) is meaningful. */
  object: StoredKubeObject<T>;
}

export type PatchType = 'merge' | 'strategic' | 'json';

export const PATCH_CONTENT_TYPES: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  json: 'application/json-patch+json',
};

export interface ListOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
  resourceVersion?: string;
  resourceVersionMatch?: 'Exact' | 'NotOlderThan';
}

export interface WatchOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Events after this version; unset: synthetic ADDED for everything that exists, then changes. */
  resourceVersion?: string;
  /** Default true. */
  allowWatchBookmarks?: boolean;
  /** The server ends the stream after this long (default: random 300–600 s, as client-go does). */
  timeoutSeconds?: number;
}

export interface DeleteOptions {
  namespace?: string;
  propagationPolicy?: 'Background' | 'Foreground' | 'Orphan';
  preconditions?: { resourceVersion?: string; uid?: string };
}
