/**
 * The data-path load generator as a process of its own (RemoteLoad in datapath-load.ts starts it, in a pod's network
 * namespace for bench/capture.ts): a LocalLoad driven over IPC (serialization "advanced"). Commands, each answered
 * `{ id, ok: true, ... }` or `{ id, ok: false, error }`:
 *   path       { name, http: DialSpec, sink: DialSpec }
 *   probe      { path, timeoutMs }
 *   open       { set, path, connections }
 *   sequential { set, count, maxMs }      → { latency: Float64Array (ns), errors, seconds }
 *   openLoop   { set, rps, durationMs }   → { fromSchedule, service, lateness: Float64Array (ns), scheduled, due, completed, errors, seconds, achievedRps }
 *   download   { path, bytes, streams, maxMs } → { result: TransferResult }
 *   upload     { path, bytes, streams, maxMs } → { result: TransferResult }
 *   close      { set }
 * It exits when the parent disconnects.
 */
import { dialerFor, type DialSpec } from './datapath-client.js';
import { LocalLoad } from './datapath-load.js';
import { serveForked } from './forked.js';

const load = new LocalLoad();

type Msg = { id: number; cmd: string; [k: string]: any };

async function handle(m: Msg): Promise<Record<string, unknown>> {
  switch (m.cmd) {
    case 'path':
      load.addPath(m.name, dialerFor(m.http as DialSpec), dialerFor(m.sink as DialSpec));
      return {};
    case 'probe':
      await load.probe(m.path, m.timeoutMs);
      return {};
    case 'open':
      await load.open(m.set, m.path, m.connections);
      return {};
    case 'sequential': {
      const r = await load.sequential(m.set, m.count, m.maxMs);
      return { latency: r.latency.values(), errors: r.errors, seconds: r.seconds };
    }
    case 'openLoop': {
      const r = await load.openLoop(m.set, m.rps, m.durationMs);
      return {
        fromSchedule: r.fromSchedule.values(), service: r.service.values(), lateness: r.lateness.values(),
        scheduled: r.scheduled, due: r.due, completed: r.completed, errors: r.errors, seconds: r.seconds, achievedRps: r.achievedRps,
      };
    }
    case 'download':
      return { result: await load.download(m.path, m.bytes, m.streams, m.maxMs) };
    case 'upload':
      return { result: await load.upload(m.path, m.bytes, m.streams, m.maxMs) };
    case 'close':
      await load.close(m.set);
      return {};
    default:
      throw new Error(`unknown command ${m.cmd}`);
  }
}

serveForked(handle);
