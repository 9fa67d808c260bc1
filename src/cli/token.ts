import { Command } from 'commander';
import { StraitError } from '../common/errors.js';
import { BootstrapTokens, type Caller } from '../controller/tokens.js';

export function tokenCommand(): Command {
  return new Command('token')
    .description('print the bootstrap token a ztunnel (--node) or waypoint (--waypoint) presents to the controller, or the operator\'s read-only xDS debug credential (--debug)')
    .requiredOption('--data-dir <dir>', 'the controller\'s data directory')
    .option('--node <name>', 'node name, for a ztunnel')
    .option('--waypoint <ns/name>', 'waypoint Gateway, for a waypoint')
    .option('--debug', 'the debug credential: subscribe as kind "debug" (send it with metadata x-strait-debug: <your name>; the name is not verified, all debug sessions share one credential)')
    .action(async (opts: { dataDir: string; node?: string; waypoint?: string; debug?: boolean }) => {
      let caller: Caller;
      const given = [opts.node, opts.waypoint, opts.debug].filter(Boolean).length;
      if (given !== 1) throw new StraitError('STRAIT_ERR_CONFIG', 'give exactly one of --node NAME, --waypoint NS/NAME or --debug');
      if (opts.debug) caller = { type: 'debug' };
      else if (opts.node) caller = { type: 'node', node: opts.node };
      else if (opts.waypoint) {
        const [namespace, name] = opts.waypoint.split('/');
        if (!namespace || !name) throw new StraitError('STRAIT_ERR_CONFIG', `--waypoint must be <namespace>/<name>, got "${opts.waypoint}"`);
        caller = { type: 'waypoint', namespace, name };
      } else throw new StraitError('STRAIT_ERR_CONFIG', 'give exactly one of --node NAME, --waypoint NS/NAME or --debug');
      const tokens = await BootstrapTokens.loadOrCreate(opts.dataDir, false);
      process.stdout.write(tokens.tokenFor(caller) + '\n');
    });
}
