import { Command, InvalidArgumentError } from 'commander';
import { isIP } from 'node:net';
import { StraitError } from '../common/errors.js';
import { createRootLogger, type LogFormat, type LogLevel } from '../common/log.js';
import {
  MAX_DEMO_DELAY_MS, MAX_DEMO_FAIL_FIRST, parseDemoCount, parseDemoDelayMs, parseDemoFailWindow, parseDemoRatio, parseDemoStatus, type DemoBehaviour,
} from '../local/demo-annotations.js';
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
    .option('--fail-status <code>', 'status of failing requests (200-599; default 503 when --fail-ratio, --fail-first or --fail-window is given; alone: every request fails)  [annotation strait.dev/demo-fail-status]', checked(parseDemoStatus, 'an HTTP status from 200 to 599'))
    .option('--fail-ratio <r>', 'share of requests that fail, 0-1, spread evenly  [annotation strait.dev/demo-fail-ratio]', checked(parseDemoRatio, 'a share from 0 to 1'))
    .option('--fail-first <n>', 'the first N requests of each x-request-key value fail  [annotation strait.dev/demo-fail-first]', checked(parseDemoCount, `a count from 0 to ${MAX_DEMO_FAIL_FIRST}`))
    .option('--fail-window <fail/period>', 'every request fails during the first FAIL of every PERIOD from the start, e.g. 20s/40s  [annotation strait.dev/demo-fail-window]', checked(parseDemoFailWindow, 'FAIL/PERIOD, two durations with 0 < FAIL <= PERIOD and PERIOD from 100ms to 24h (e.g. 20s/40s)'))
    .option('--delay-ms <ms>', 'every answer (but /healthz) waits this long  [annotation strait.dev/demo-delay-ms]', checked(parseDemoDelayMs, `milliseconds from 0 to ${MAX_DEMO_DELAY_MS}`))
    .option('--grpc', 'HTTP/2 connections are gRPC (service strait.demo.v1.Echo); set by strait up for a port named grpc or grpc-*')
    .action(async (opts: { address: string; port: number; pod: string; namespace: string; app: string; version?: string; appVersion?: string; node: string; ztunnelAdmin?: string; grpc?: boolean } & DemoBehaviour, cmd: Command) => {
      const version = opts.appVersion ?? opts.version;
      if (!version) throw new StraitError('STRAIT_ERR_CONFIG', 'give the pod\'s version label with --version=V or --app-version V');
      const globals = cmd.optsWithGlobals() as { logLevel: LogLevel; logFormat: LogFormat };
      const log = createRootLogger({ component: 'demo-app', level: globals.logLevel, format: globals.logFormat, base: { pod: opts.pod, namespace: opts.namespace } });
      const { startDemoApp } = await import('../demo/app.js');
      const app = await startDemoApp({
        address: opts.address, port: opts.port, app: opts.app, version, pod: opts.pod, namespace: opts.namespace, node: opts.node,
        ...(opts.ztunnelAdmin ? { ztunnelAdmin: opts.ztunnelAdmin } : {}),
        behaviour: behaviourOf(opts), grpc: !!opts.grpc,
      }, log);
      onShutdown(log, () => app.close());
    });
}

function behaviourOf(o: DemoBehaviour): DemoBehaviour {
  const b: DemoBehaviour = {};
  if (o.failStatus !== undefined) b.failStatus = o.failStatus;
  if (o.failRatio !== undefined) b.failRatio = o.failRatio;
  if (o.failFirst !== undefined) b.failFirst = o.failFirst;
  if (o.delayMs !== undefined) b.delayMs = o.delayMs;
  if (o.failWindow !== undefined) b.failWindow = o.failWindow;
  return b;
}

function checked<T>(parse: (v: string) => T | undefined, what: string): (v: string) => T {
  return (v) => {
    const n = parse(v);
    if (n === undefined) throw new InvalidArgumentError(`"${v}" is not ${what}`);
    return n;
  };
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
