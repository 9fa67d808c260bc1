import { Command, InvalidArgumentError } from 'commander';
import { fileURLToPath } from 'node:url';
import { errorMessage } from '../common/errors.js';
import { createRootLogger, type LogFormat, type LogLevel } from '../common/log.js';
import { parseDurationMs } from '../common/model/duration.js';
import { parseAddressBase } from '../local/address-base.js';
import { parseWorkers } from '../dataplane/workers/workers-flag.js';
import { onOutputClosed, onShutdown } from './shutdown.js';

/** The built-in demo (examples/demo/ in the package). */
export const DEMO_DIR = fileURLToPath(new URL('../../../examples/demo/', import.meta.url));
export const DEFAULT_STATUS_INTERVAL_MS = 30_000;
/** The state file of `strait up`, also where `strait status` looks for a local mesh. */
export const ENV_STATE_FILE = 'STRAIT_STATE_FILE';

interface UpFlags { stateFile?: string; logDir?: string; dataDir?: string; addressBase?: number; controllerAddress?: string; certTtl?: string; statusInterval?: number; workers?: string }

export function upCommand(): Command {
  return new Command('up')
    .description('run a whole mesh locally on loopback: the controller, one ztunnel per node, the demo apps (no root, no Kubernetes)')
    .argument('[dir]', 'directory of manifests', DEMO_DIR)
    .option('--state-file <path>', `once everything is ready, write where everything runs as JSON here (kept up to date, removed on exit); \`strait status\` reads it (default <tmpdir>/strait-<uid>/up.json, unless another strait up holds that)  [env ${ENV_STATE_FILE}]`)
    .option('--log-dir <dir>', 'one log file per component instead of everything on standard output')
    .option('--data-dir <dir>', 'keep the CA (root-cert.pem, root-key.pem) and tokens here across runs (default: a fresh temporary directory)')
    .option('--address-base <127.N.0.0>', 'run on 127.N.0.0/16: every 127.a.b.c address of the manifests becomes 127.N.b.c, the controller 127.N.99.1, nodes 127.N.100.x (a second mesh next to a first; default 127.0.0.0: addresses as written)', addressBase)
    .option('--controller-address <ip>', 'loopback address of the controller (default 127.N.99.1 for --address-base 127.N.0.0)')
    .option('--cert-ttl <duration>', 'workload certificate lifetime (default 24h)')
    .option('--workers <n|auto>', 'data-plane workers of each ztunnel and waypoint (default 1: a laptop mesh runs several of them on a few cores)')
    .option('--status-interval <duration>', `log each component's pid, state, restarts, CPU and memory this often; 0 = never (default ${DEFAULT_STATUS_INTERVAL_MS / 1000}s)`, durationOrZero)
    .action(async (dir: string, opts: UpFlags, cmd: Command) => {
      const globals = cmd.optsWithGlobals() as { logLevel: LogLevel; logFormat: LogFormat };
      const log = createRootLogger({ component: 'up', level: globals.logLevel, format: globals.logFormat });
      const { LocalMesh } = await import('../local/mesh.js');
      let stateFile = opts.stateFile ?? process.env[ENV_STATE_FILE];
      if (!stateFile) {
        const { claimDefaultUpStateFile } = await import('../local/up-state-file.js');
        const claim = claimDefaultUpStateFile();
        if ('why' in claim) log.warn({ reason: claim.why }, 'no state file: strait status will not find this mesh by itself');
        else stateFile = claim.file;
      }
      let output: { closed: () => boolean } | undefined;
      const mesh = new LocalMesh({
        manifestDir: dir, logLevel: globals.logLevel, log, addressBase: opts.addressBase ?? 0,
        write: (line) => { if (!output?.closed()) process.stdout.write(line); },
        ...(opts.controllerAddress ? { controllerAddress: opts.controllerAddress } : {}),
        ...(stateFile ? { stateFile } : {}), ...(opts.logDir ? { logDir: opts.logDir } : {}), ...(opts.dataDir ? { dataDir: opts.dataDir } : {}), ...(opts.certTtl ? { certTtl: opts.certTtl } : {}),
        ...(opts.workers ? { workers: parseWorkers(opts.workers) } : {}),
      });
      let status: NodeJS.Timeout | undefined;
      const stop = onShutdown(log, async () => {
        clearInterval(status);
        await mesh.stop();
      });
      // Nobody reads what the mesh says any more (`strait up | head`): stop as if the terminal had closed.
      output = onOutputClosed(log, () => stop('standard output closed'));
      process.on('exit', () => mesh.cleanupSync());
      const state = await mesh.start();
      log.info({ nodes: Object.keys(state.nodes), apps: Object.keys(state.apps).length, stateFile, addressBase: state.addressBase }, 'mesh ready');
      const statusInterval = opts.statusInterval ?? DEFAULT_STATUS_INTERVAL_MS;
      if (statusInterval > 0) {
        status = setInterval(() => {
          mesh.usage().then((components) => {
            log.info({ components: Object.fromEntries(components.map((c) => [c.name, { pid: c.pid, status: c.status, restarts: c.restarts, cpu_percent: c.cpuPercent, rss_bytes: c.rssBytes }])) }, 'mesh status');
          }, (err) => log.warn({ err: errorMessage(err) }, 'cannot read the components\' CPU and memory'));
        }, statusInterval);
      }
    });
}

/** Commander parser of --address-base (also `strait demo`'s). */
export function addressBase(v: string): number {
  try {
    return parseAddressBase(v);
  } catch (err) {
    throw new InvalidArgumentError(errorMessage(err));
  }
}

function durationOrZero(v: string): number {
  const ms = v.trim() === '0' ? 0 : parseDurationMs(v);
  if (ms === undefined || ms < 0) throw new InvalidArgumentError(`"${v}" is not a duration (write e.g. 30s, 2m, or 0 for never)`);
  return ms;
}
