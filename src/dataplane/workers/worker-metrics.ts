/**
 * Metrics labelled by worker, so the merged view on 15020 (summed over processes) still shows each worker apart:
 * connections it accepted and its resident memory. `worker` is the slot (1..N, kept across restarts), or "primary".
 */
import { AggregatorRegistry, Counter, Gauge, type MetricObjectWithValues, type MetricValue, type Registry } from 'prom-client';
import type { RequestHandler } from './requests.js';
import type { WorkerPool } from './primary.js';

export interface PerWorkerMetrics {
  /** Counts one accepted connection of this worker. */
  accepted(): void;
}

/** `what`: connections (the ztunnel counts every accepted connection) or tunnels (the waypoint, HBONE CONNECTs). */
export function perWorkerMetrics(registry: Registry, worker: string, what: 'connections' | 'tunnels' = 'connections'): PerWorkerMetrics {
  const accepted = new Counter({
    name: what === 'connections' ? 'strait_worker_connections_accepted_total' : 'strait_worker_tunnels_total',
    help: what === 'connections'
      ? 'Connections accepted by each data-plane worker on any of its listeners (the kernel spreads them over the workers).'
      : 'HBONE tunnels (CONNECT streams) served by each data-plane worker (the kernel spreads the HBONE connections over the workers).',
    labelNames: ['worker'], registers: [registry],
  });
  const child = accepted.labels({ worker });
  child.inc(0);
  workerMemory(registry, worker);
  return { accepted: () => child.inc() };
}

/** The resident set size of this process, labelled with its worker (also the primary's). */
export function workerMemory(registry: Registry, worker: string): void {
  new Gauge({
    name: 'strait_worker_resident_memory_bytes',
    help: 'Resident memory of each process of the proxy: the primary and each data-plane worker.',
    labelNames: ['worker'], registers: [registry],
    collect() { this.set({ worker }, process.memoryUsage.rss()); },
  });
}

type Labels = Partial<Record<string, string | number>>;

/**
 * A registry's getMetricsAsJSON() made fit for AggregatorRegistry.aggregate(): a metric that formats its labels once
 * per series (`sharedLabels`, the waypoint's request metrics) has them folded into `labels`, which is all the
 * aggregation keys series by (else every series of such a metric would be summed into one without labels).
 */
export function aggregatable<T extends { values: object[] }>(metrics: T[]): T[] {
  for (const m of metrics) {
    for (const v of m.values) {
      if (!(v as { sharedLabels?: Labels }).sharedLabels) continue;
      const withShared = v as { labels?: Labels; sharedLabels?: Labels };
      withShared.labels = { ...withShared.sharedLabels, ...withShared.labels };
      delete withShared.sharedLabels;
    }
  }
  return metrics;
}

/** The primary's /metrics: its own registry and every worker's, summed series by series (labels kept). */
export async function mergedMetrics(own: Registry, pool: WorkerPool, timeoutMs: number): Promise<{ body: string; contentType: string }> {
  const mine = aggregatable(await own.getMetricsAsJSON());
  const workers = await pool.ask<MetricObjectWithValues<MetricValue<string>>[]>('metrics', timeoutMs);
  const merged = AggregatorRegistry.aggregate([mine, ...workers.flatMap((w) => (w.body ? [w.body] : []))]);
  return { body: await merged.metrics(), contentType: merged.contentType };
}

/** What a worker's data plane answers the primary with (its metrics, config_dump part and live connections). */
export function workerReports(dp: { sampleMetrics(): void; dump(): unknown; connections(): unknown }, registry: Registry): Record<string, RequestHandler> {
  return {
    metrics: async () => { dp.sampleMetrics(); return aggregatable(await registry.getMetricsAsJSON()); },
    dump: () => dp.dump(),
    connections: () => dp.connections(),
  };
}
