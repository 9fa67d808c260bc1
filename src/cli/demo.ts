import { Command, InvalidArgumentError } from 'commander';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { errorMessage } from '../common/errors.js';
import { createRootLogger, type LogFormat, type LogLevel } from '../common/log.js';
import { parseDurationMs } from '../common/model/duration.js';
import { onOutputClosed, onShutdown } from './shutdown.js';
import { DEMO_DIR, addressBase } from './up.js';

/**
 * `strait demo` (what `npm start` runs): the local mesh of examples/demo, traffic between its pods, and a
 * live summary of what the mesh let through, whom the destinations saw calling, what the waypoint did at L7
 * (splits, retries, denials, outlier ejections), and what each component costs.
 */
export function demoCommand(): Command {
  return new Command('demo')
    .description('run the built-in demo: the local mesh of examples/demo, traffic between its pods through the ztunnels and a waypoint, and a live summary')
    .option('--duration <d>', 'stop after this long (e.g. 15s, 2m) and print a final summary (default: until Ctrl-C)', duration)
    .option('--log-dir <dir>', 'where the components\' log files go (default: a new temporary directory, printed at start)')
    .option('--state-file <path>', 'once the mesh is ready, write where everything runs as JSON here (removed on exit)')
    .option('--rate <n>', 'requests per second on each route', rate, 5)
    .option('--address-base <127.N.0.0>', 'run the demo on 127.N.0.0/16 instead of 127.0.0.0/16 (next to another mesh)', addressBase)
    .action(async (opts: { duration?: number; logDir?: string; stateFile?: string; rate: number; addressBase?: number }, cmd: Command) => {
      const globals = cmd.optsWithGlobals() as { logLevel: LogLevel; logFormat: LogFormat };
      const logDir = resolve(opts.logDir ?? mkdtempSync(join(tmpdir(), 'strait-demo-')));
      const log = createRootLogger({ component: 'demo', level: globals.logLevel, format: globals.logFormat, destination: join(logDir, 'demo.log') });
      const [{ LocalMesh }, { DEMO_ROUTE_SPECS, resolveRoutes }, { TrafficGenerator }, { SummaryView }, { WaypointWatch }] = await Promise.all([
        import('../local/mesh.js'), import('../demo/routes.js'), import('../demo/traffic.js'), import('../demo/summary.js'), import('../demo/waypoint-status.js'),
      ]);
      let output: { closed: () => boolean } | undefined;
      const say = (line: string) => { if (!output?.closed()) process.stdout.write(line + '\n'); };

      const mesh = new LocalMesh({ manifestDir: DEMO_DIR, logLevel: globals.logLevel, log, logDir, addressBase: opts.addressBase ?? 0, ...(opts.stateFile ? { stateFile: opts.stateFile } : {}) });
      let traffic: InstanceType<typeof TrafficGenerator> | undefined;
      let summary: InstanceType<typeof SummaryView> | undefined;
      let sampling: NodeJS.Timeout | undefined;
      let closing: Promise<void> | undefined;
      const close = () => (closing ??= (async () => {
        clearInterval(sampling);
        await traffic?.stop();
        summary?.stop();
        say('stopping the mesh…');
        await mesh.stop();
        say(`stopped. Component logs are in ${logDir}`);
      })());
      const stop = onShutdown(log, close);
      output = onOutputClosed(log, () => stop('standard output closed'));
      process.on('exit', () => mesh.cleanupSync());

      say(`Strait demo: starting the local mesh of ${DEMO_DIR} (controller, one ztunnel per node, the demo apps, the waypoints).`);
      say(`Component logs: ${logDir}`);
      const state = await mesh.start();
      let routes;
      try {
        routes = resolveRoutes(DEMO_ROUTE_SPECS, mesh.apps, state.nodes);
      } catch (err) {
        await close();
        throw err;
      }
      const waypoints = Object.keys(state.waypoints);
      const socks = Object.entries(state.nodes).map(([n, z]) => `${n} ${z.socks5}`).join(', ');
      say(`Mesh ready: ${Object.keys(state.nodes).length} nodes, ${waypoints.length} waypoint${waypoints.length === 1 ? '' : 's'}, ${Object.keys(state.apps).length} pods on `
        + `${state.addressBase.replace(/\.0\.0$/, '.0.0/16')}.`);
      say(`Each route below sends ${opts.rate} req/s from the calling pod's address through its node's SOCKS5 (${socks}):`);
      const nameWidth = Math.max(...routes.map((r) => r.name.length));
      const expected = { ok: 'answers', denied: 'denied', outlier: 'answers, a few 5xx from a failing pod' } as const;
      for (const r of routes) {
        say(`  ${r.name.padEnd(nameWidth)}  ${r.from.namespace}/${r.from.pod} ${r.from.address} on ${r.from.node} → ${r.host}:${r.port}${r.layer === 'l7' ? ' via waypoint' : ''}`
          + `  (expect ${expected[r.expect]})`);
      }
      say('');

      traffic = new TrafficGenerator(routes, { ratePerRoute: opts.rate, log });
      const startedAt = Date.now();
      const until = opts.duration !== undefined ? `stops after ${opts.duration / 1000}s` : 'Ctrl-C to stop';
      const t = traffic;
      // CPU and memory of each component (systeminformation), sampled as often as the summary is drawn.
      let components: Awaited<ReturnType<typeof mesh.usage>> = [];
      // The waypoints' outlier state (their /config_dump), named by pod: asked as often as the summary is drawn.
      const podAt = new Map(mesh.apps.map((a) => [`${a.address}:${a.port}`, a.pod]));
      const watch = new WaypointWatch(() => Object.entries(mesh.state().waypoints).map(([key, w]) => ({ key, admin: w.admin })), (e) => podAt.get(e));
      const sample = () => Promise.all([
        mesh.usage().then((u) => { components = u; }, (err) => log.warn({ err: errorMessage(err) }, 'cannot read the components\' CPU and memory')),
        watch.poll(),
      ]);
      await sample();
      sampling = setInterval(() => void sample(), 2_000);
      // Once standard output is closed, writes to it fail quietly (onOutputClosed listens) while the demo stops.
      summary = new SummaryView(process.stdout, () => ({
        elapsedMs: Date.now() - startedAt, routes: t.snapshot(), components, note: until, waypoints, waypointStatus: watch.latest(),
      }));
      traffic.start();
      summary.start();
      log.info({ routes: routes.map((r) => r.name), ratePerRoute: opts.rate, durationMs: opts.duration ?? null }, 'demo traffic started');

      if (opts.duration !== undefined) {
        setTimeout(() => {
          close().then(() => process.exit(0), (err) => {
            log.error({ err: errorMessage(err) }, 'shutdown failed');
            process.exit(1);
          });
        }, opts.duration);
      }
    });
}

function duration(v: string): number {
  const ms = parseDurationMs(v);
  if (ms === undefined || ms <= 0) throw new InvalidArgumentError(`"${v}" is not a duration (write e.g. 15s, 2m, 1m30s)`);
  return ms;
}

function rate(v: string): number {
  const n = Number(v);
  if (!(n > 0 && n <= 1000)) throw new InvalidArgumentError(`"${v}" is not a rate between 0 and 1000 requests per second`);
  return n;
}
