import { Command } from 'commander';
import { StraitError } from '../common/errors.js';
import { BootstrapTokens, type Caller } from '../controller/tokens.js';

export function tokenCommand(): Command {
  return new Command('token')
    .description('print the bootstrap token a ztunnel (--node) or waypoint (--waypoint) presents to the controller')
    .requiredOption('--data-dir <dir>', 'the controller\'s data directory')
    .option('--node <name>', 'node name, for a ztunnel')
    .option('--waypoint <ns/name>', 'waypoint Gateway, for a waypoint')
    .action(async (opts: { dataDir: string; node?: string; waypoint?: string }) => {
      let caller: Caller;
      if (opts.node && !opts.waypoint) caller = { type: 'node', node: opts.node };
      else if (opts.waypoint && !opts.node) {
        const [namespace, name] = opts.waypoint.split('/');
        if (!namespace || !name) throw new StraitError('STRAIT_ERR_CONFIG', `--waypoint must be <namespace>/<name>, got "${opts.waypoint}"`);
        caller = { type: 'waypoint', namespace, name };
      } else throw new StraitError('STRAIT_ERR_CONFIG', 'give exactly one of --node NAME or --waypoint NS/NAME');
      const tokens = await BootstrapTokens.loadOrCreate(opts.dataDir, false);
      process.stdout.write(tokens.tokenFor(caller) + '\n');
    });
}
