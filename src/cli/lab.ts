import { Command, Option } from 'commander';
import { StraitError } from '../common/errors.js';
import { createRootLogger, type LogFormat, type LogLevel, type Logger } from '../common/log.js';
import { DEFAULT_LAB_STATE_FILE, type LabState } from '../local/lab/state.js';
import { onOutputClosed, onShutdown } from './shutdown.js';
import { DEMO_DIR } from './up.js';

export const ENV_LAB_STATE_FILE = 'STRAIT_LAB_STATE_FILE';
/** The iptables binary, also read by the capture scripts the ztunnels run (the lab and they must agree). */
export const ENV_IPTABLES = 'STRAIT_IPTABLES';
export const LAB_NEEDS_ROOT = 'strait lab needs root (network namespaces, veths, iptables): run it with sudo, or use `strait up` for a local mesh without root';

type Globals = { logLevel: LogLevel; logFormat: LogFormat };

function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new StraitError('STRAIT_ERR_LAB', LAB_NEEDS_ROOT);
}

function stateFileOption(): Option {
  return new Option('--state-file <file>', `the lab's state file  [env ${ENV_LAB_STATE_FILE}]`).default(process.env[ENV_LAB_STATE_FILE] ?? DEFAULT_LAB_STATE_FILE);
}

async function readState(file: string): Promise<LabState> {
  const { readLabState } = await import('../local/lab/state.js');
  const state = readLabState(file);
  if (!state) throw new StraitError('STRAIT_ERR_LAB', `no lab is running (state file ${file} not found)`);
  return state;
}

export function labCommand(): Command {
  const lab = new Command('lab')
    .description('a multi-node cluster of the manifests in network namespaces, with real capture (root): up, exec, status, down');
  lab.addCommand(labUpCommand());
  lab.addCommand(labExecCommand());
  lab.addCommand(labStatusCommand());
  lab.addCommand(labDownCommand());
  return lab;
}

function labUpCommand(): Command {
  return new Command('up')
    .description('build the manifests\' cluster in network namespaces and run it in the foreground (Ctrl-C removes everything)')
    .argument('[dir]', 'directory of manifests', DEMO_DIR)
    .addOption(stateFileOption())
    .option('--log-dir <dir>', 'one log file per process instead of everything on standard output')
    .option('--data-dir <dir>', 'keep the CA (root-cert.pem, root-key.pem) and tokens here across runs (default: a fresh temporary directory)')
    .action(async (dir: string, opts: { stateFile: string; logDir?: string; dataDir?: string }, cmd: Command) => {
      requireRoot();
      const globals = cmd.optsWithGlobals() as Globals;
      const log = createRootLogger({ component: 'lab', level: globals.logLevel, format: globals.logFormat });
      const { NetnsLab } = await import('../local/lab/lab.js');
      let output: { closed: () => boolean } | undefined;
      const iptables = process.env[ENV_IPTABLES];
      const netnsLab = new NetnsLab({
        manifestDir: dir, stateFile: opts.stateFile, logLevel: globals.logLevel, log,
        write: (line) => { if (!output?.closed()) process.stdout.write(line); },
        ...(opts.logDir ? { logDir: opts.logDir } : {}), ...(opts.dataDir ? { dataDir: opts.dataDir } : {}), ...(iptables ? { iptables } : {}),
      });
      const stop = onShutdown(log, () => netnsLab.stop());
      output = onOutputClosed(log, () => stop('standard output closed'));
      process.on('exit', () => netnsLab.cleanupSync());
      const state = await netnsLab.start();
      log.info({ id: state.id, prefix: state.prefix, stateFile: opts.stateFile, nodes: Object.keys(state.nodes), pods: Object.keys(state.pods).length,
        waypoints: Object.keys(state.waypoints), services: Object.keys(state.services).length }, 'lab ready');
    });
}

function labExecCommand(): Command {
  return new Command('exec')
    .description('run a command inside a pod\'s (or a node\'s) network namespace: strait lab exec <ns>/<pod> -- CMD [ARGS...]')
    .argument('[pod-and-command...]', '<ns>/<pod> (unless --node), then -- and the command')
    .addOption(stateFileOption())
    .option('--node <name>', 'run in this node\'s namespace (where its ztunnel runs) instead of a pod\'s')
    .allowUnknownOption()
    .action(async (words: string[], opts: { stateFile: string; node?: string }) => {
      requireRoot();
      const state = await readState(opts.stateFile);
      const target = opts.node !== undefined ? undefined : words[0];
      const rest = opts.node !== undefined ? words : words.slice(1);
      if (rest.length === 0) throw new StraitError('STRAIT_ERR_LAB', 'no command to run: write strait lab exec <ns>/<pod> -- CMD [ARGS...] (or --node NAME -- CMD)');
      const { execTarget } = await import('../local/lab/state.js');
      const where = execTarget(state, { ...(target !== undefined ? { pod: target } : {}), ...(opts.node !== undefined ? { node: opts.node } : {}) });
      if ('error' in where) throw new StraitError('STRAIT_ERR_LAB', where.error);
      const { execIn } = await import('../local/lab/network.js');
      process.exit(await execIn(where.netns, rest));
    });
}

function labStatusCommand(): Command {
  return new Command('status')
    .description('what the lab runs: nodes, pods, waypoints, services (-o json: the state file)')
    .addOption(stateFileOption())
    .addOption(new Option('-o, --output <format>', 'table or json').choices(['table', 'json']).default('table'))
    .action(async (opts: { stateFile: string; output: 'table' | 'json' }) => {
      requireRoot();
      const state = await readState(opts.stateFile);
      const { isLabUpAlive } = await import('../local/lab/state.js');
      process.stdout.write(opts.output === 'json' ? JSON.stringify(state, null, 2) + '\n' : (await import('../local/lab/status.js')).statusTable(state));
      if (!isLabUpAlive(state.pid)) {
        throw new StraitError('STRAIT_ERR_LAB', `the lab of ${opts.stateFile} is not running (lab up pid ${state.pid} is gone): remove what it left with strait lab down --state-file ${opts.stateFile}`);
      }
    });
}

function labDownCommand(): Command {
  return new Command('down')
    .description('stop the lab and remove everything it made (namespaces, links, rules, processes, the state file), also after lab up was killed')
    .addOption(stateFileOption())
    .action(async (opts: { stateFile: string }, cmd: Command) => {
      requireRoot();
      const globals = cmd.optsWithGlobals() as Globals;
      const log: Logger = createRootLogger({ component: 'lab', level: globals.logLevel, format: globals.logFormat });
      const { labDown } = await import('../local/lab/down.js');
      const r = await labDown(opts.stateFile, log);
      if (!r.found) {
        process.stderr.write(`no lab is running (state file ${opts.stateFile} not found)\n`);
        return;
      }
      if (r.left.length > 0) throw new StraitError('STRAIT_ERR_LAB', `the lab is stopped, but some of it could not be removed:\n  ${r.left.join('\n  ')}`);
      log.info({ stateFile: opts.stateFile, wasRunning: r.wasRunning }, 'lab down');
    });
}
