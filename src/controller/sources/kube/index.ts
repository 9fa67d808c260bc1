/** The Kubernetes config source (list+watch through src/common/kube). Loaded only with --source kubernetes. */
export { KubeSource, DEFAULT_KUBE_CRD_RETRY_MS, type KubeSourceOptions } from './kube-source.js';
export { watchedKinds, type WatchedKind } from './kinds.js';
export { Backoff, jittered, DEFAULT_KUBE_BACKOFF_INITIAL_MS, DEFAULT_KUBE_BACKOFF_MAX_MS } from './backoff.js';
export { objectEvent, watchEvent, keyOf, KUBE_SOURCE_FILE } from './events.js';
export type { KindWatcherMetrics } from './kind-watcher.js';
