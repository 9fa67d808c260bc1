import { Command } from 'commander';
import cluster from 'node:cluster';
import { createRootLogger, type LogFormat, type LogLevel } from '../common/log.js';
import { setFlagsFromString } from 'node:v8';
import { WAYPOINT_V8_FLAGS, parseWaypointConfig } from '../waypoint/config.js';
import { onShutdown } from './shutdown.js';
import { editDistance } from '../common/edit-distance.js';
import { StraitError } from '../common/errors.js';
import { waypointApplyCommand, waypointDeleteCommand, waypointListCommand } from './waypoint-admin.js';

/** Request access-log lines go through a buffer this size rather than synchronously (as the ztunnel's, see its LOG_BUFFER_BYTES). */
const LOG_BUFFER_BYTES = 4 * 1024 * 1024;
/**
 * ... and are written in batches of at least this many bytes (or every 100 ms): one write per access-log line cost
 * about a tenth of the waypoint's CPU at 1,000 req/s (bench/waypoint.ts profile).
 */
const LOG_BATCH_BYTES = 8 * 1024;

/**
 * `strait waypoint`: `run` (the proxy process; also the default, so `strait waypoint --waypoint NS/NAME ...` runs it
 * as before) and the cluster commands `apply`, `list`, `delete` (waypoint-admin.ts).
 */
export function waypointCommand(): Command {
  return new Command('waypoint')
    .description('a waypoint: run the L7 proxy of one Gateway (`run`, the default), or manage waypoint Gateways in a cluster (`apply`, `list`, `delete`)')
    .addCommand(waypointRunCommand(), { isDefault: true })
    .addCommand(waypointApplyCommand())
    .addCommand(waypointListCommand())
    .addCommand(waypointDeleteCommand());
}

function waypointRunCommand(): Command {
  return new Command('run')
    .description('run a waypoint: the L7 proxy of one Gateway (gatewayClassName istio-waypoint) — HTTP routing, L7 policy, retries, timeouts, faults, outlier detection, request metrics and tracing')
    .option('--waypoint <ns/name>', 'the waypoint Gateway this process is  [env STRAIT_WAYPOINT]')
    .option('--service-account <name>', 'service account of the identity presented (default: the Gateway\'s name, as Istio)  [env STRAIT_SERVICE_ACCOUNT]')
    .option('--trust-domain <domain>', 'SPIFFE trust domain (default cluster.local)  [env STRAIT_TRUST_DOMAIN]')
    .option('--xds-address <host:port>', 'the controller (xDS + CA), default 127.0.0.1:15012  [env STRAIT_XDS_ADDRESS]')
    .option('--token-file <file>', 'bootstrap token (the controller writes <data-dir>/tokens/waypoint-<ns>-<name>.token)  [env STRAIT_TOKEN_FILE, or STRAIT_TOKEN]')
    .option('--root-cert <file>', 'mesh root certificate (the controller\'s <data-dir>/root-cert.pem)  [env STRAIT_ROOT_CERT]')
    .option('--listen-address <ip>', 'address of HBONE (15008), admin (15000), metrics (15020) and readiness (15021), default 127.0.0.1  [env STRAIT_LISTEN_ADDRESS]')
    .option('--drain <duration>', 'on SIGTERM or /quitquitquit: stop accepting, let requests finish for this long, then exit 0 (default 5s)  [env STRAIT_DRAIN_DURATION]')
    .option('--cert-ttl <duration>', 'certificate lifetime to ask for (default: the controller\'s)  [env STRAIT_CERT_TTL]')
    .option('--connect-timeout <duration>', 'HBONE connect timeout to endpoints (default 10s)  [env STRAIT_CONNECT_TIMEOUT]')
    .option('--max-header-size <bytes>', 'largest request header block; larger gets 431 (default 60KiB, as Envoy)  [env STRAIT_MAX_HEADER_SIZE]')
    .option('--retry-buffer <bytes>', 'request bodies up to this size are kept so a retry can resend them; longer ones are streamed and not retried (default 64KiB)  [env STRAIT_RETRY_BUFFER]')
    .option('--retry-buffer-total <bytes>', 'all bodies held for retries at once; past it, new requests stream their bodies and are not retried (default 64MiB)  [env STRAIT_RETRY_BUFFER_TOTAL]')
    .option('--hbone-max-streams <n>', 'concurrent tunnels each client HBONE connection may open (default 100)  [env STRAIT_HBONE_MAX_STREAMS]')
    .option('--xds-max-message-size <bytes>', 'largest xDS response accepted (default 64MiB)  [env STRAIT_XDS_MAX_MESSAGE_SIZE]')
    .option('--port-offset <n>', 'add n to every standard port (several waypoints on one address)')
    .option('--workers <n|auto>', 'data-plane worker processes sharing HBONE 15008 (auto = one per core; 1 = a single process, no workers; default 2)  [env STRAIT_WORKERS]')
    // `run` is the default: a misspelt subcommand (`strait waypoint lsit`) lands here as an argument.
    .allowExcessArguments(true)
    .action(async (flags, cmd: Command) => {
      if (cmd.args.length > 0) throw unknownSubcommand(cmd.args[0]!);
      const globals = cmd.optsWithGlobals() as { logLevel: LogLevel; logFormat: LogFormat };
      const config = parseWaypointConfig(process.env, flags);
      const log = createRootLogger({
        component: 'waypoint', level: globals.logLevel, format: globals.logFormat, base: { waypoint: `${config.namespace}/${config.name}` },
        asyncBufferBytes: LOG_BUFFER_BYTES, asyncMinBytes: LOG_BATCH_BYTES, sharedOutput: config.workers > 1,
      });
      // Process-wide, before any route regex is compiled (see WAYPOINT_V8_FLAGS).
      for (const f of WAYPOINT_V8_FLAGS) setFlagsFromString(f);
      // A data-plane worker runs this same command line (cluster.fork): it serves until its primary stops it.
      if (cluster.isWorker) {
        const { runWaypointWorker } = await import('../waypoint/app-worker.js');
        await runWaypointWorker(config, log);
        return;
      }
      const running = config.workers > 1
        ? await (await import('../waypoint/app-primary.js')).startWaypointPrimary(config, log)
        : await (await import('../waypoint/app.js')).startWaypoint(config, log);
      onShutdown(log, () => running.drain());
      await running.stopped;
      process.exit(0);
    });
}

const SUBCOMMANDS = ['run', 'apply', 'list', 'delete'];

function unknownSubcommand(word: string): StraitError {
  const near = SUBCOMMANDS.find((c) => editDistance(c, word) <= 2);
  return new StraitError('STRAIT_ERR_CONFIG', `strait waypoint has no command "${word}"${near ? ` (did you mean "${near}"?)` : ''}: use one of ${SUBCOMMANDS.join(', ')} (run is the default: strait waypoint --waypoint NS/NAME ...)`);
}
