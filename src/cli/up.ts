import { Command } from 'commander';
import { fileURLToPath } from 'node:url';
import { createRootLogger, type LogFormat, type LogLevel } from '../common/log.js';
import { onShutdown } from './shutdown.js';

/** The built-in demo (examples/demo/ in the package). */
export const DEMO_DIR = fileURLToPath(new URL('../../../examples/demo/', import.meta.url));

export function upCommand(): Command {
  return new Command('up')
    .description('run a whole mesh locally on loopback: the controller, one ztunnel per node, the demo apps (no root, no Kubernetes)')
    .argument('[dir]', 'directory of manifests', DEMO_DIR)
    .option('--state-file <path>', 'once everything is ready, write where everything runs as JSON here (removed on exit)')
    .option('--log-dir <dir>', 'one log file per component instead of everything on standard output')
    .option('--data-dir <dir>', 'keep the CA (root-cert.pem, root-key.pem) and tokens here across runs (default: a fresh temporary directory)')
    .option('--controller-address <ip>', 'loopback address of the controller', '127.0.99.1')
    .option('--cert-ttl <duration>', 'workload certificate lifetime (default 24h)')
    .action(async (dir: string, opts: { stateFile?: string; logDir?: string; dataDir?: string; controllerAddress: string; certTtl?: string }, cmd: Command) => {
      const globals = cmd.optsWithGlobals() as { logLevel: LogLevel; logFormat: LogFormat };
      const log = createRootLogger({ component: 'up', level: globals.logLevel, format: globals.logFormat });
      const { LocalMesh } = await import('../local/mesh.js');
      const mesh = new LocalMesh({ manifestDir: dir, logLevel: globals.logLevel, log, controllerAddress: opts.controllerAddress,
        ...(opts.stateFile ? { stateFile: opts.stateFile } : {}), ...(opts.logDir ? { logDir: opts.logDir } : {}), ...(opts.dataDir ? { dataDir: opts.dataDir } : {}), ...(opts.certTtl ? { certTtl: opts.certTtl } : {}) });
      onShutdown(log, () => mesh.stop());
      try {
        const state = await mesh.start();
        log.info({ nodes: Object.keys(state.nodes), apps: Object.keys(state.apps).length, stateFile: opts.stateFile }, 'mesh ready');
      } catch (err) {
        await mesh.stop();
        throw err;
      }
    });
}
