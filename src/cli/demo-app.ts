import { Command, InvalidArgumentError } from 'commander';
import { isIP } from 'node:net';
import { StraitError } from '../common/errors.js';
import { createRootLogger, type LogFormat, type LogLevel } from '../common/log.js';
import { onShutdown } from './shutdown.js';

/**
 * `strait demo-app` (hidden): the demo app of one pod container; `strait up` and `strait demo` start it for
 * pods whose image is `strait/demo-app`.
 */
export function demoAppCommand(): Command {
  return new Command('demo-app')
    .description('run the built-in demo app (HTTP on ADDRESS:PORT, answers who it is and who called it)')
    .requiredOption('--address <ip>', 'address to listen on (the pod IP)', ip)
    .requiredOption('--port <n>', 'port to listen on', port)
    .requiredOption('--pod <name>', 'pod name')
    .requiredOption('--namespace <ns>', 'pod namespace')
    .requiredOption('--app <app>', 'the pod\'s "app" label')
    // The root program's -V/--version takes a separate "--version v1" wherever it stands, so callers write
    // --version=v1 (or --app-version v1); both reach this command.
    .option('--version <v>', 'the pod\'s "version" label (write --version=V: "--version V" is read by strait itself)')
    .option('--app-version <v>', 'same as --version')
    .requiredOption('--node <node>', 'node the pod runs on')
    .option('--ztunnel-admin <ip:port>', 'admin endpoint of the node\'s ztunnel, asked who each caller is (without it every caller is anonymous)', hostPort)
    .action(async (opts: { address: string; port: number; pod: string; namespace: string; app: string; version?: string; appVersion?: string; node: string; ztunnelAdmin?: string }, cmd: Command) => {
      const version = opts.appVersion ?? opts.version;
      if (!version) throw new StraitError('STRAIT_ERR_CONFIG', 'give the pod\'s version label with --version=V or --app-version V');
      const globals = cmd.optsWithGlobals() as { logLevel: LogLevel; logFormat: LogFormat };
      const log = createRootLogger({ component: 'demo-app', level: globals.logLevel, format: globals.logFormat, base: { pod: opts.pod, namespace: opts.namespace } });
      const { startDemoApp } = await import('../demo/app.js');
      const app = await startDemoApp({
        address: opts.address, port: opts.port, app: opts.app, version, pod: opts.pod, namespace: opts.namespace, node: opts.node,
        ...(opts.ztunnelAdmin ? { ztunnelAdmin: opts.ztunnelAdmin } : {}),
      }, log);
      onShutdown(log, () => app.close());
    });
}

function ip(v: string): string {
  if (!isIP(v)) throw new InvalidArgumentError(`"${v}" is not an IP address`);
  return v;
}

function port(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`"${v}" is not a port (0-65535)`);
  return n;
}

function hostPort(v: string): string {
  const i = v.lastIndexOf(':');
  if (i <= 0 || !isIP(v.slice(0, i).replace(/^\[|\]$/g, ''))) throw new InvalidArgumentError(`"${v}" is not IP:PORT`);
  port(v.slice(i + 1));
  return v;
}
