#!/usr/bin/env node
/**
 * The `strait` command. Wires commands to components; each command lives in its own file.
 */
import { Command, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { controllerCommand } from './controller.js';
import { statusCommand } from './status.js';
import { checkCommand } from './check.js';
import { namespaceCommand } from './namespace.js';
import { tokenCommand } from './token.js';
import { validateCommand } from './validate.js';
import { ztunnelCommand } from './ztunnel.js';
import { waypointCommand } from './waypoint.js';
import { upCommand } from './up.js';
import { labCommand } from './lab.js';
import { demoCommand } from './demo.js';
import { demoAppCommand } from './demo-app.js';
import { installCommand, uninstallCommand } from './install.js';
import { LOG_FORMATS, LOG_LEVELS } from '../common/log.js';

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('strait')
  .description('Strait: a sidecar-less (ambient) service mesh — controller, ztunnel and waypoint in one binary')
  .version(pkg.version)
  .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS).default('info'))
  .addOption(new Option('--log-format <format>', 'log format: json for machines, pretty for people').choices(LOG_FORMATS).default('json'))
  .showHelpAfterError();

program.addCommand(controllerCommand());
program.addCommand(validateCommand());
program.addCommand(tokenCommand());
program.addCommand(ztunnelCommand());
program.addCommand(waypointCommand());
program.addCommand(upCommand());
program.addCommand(labCommand());
program.addCommand(statusCommand());
program.addCommand(checkCommand());
program.addCommand(namespaceCommand());
program.addCommand(demoCommand());
program.addCommand(installCommand());
program.addCommand(uninstallCommand());
program.addCommand(demoAppCommand(), { hidden: true });

program.parseAsync(process.argv).catch((err: unknown) => {
  const e = err as { code?: string; message?: string };
  process.stderr.write(`strait: ${e.code ? `[${e.code}] ` : ''}${e.message ?? String(err)}\n`);
  process.exit(1);
});
