/**
 * Bench helper: where a config change's time goes inside the controller, measured in this process on the
 * same manifests with the controller's own classes (parseManifests → ConfigStore → MeshViewSource), i.e.
 * without sockets. Used by bench/propagation.ts to explain its end-to-end figure; not a goal by itself.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseManifests } from '../../src/common/model/parse.js';
import type { LoadedObject } from '../../src/common/model/types.js';
import { TYPE_WORKLOAD } from '../../src/common/xds/resources.js';
import { ConfigStore } from '../../src/controller/store.js';
import { MeshViewSource } from '../../src/controller/view-source.js';
import { computeViews } from '../../src/controller/views.js';
import type { GeneratedMesh } from './controller-mesh.js';
import { round, summarize } from './controller-report.js';

export interface Breakdown {
  /** Parsing and validating every manifest file once (what a controller start does). */
  parseAllMs: number;
  /** First computation of every view (all workloads, services, authorizations) and their versions. */
  firstViewsMs: number;
  /** Per policy edit: store update, then the view source's recompute (MeshViewSource.refresh). */
  storeUpdateMs: number;
  viewRecomputeMs: { p50: number; max: number };
  /** computeViews from scratch on the same objects (no reuse of the previous views, no hashing). */
  computeViewsMs: { p50: number; max: number };
}

function yamlFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.ya?ml$/.test(e)) out.push(p);
    }
  };
  walk(dir);
  return out.sort();
}

export function measureBreakdown(mesh: GeneratedMesh, edits = 4): Breakdown {
  const opts = { trustDomain: 'cluster.local', rootNamespace: 'istio-system' };
  const t0 = performance.now();
  const byFile = new Map<string, LoadedObject[]>();
  for (const f of yamlFiles(mesh.dir)) byFile.set(f, parseManifests(readFileSync(f, 'utf8'), relative(mesh.dir, f)).objects);
  const parseAllMs = performance.now() - t0;
  const all = () => [...byFile.values()].flat();

  const store = new ConfigStore();
  const views = new MeshViewSource(store, opts);
  store.replaceSource('bench', { objects: all(), problems: [] });
  const t1 = performance.now();
  views.resources('ztunnel', TYPE_WORKLOAD);
  const firstViewsMs = performance.now() - t1;

  const storeMs: number[] = [];
  const recomputeMs: number[] = [];
  const computeMs: number[] = [];
  for (let i = 0; i < edits; i++) {
    mesh.writeEditVariant(i % 2 === 0 ? 'b' : 'a');
    byFile.set(mesh.editTarget.file, parseManifests(readFileSync(mesh.editTarget.file, 'utf8'), relative(mesh.dir, mesh.editTarget.file)).objects);
    const objects = all();
    const a = performance.now();
    store.replaceSource('bench', { objects, problems: [] });
    const b = performance.now();
    views.generation(); // recomputes lazily, as the xDS server's push round does
    const c = performance.now();
    computeViews(store.meshObjects(), opts);
    const d = performance.now();
    storeMs.push(b - a);
    recomputeMs.push(c - b);
    computeMs.push(d - c);
  }
  mesh.writeEditVariant('a'); // leave the file as generated
  const r = summarize(recomputeMs);
  const cv = summarize(computeMs);
  return {
    parseAllMs: Math.round(parseAllMs),
    firstViewsMs: Math.round(firstViewsMs),
    storeUpdateMs: round(summarize(storeMs).p50, 1),
    viewRecomputeMs: { p50: Math.round(r.p50), max: Math.round(r.max) },
    computeViewsMs: { p50: Math.round(cv.p50), max: Math.round(cv.max) },
  };
}
