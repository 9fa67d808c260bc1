/**
 * The calls the controller's Kubernetes writers make, by object (apiVersion + kind + namespace + name), so they
 * depend on this narrow port rather than on a client; kube-client-adapter.ts implements it over the shared client.
 */
import type { KubeObject } from './waypoint-objects.js';

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
}

export interface ObjectApi {
  /** Undefined when absent (404). */
  get<T = KubeObject>(ref: ObjectRef): Promise<T | undefined>;
  /** POST; fails with status 409 when it exists. */
  create<T extends KubeObject = KubeObject>(obj: T): Promise<T>;
  /** PUT with metadata.resourceVersion; fails with status 409 when the object changed since it was read. */
  replace<T extends KubeObject = KubeObject>(obj: T): Promise<T>;
  /** PUT to the status subresource (metadata.resourceVersion as above). */
  replaceStatus<T extends KubeObject = KubeObject>(obj: T): Promise<T>;
  /** DELETE (background propagation); absent counts as done. */
  delete(ref: ObjectRef): Promise<void>;
}

export function refOf(o: KubeObject): ObjectRef {
  return { apiVersion: o.apiVersion, kind: o.kind, ...(o.metadata.namespace ? { namespace: o.metadata.namespace } : {}), name: o.metadata.name };
}

export function describeRef(r: ObjectRef): string {
  return `${r.kind} ${r.namespace ? `${r.namespace}/` : ''}${r.name}`;
}
