/**
 * Picks the controller's config source. Every source sends the store the same per-object events (store.ts
 * `SourceEvent`); the file source is the only one today, the Kubernetes source plugs in here.
 */
import type { Logger } from '../../common/log.js';
import type { ConfigSource } from '../store.js';
import { FileSource } from './file.js';

export interface SourceConfig {
  /** Directory (or single file) of manifests, watched. */
  configDir: string;
  /** A second directory of manifests the platform writes (the local mesh's waypoint pods). */
  extraConfigDir?: string;
}

export function createSources(cfg: SourceConfig, log: Logger): ConfigSource[] {
  return [
    new FileSource(cfg.configDir, log.child({ source: 'file' })),
    ...(cfg.extraConfigDir ? [new FileSource(cfg.extraConfigDir, log.child({ source: 'file', extra: true }))] : []),
  ];
}
