/**
 * CPU profiles of the ztunnels (or the waypoints) during a chosen benchmark phase, without touching their code:
 * the benchmark starts the mesh with NODE_OPTIONS="--import <this file>" and STRAIT_BENCH_CPU_PROF_DIR set
 * (--cpu-prof itself is not allowed in NODE_OPTIONS). In every `strait ztunnel` process (or every process whose
 * command STRAIT_BENCH_CPU_PROF_ROLES names, e.g. "waypoint") this module opens an in-process inspector session;
 * SIGUSR2 starts the V8 sampling profiler, the next SIGUSR2 stops it and writes
 * `<dir>/ztunnel-<node>-<pid>-<n>.cpuprofile` (`waypoint-<ns>_<name>-…` for a waypoint; Chrome DevTools format)
 * with a `.memory.json` beside it (process.memoryUsage() and V8 heap statistics at that moment), and so on.
 * In any other process (strait up, the controller) it does nothing.
 */
import inspector from 'node:inspector';
import v8 from 'node:v8';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';

export const CPU_PROF_ENV = 'STRAIT_BENCH_CPU_PROF_DIR';
export const CPU_PROF_ROLES_ENV = 'STRAIT_BENCH_CPU_PROF_ROLES';
const SAMPLING_INTERVAL_US = 200;

const dir = process.env[CPU_PROF_ENV];
const args = process.argv.slice(2);
const role = (process.env[CPU_PROF_ROLES_ENV] ?? 'ztunnel').split(',').find((r) => r === 'ztunnel' || r === 'waypoint' ? args.includes(r) : false);

if (dir && role) {
  const nameFlag = role === 'waypoint' ? '--waypoint' : '--node';
  const node = (args.includes(nameFlag) ? args[args.indexOf(nameFlag) + 1] : undefined)?.replace(/\//g, '_') ?? 'unknown';
  const session = new inspector.Session();
  session.connect();
  const post = (method: string, params?: object): Promise<any> =>
    new Promise((resolve, reject) => session.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res))));
  let running = false;
  let n = 0;
  let busy: Promise<unknown> = post('Profiler.enable').then(() => post('Profiler.setSamplingInterval', { interval: SAMPLING_INTERVAL_US }));
  process.on('SIGUSR2', () => {
    busy = busy.then(async () => {
      if (!running) {
        await post('Profiler.start');
        running = true;
        return;
      }
      const { profile } = await post('Profiler.stop');
      running = false;
      const base = join(dir, `${role}-${node}-${process.pid}-${++n}`);
      writeFileSync(`${base}.cpuprofile`, JSON.stringify(profile));
      // Where the resident memory goes: V8 heap spaces vs. everything else (code, native buffers, OpenSSL, libuv).
      // And which npm packages the process has loaded (CommonJS ones, which all of its dependencies are).
      const packages = [...new Set(Object.keys(createRequire(import.meta.url).cache).map((f) => /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(f)?.[1]).filter(Boolean))].sort();
      writeFileSync(`${base}.memory.json`, JSON.stringify({ memoryUsage: process.memoryUsage(), heapSpaces: v8.getHeapSpaceStatistics(), heap: v8.getHeapStatistics(), packages }, null, 2));
    }).catch((err) => process.stderr.write(`datapath-profiler: ${(err as Error).message}\n`));
  });
}
