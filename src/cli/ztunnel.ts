import { Command } from 'commander';
import cluster from 'node:cluster';
import { setFlagsFromString } from 'node:v8';
import { createRootLogger, type LogFormat, type LogLevel } from '../common/log.js';
import { LOG_BUFFER_BYTES, parseConfig } from '../ztunnel/config.js';
import { onShutdown } from './shutdown.js';

export function ztunnelCommand(): Command {
  return new Command('ztunnel')
    .description('run the per-node tunnel: HBONE mTLS, L4 policy, telemetry for the enrolled pods of one node')
    .option('--node <name>', 'the node this ztunnel serves  [env STRAIT_NODE_NAME]')
    .option('--xds-address <host:port>', 'the controller (xDS + CA), default 127.0.0.1:15012  [env STRAIT_XDS_ADDRESS]')
    .option('--token-file <file>', 'bootstrap token (the controller writes <data-dir>/tokens/node-<node>.token)  [env STRAIT_TOKEN_FILE, or STRAIT_TOKEN]')
    .option('--root-cert <file>', 'mesh root certificate (the controller\'s <data-dir>/root-cert.pem)  [env STRAIT_ROOT_CERT]')
    .option('--listen-address <ip>', 'the node address every listener binds, default 127.0.0.1 (0.0.0.0 with --capture)  [env STRAIT_LISTEN_ADDRESS]')
    .option('--admin-address <ip>', 'where admin (15000) listens, default the listen address, or 127.0.0.1 when that is a wildcard  [env STRAIT_ADMIN_ADDRESS]')
    .option('--capture', 'install the node\'s capture (scripts/iptables: iptables nat rules + the nftables table ip strait) at start, add/remove each enrolled pod\'s rules as pods join/leave; needs NET_ADMIN, nft and the capture addon  [env STRAIT_CAPTURE=true]')
    .option('--capture-teardown', 'with --capture: remove the node\'s capture rules when the ztunnel stops (default: keep them, so pods stay captured and fail closed until the next ztunnel starts)  [env STRAIT_CAPTURE_TEARDOWN=true]')
    .option('--capture-scripts <dir>', 'with --capture: directory of the capture scripts (default: the package\'s scripts/iptables)  [env STRAIT_CAPTURE_SCRIPTS]')
    .option('--capture-resync <duration>', 'with --capture: check the rules on the node this often and put back what someone else removed; 0 = never (default 30s)  [env STRAIT_CAPTURE_RESYNC]')
    .option('--iptables <bin>', 'with --capture: the iptables program the scripts use (default: iptables-nft if it works, else iptables-legacy, else iptables)  [env STRAIT_IPTABLES]')
    .option('--local-pod-listeners', 'local mesh: also answer HBONE on each local pod\'s address:15008  [env STRAIT_LOCAL_POD_LISTENERS=true]')
    .option('--drain <duration>', 'on SIGTERM, SIGINT or /quitquitquit: stop accepting, let connections finish for this long, then close the rest and exit 0 (default 5s; keep it below the pod\'s terminationGracePeriodSeconds)  [env STRAIT_DRAIN_DURATION]')
    .option('--pool-idle <duration>', 'close pooled (outbound) HBONE connections without streams for this long (default 5m, as Istio)  [env STRAIT_POOL_IDLE]')
    .option('--pool-max-streams <n>', 'streams per pooled HBONE connection (default 100)  [env STRAIT_POOL_MAX_STREAMS]')
    .option('--hbone-idle <duration>', 'close inbound HBONE connections (15008) without streams for this long; 0 = never (default 10m)  [env STRAIT_HBONE_IDLE]')
    .option('--hbone-max-streams <n>', 'concurrent streams each inbound HBONE connection may open (SETTINGS_MAX_CONCURRENT_STREAMS, default 100)  [env STRAIT_HBONE_MAX_STREAMS]')
    .option('--hbone-max-handshakes <n>', 'inbound HBONE connections between accept and verified TLS, in all (default 512)  [env STRAIT_HBONE_MAX_HANDSHAKES]')
    .option('--hbone-max-handshakes-per-source <n>', 'the same, from one source address (default 128)  [env STRAIT_HBONE_MAX_HANDSHAKES_PER_SOURCE]')
    .option('--hbone-max-sessions-per-identity <n>', 'inbound HBONE connections one client identity may hold (default 128)  [env STRAIT_HBONE_MAX_SESSIONS_PER_IDENTITY]')
    .option('--cert-ttl <duration>', 'workload certificate lifetime to ask for (default: the controller\'s)  [env STRAIT_CERT_TTL]')
    .option('--connect-timeout <duration>', 'TCP/HBONE connect timeout (default 10s)  [env STRAIT_CONNECT_TIMEOUT]')
    .option('--capture-mark <n>', 'under iptables capture: fwmark for the ztunnel\'s own connections to pods, which the rules skip (default 0x539 with --capture)  [env STRAIT_CAPTURE_MARK]')
    .option('--endpoint-attempts <n>', 'service endpoints tried for one connection before the client is refused (default 3; 1 = no retry)  [env STRAIT_ENDPOINT_ATTEMPTS]')
    .option('--ejection-base <duration>', 'an endpoint that fails to connect is left out of the pick this long, doubling on each further ejection (default 5s)  [env STRAIT_EJECTION_BASE]')
    .option('--ejection-max <duration>', 'the longest ejection (default 2m)  [env STRAIT_EJECTION_MAX]')
    .option('--listen-backlog <n>', 'listen() backlog of every listener (default: net.core.somaxconn, the most the kernel grants)  [env STRAIT_LISTEN_BACKLOG]')
    .option('--xds-max-message-size <bytes>', 'largest xDS response accepted, e.g. 64MiB (default 64MiB, ten times a 10,000-pod mesh\'s snapshot)  [env STRAIT_XDS_MAX_MESSAGE_SIZE]')
    .option('--gc <mode>', 'V8 old-generation collection: atomic (default; no incremental marking, the heap is small) or incremental  [env STRAIT_GC]')
    .option('--same-node-fast-path', 'traffic between two pods of this node skips TLS + HTTP/2 to this ztunnel\'s own 15008 (same policy, access log and metrics); the default  [env STRAIT_SAME_NODE_FAST_PATH=true]')
    .option('--no-same-node-fast-path', 'mTLS (HBONE) on the loopback too for traffic between two pods of this node  [env STRAIT_SAME_NODE_FAST_PATH=false]')
    .option('--port-offset <n>', 'add n to every standard port (several ztunnels on one address)')
    .option('--workers <n|auto>', 'data-plane worker processes sharing the listeners (auto = one per core; 1 = a single process, no workers; default 2)  [env STRAIT_WORKERS]')
    .action(async (flags, cmd: Command) => {
      const globals = cmd.optsWithGlobals() as { logLevel: LogLevel; logFormat: LogFormat };
      const config = parseConfig(process.env, flags);
      // Asynchronous: a slow reader of standard output must not stall the data path (see LOG_BUFFER_BYTES).
      const log = createRootLogger({
        component: 'ztunnel', level: globals.logLevel, format: globals.logFormat, base: { node: config.nodeName }, asyncBufferBytes: LOG_BUFFER_BYTES,
        sharedOutput: config.workers > 1,
      });
      // A process-wide V8 setting, so it belongs to the process (not to startZtunnel, which tests also run in-process).
      if (config.gc === 'atomic') setFlagsFromString('--no-incremental-marking');
      // Loaded on use: each command pulls in only its own component.
      const { raiseNofileLimit } = await import('../ztunnel/capture/original-dst.js');
      // Process-wide, like the V8 flag above: the command raises its own descriptor limit, the library never does
      // (before the workers are forked: they start under the raised limit).
      const nofile = raiseNofileLimit();
      // A data-plane worker runs this same command line (cluster.fork): it serves until its primary stops it.
      if (cluster.isWorker) {
        const { runZtunnelWorker } = await import('../ztunnel/app-worker.js');
        await runZtunnelWorker(config, log, nofile);
        return;
      }
      const running = config.workers > 1
        ? await (await import('../ztunnel/app-primary.js')).startZtunnelPrimary(config, log)
        : await (await import('../ztunnel/app.js')).startZtunnel(config, log, { nofile });
      // Kubernetes stops a pod with SIGTERM: drain as /quitquitquit does. A second signal stops at once.
      onShutdown(log, () => running.drain());
      await running.stopped;
      process.exit(0);
    });
}
