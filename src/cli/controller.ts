import { Command } from 'commander';
import { createRootLogger, type LogFormat, type LogLevel } from '../common/log.js';
import { parseConfig, DEFAULT_ADMIN_ADDRESS, DEFAULT_XDS_ADDRESS } from '../controller/config.js';
import { onShutdown } from './shutdown.js';

export function controllerCommand(): Command {
  return new Command('controller')
    .description('run the control plane: config source, CA (gRPC CreateCertificate) and xDS push, over TLS')
    .option('--config-dir <dir>', 'directory (or file) of YAML manifests, watched  [env STRAIT_CONFIG_DIR]')
    .option('--data-dir <dir>', 'where the CA root and bootstrap tokens are kept  [env STRAIT_DATA_DIR]')
    .option('--xds-address <host:port>', `xDS + CA gRPC listener (default ${DEFAULT_XDS_ADDRESS})  [env STRAIT_XDS_ADDRESS]`)
    .option('--admin-address <host:port>', `admin HTTP listener: /ready /metrics /debug/syncz /debug/configz (default ${DEFAULT_ADMIN_ADDRESS})  [env STRAIT_ADMIN_ADDRESS]`)
    .option('--trust-domain <td>', 'SPIFFE trust domain (default cluster.local)  [env STRAIT_TRUST_DOMAIN]')
    .option('--root-namespace <ns>', 'namespace whose selector-less policies are mesh-wide (default istio-system)  [env STRAIT_ROOT_NAMESPACE]')
    .option('--cert-ttl <duration>', 'workload certificate lifetime (default 24h)  [env STRAIT_CERT_TTL]')
    .option('--push-debounce <duration>', 'coalesce config changes for this long before pushing (default 100ms)  [env STRAIT_PUSH_DEBOUNCE]')
    .option('--ca-cert <file>', 'operator-provided root or intermediate certificate (PEM)  [env STRAIT_CA_CERT]')
    .option('--ca-key <file>', 'its private key (PEM)  [env STRAIT_CA_KEY]')
    .option('--ca-chain <file>', 'certificates from --ca-cert up to the root (PEM)  [env STRAIT_CA_CHAIN]')
    .action(async (flags, cmd: Command) => {
      const globals = cmd.optsWithGlobals() as { logLevel: LogLevel; logFormat: LogFormat };
      const config = parseConfig(process.env, flags);
      const log = createRootLogger({ component: 'controller', level: globals.logLevel, format: globals.logFormat });
      // Loaded on use: each command pulls in only its own component.
      const { startController } = await import('../controller/app.js');
      const running = await startController(config, log);
      onShutdown(log, () => running.close());
    });
}
