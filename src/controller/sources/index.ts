/**
 * Picks the controller's config sources. Every source sends the store the same per-object events (store.ts
 * `SourceEvent`): the file source (a directory of manifests) or the Kubernetes source (list+watch of the API
 * server, loaded only when chosen: it pulls in @kubernetes/client-node).
 */
import type { Logger } from '../../common/log.js';
import type { KubeClient } from '../../common/kube/client.js';
import type { ConfigSource } from '../store.js';
import type { ConfigSourceKind, KubeSourceTuning } from '../config.js';
import type { KindWatcherMetrics } from './kube/kind-watcher.js';
import { FileSource } from './file.js';

export interface SourceConfig {
  source?: ConfigSourceKind;
  /** Directory (or single file) of manifests, watched (file source). */
  configDir: string;
  /** A second directory of manifests the platform writes (the local mesh's waypoint pods). */
  extraConfigDir?: string;
  rootNamespace?: string;
  kubeSourceTuning?: KubeSourceTuning;
}

export interface SourceDeps {
  /** The API client, with source "kubernetes". */
  kube?: KubeClient;
  kubeMetrics?: KindWatcherMetrics;
}

export async function createSources(cfg: SourceConfig, log: Logger, deps: SourceDeps = {}): Promise<ConfigSource[]> {
  const extra = cfg.extraConfigDir ? [new FileSource(cfg.extraConfigDir, log.child({ source: 'file', extra: true }))] : [];
  if (cfg.source === 'kubernetes') {
    if (!deps.kube) throw new Error('BUG: the Kubernetes source needs a client');
    const { KubeSource } = await import('./kube/index.js');
    const source = new KubeSource(deps.kube, {
      rootNamespace: cfg.rootNamespace ?? 'istio-system',
      log,
      ...(deps.kubeMetrics ? { metrics: deps.kubeMetrics } : {}),
      ...cfg.kubeSourceTuning,
    });
    return [source, ...extra];
  }
  return [new FileSource(cfg.configDir, log.child({ source: 'file' })), ...extra];
}
