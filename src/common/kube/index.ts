/**
 * Kubernetes API access for every Strait component: find the kubeconfig as kubectl does, then a typed REST client.
 * Importing this loads @kubernetes/client-node (~0.7 s): import it lazily (`await import(...)`) from code paths
 * that run without Kubernetes.
 */
export { loadKubeConfig, IN_CLUSTER_DIR, type KubeEnv, type LoadKubeConfigOptions, type LoadedKubeConfig, type KubeConfigSource } from './kubeconfig.js';
export {
  KubeClient,
  DEFAULT_KUBE_REQUEST_TIMEOUT_MS,
  DEFAULT_KUBE_MAX_RESPONSE_BYTES,
  DEFAULT_KUBE_MAX_WATCH_LINE_BYTES,
  DEFAULT_KUBE_LIST_PAGE_SIZE,
  type KubeClientOptions,
} from './client.js';
export { KubeWatch } from './watch.js';
export {
  KubeApiError,
  isKubeApiError,
  isResourceExpired,
  isKindNotServed,
  isRetriable,
  describeSubject,
  type KubeVerb,
  type KubeRequestSubject,
  type KubeStatus,
} from './kube-error.js';
export { KUBE_TYPES, apiVersionOf, qualifiedResource, collectionPath, objectPath, type KubeResourceType } from './resource-types.js';
export * from './types.js';
