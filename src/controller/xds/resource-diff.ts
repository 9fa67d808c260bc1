import type { ResourceEntry, ResourceSet } from '../../common/xds/types.js';

export interface ResourceDiff {
  /** Entries of `next` that are new or whose version differs from `prev`. */
  readonly changed: readonly ResourceEntry[];
  /** Names in `prev` that are gone from `next`. */
  readonly removed: readonly string[];
}

export const EMPTY_RESOURCE_SET: ResourceSet = new Map();

/**
 * What changed from `prev` to `next`. Entries are compared by identity first (sources reuse unchanged
 * ResourceEntry objects), then by version, so a rebuilt-but-equal entry is not reported.
 */
export function diffResourceSets(prev: ResourceSet, next: ResourceSet): ResourceDiff {
  if (prev === next) return { changed: [], removed: [] };
  const changed: ResourceEntry[] = [];
  const removed: string[] = [];
  for (const [name, entry] of next) {
    const old = prev.get(name);
    if (old !== entry && old?.version !== entry.version) changed.push(entry);
  }
  if (prev.size > 0) {
    for (const name of prev.keys()) if (!next.has(name)) removed.push(name);
  }
  return { changed, removed };
}
