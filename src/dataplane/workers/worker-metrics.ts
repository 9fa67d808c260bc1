/**
 * Metrics labelled by worker, so the merged view on 15020 (summed over processes) still shows each worker apart:
 * connections it accepted and its resident memory. `worker` is the slot (1..N, kept across restarts), or "primary".
 */
import { Counter, Gauge, type Registry } from 'prom-client';

export interface PerWorkerMetrics {
  /** Counts one accepted connection of this worker. */
  accepted(): void;
}

export function perWorkerMetrics(registry: Registry, worker: string): PerWorkerMetrics {
  const accepted = new Counter({
    name: 'strait_worker_connections_accepted_total',
    help: 'Connections accepted by each data-plane worker on any of its listeners (the kernel spreads them over the workers).',
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
